// The teaching demo, part 3 of 4: the wire view. Each panel shows the bytes
// of its transport's last exchange, as far as a page can see them, so the
// costs in the table have a reason: a long-poll message is a whole HTTP
// request and answer, an SSE message a few text lines, a WebSocket message
// a 2-byte frame header and the JSON.
(function () {
  "use strict";
  var demo = window.announceDemo;
  var wire = demo.wire = {};

  function crlfToLf(s) { return (s || "").replace(/\r\n/g, "\n").replace(/\n+$/, ""); }

  function size(n) { return demo.joined(demo.bytesParts(n)); }

  // httpRequest is the request line and the headers the page knows it sent;
  // the browser adds more, which a page cannot read.
  wire.httpRequest = function (path, accept) {
    return "GET " + path + " HTTP/1.1\n" +
      "Host: " + location.host + "\n" +
      "Accept: " + accept + "\n" +
      (accept.indexOf("json") >= 0 ? "X-Requested-With: XMLHttpRequest\n" : "") +
      "… and what the browser adds: User-Agent, Accept-Encoding, Accept-Language, Cookie, Sec-Fetch-*\n";
  };

  var JQUERY_ACCEPT = "application/json, text/javascript, */*; q=0.01";

  // longPollWaiting is a long-poll request still held open by the server.
  wire.longPollWaiting = function (path) {
    return wire.httpRequest(path, JQUERY_ACCEPT) + "\n(no answer yet: the server holds the request until there is news or it times out)";
  };

  // longPollExchange is a long-poll request and its answer: the status
  // line, the headers getAllResponseHeaders shows (lower case, as the
  // browser reports them), the cursor cookie it hides from scripts, and the
  // JSON body.
  wire.longPollExchange = function (path, xhr, cookieID) {
    var head = "HTTP/1.1 " + xhr.status + " " + (xhr.statusText || "") + "\n" + crlfToLf(xhr.getAllResponseHeaders()) + "\n";
    if (cookieID != null) {
      head += "set-cookie: announce_" + demo.channel + "=" + cookieID + "; Path=/; HttpOnly; SameSite=Lax   (hidden from scripts)\n";
    }
    var body = xhr.responseText || "";
    var bodyBytes = demo.utf8Length(body);
    return wire.httpRequest(path, JQUERY_ACCEPT) + "\n" + head + "\n" + body + "\n\n" +
      "→ answer " + size(demo.utf8Length(head) + bodyBytes) + ": " + size(demo.utf8Length(head)) +
      " of status line and headers for " + size(bodyBytes) + " of JSON, and a new request for the next message.";
  };

  // sseOpen is the one request a stream makes.
  wire.sseOpen = function (path) {
    return wire.httpRequest(path, "text/event-stream") + "\n" +
      "HTTP/1.1 200 OK\ncontent-type: text/event-stream\n\nretry: 3000\n\n" +
      "(the answer stays open: each message is one more frame on it)";
  };

  // sseFrame rebuilds an event as it came: the id: line (messages only),
  // event: and data:, and the blank line that ends it.
  wire.sseFrame = function (path, type, e) {
    var lines = (e.lastEventId && type === "message" ? "id: " + e.lastEventId + "\n" : "") + "event: " + type + "\n";
    var frame = lines + "data: " + e.data + "\n\n";
    var data = demo.utf8Length(e.data || "");
    return "One frame on the open answer to GET " + path + ":\n\n" + frame +
      "→ " + size(demo.utf8Length(frame)) + ": " + size(data) + " of JSON and " + size(demo.utf8Length(frame) - data) +
      " of id:, event: and data: lines. No new request.";
  };

  // frameHeader is a server's WebSocket frame header for a text payload of
  // n bytes: FIN and opcode 1, then the length (7 bits, or 126 and 16 bits,
  // or 127 and 64 bits); no mask, a server never masks.
  wire.frameHeader = function (n) {
    var bytes = [0x81];
    if (n < 126) bytes.push(n);
    else if (n < 65536) bytes.push(126, n >> 8, n & 0xff);
    else {
      bytes.push(127, 0, 0, 0, 0);
      for (var shift = 24; shift >= 0; shift -= 8) bytes.push((n >>> shift) & 0xff);
    }
    return bytes;
  };

  function hex(bytes) {
    return bytes.map(function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join(" ");
  }

  wire.wsOpen = function (path) {
    return "GET " + path + " HTTP/1.1\nHost: " + location.host + "\nUpgrade: websocket\nConnection: Upgrade\n" +
      "Sec-WebSocket-Version: 13\nSec-WebSocket-Key: (16 random bytes, base64)\n\n" +
      "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Accept: (the key, hashed)\n\n" +
      "(the connection now carries frames, both ways)";
  };

  wire.wsFrame = function (payload) {
    var n = demo.utf8Length(payload);
    var header = wire.frameHeader(n);
    return "Frame header: " + hex(header) + "\n" +
      "  " + hex(header.slice(0, 1)) + "  FIN=1 (whole message), opcode 1 (text)\n" +
      "  " + hex(header.slice(1)) + (n < 126 ? "  MASK=0 (a server does not mask), length " + n : "  MASK=0, extended length " + n) + "\n" +
      "Payload:\n" + payload + "\n\n" +
      "→ " + size(n + header.length) + ": " + size(n) + " of JSON and " + header.length + " B of header.";
  };
})();
