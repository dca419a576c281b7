// The teaching demo, part 4 of 4: the transports. One channel observed three
// ways side by side (demo-measure.js, demo-panel.js and demo-wire.js come first).
//
// Every panel starts from the id of the announcement the server rendered into
// the page (the JSON block #announce-current), so nothing published after the page was
// rendered is lost, and nothing already on the page is fetched again:
//
//   long-poll  $.getJSON(".../status", {since: id}) in a loop, the legacy way
//   SSE        new EventSource(".../events?since=id")
//   WebSocket  new WebSocket(".../ws?since=id")
//
// Each panel counts what its transport costs (HTTP requests, bytes received,
// reconnects) and how long each message took from the server accepting it to
// this page showing it. Each transport also gives its panel {drop, resume}
// for the "drop connection" button: drop cuts the connection in the browser,
// resume reconnects from the last id shown.
(function () {
  "use strict";
  var demo = window.announceDemo;
  var now = demo.now, backoff = demo.backoff, utf8Length = demo.utf8Length, wire = demo.wire;
  var channel = demo.channel, base = demo.base, token = demo.token, panels = demo.panels;
  function cursor(id) { return "?since=" + id + (token ? "&token=" + encodeURIComponent(token) : ""); }

  // ---- long-poll: the legacy jQuery loop ----------------------------------

  // answerBytes estimates what an answer took on the wire: the body, the
  // status line and the headers getAllResponseHeaders shows, plus the cursor
  // cookie a long-poll answer sets, which scripts never see.
  function answerBytes(xhr, cookieID) {
    var status = "HTTP/1.1 " + xhr.status + " " + (xhr.statusText || "") + "\r\n";
    var cookie = cookieID == null ? "" :
      "Set-Cookie: announce_" + channel + "=" + cookieID + "; Path=/; HttpOnly; SameSite=Lax\r\n";
    return status.length + (xhr.getAllResponseHeaders() || "").length + cookie.length + 2 +
      utf8Length(xhr.responseText || "");
  }

  // errorOf reads the server's {"error": "..."} answer.
  function errorOf(text) {
    try { return JSON.parse(text).error || null; } catch (e) { return null; }
  }

  function longPoll(panel) {
    var since = panel.lastId;
    var failures = 0;
    var lastError = null; // the server's last refusal, noted once
    // run counts the loop's lives: a drop starts a new one, and answers
    // to an older one's requests are ignored.
    var run = 0;
    var inflight = null; // the jqXHR of the request now open
    var timer = 0; // the next request, when one is scheduled
    var answered = false; // the wire view shows an answer

    function later(fn, ms) { clearTimeout(timer); timer = setTimeout(fn, ms); }

    function poll() {
      var mine = run;
      since = panel.lastId;
      var query = token ? {since: since, token: token} : {since: since};
      var path = base + "/status?" + $.param(query);
      var sent = now();
      panel.request(0);
      // The last answered exchange stays on show while the next request waits.
      if (!answered) panel.wire(wire.longPollWaiting(path));
      // A request the server is still holding after a moment is a live
      // long-poll: the server answers at once only on an error or news.
      var held = setTimeout(function () {
        if (mine !== run) return;
        panel.live();
        panel.waitFrom(sent);
      }, 500);
      inflight = $.getJSON(base + "/status", query)
        .done(function (data, _, xhr) {
          clearTimeout(held);
          if (mine !== run) return;
          panel.waitFrom(0);
          panel.received(answerBytes(xhr, data.id));
          panel.wire(wire.longPollExchange(path, xhr, data.id));
          answered = true;
          failures = 0;
          lastError = null;
          panel.live();
          answer(data, now() - sent);
        })
        .fail(function (xhr) {
          clearTimeout(held);
          if (mine !== run) return;
          panel.received(xhr.status ? answerBytes(xhr) : 0);
          if (xhr.status) {
            panel.wire(wire.longPollExchange(path, xhr));
            answered = true;
          }
          var reason = errorOf(xhr.responseText);
          if (reason && reason !== lastError) panel.note("server: " + xhr.status + " " + reason, "warn");
          lastError = reason;
          failures++;
          var wait = backoff(failures);
          panel.lost("request failed" + (xhr.status ? " (" + xhr.status + ")" : "") + "; retry in " + demo.seconds(wait));
          later(poll, wait);
        });
    }

    function answer(data, took) {
      if (data.id === since) {
        // The poll timed out (200 with the message unchanged). A server or
        // proxy that answers at once would make the loop spin: slow down.
        later(poll, took < 100 ? 1000 : 0);
        return;
      }
      if (data.id < since) {
        panel.note("the channel restarted at #" + data.id + " (store reset)", "warn");
        panel.lastId = Math.max(0, data.id - 1);
        panel.arrive(data);
        panel.lastId = data.id;
        poll();
        return;
      }
      if (data.id === since + 1) {
        panel.arrive(data);
        poll();
        return;
      }
      // Several messages came while no request was waiting: a long-poll
      // only sees the current one, so catch up on the others from history.
      catchUp(data);
    }

    function catchUp(latest) {
      var mine = run;
      var from = since;
      panel.request(0);
      var query = {since: from, limit: Math.min(1000, latest.id - from)};
      if (token) query.token = token;
      var path = base + "/messages?" + $.param(query);
      inflight = $.getJSON(base + "/messages", query)
        .done(function (list, _, xhr) {
          if (mine !== run) return;
          panel.received(answerBytes(xhr));
          panel.wire(wire.longPollExchange(path, xhr));
          if (list.length && list[0].id > from + 1) {
            panel.note("history no longer holds #" + (from + 1) + (list[0].id - 1 > from + 1 ? "–#" + (list[0].id - 1) : "") + " (truncated)", "warn");
            panel.lastId = list[0].id - 1;
          }
          var caught = 0;
          for (var i = 0; i < list.length && list[i].id < latest.id; i++) {
            if (panel.arrive(list[i], "caught up")) caught++;
          }
          if (caught) panel.note("caught up on " + caught + " from history: GET /messages?since=" + from, "info");
          panel.arrive(latest);
          poll();
        })
        .fail(function () {
          if (mine !== run) return;
          panel.note("could not catch up from history; showing the latest", "warn");
          panel.lastId = latest.id - 1;
          panel.arrive(latest);
          poll();
        });
    }

    poll();
    return {
      drop: function () {
        run++;
        clearTimeout(timer);
        panel.waitFrom(0);
        if (inflight) inflight.abort();
      },
      resume: function () {
        poll();
        return "GET …/status?since=" + panel.lastId;
      }
    };
  }

  // ---- Server-Sent Events --------------------------------------------------

  var SSE_CONNECTION_BYTES = 200; // response headers and "retry: 3000", roughly

  // sseEventBytes is an event as it came over the wire: its id: line (only
  // messages have one), event: and data: lines, the blank line, and about 8
  // bytes of chunked framing.
  function sseEventBytes(type, e) {
    var lines = (type === "message" ? "id: " + e.lastEventId + "\n" : "") + "event: " + type + "\ndata: \n\n";
    return utf8Length(e.data || "") + lines.length + 8;
  }

  function serverSentEvents(panel) {
    var es = null; // the EventSource now open, null while dropped
    var failures = 0;
    var timer = 0; // the next connect, when one is scheduled

    function connect() {
      var path = base + "/events" + cursor(panel.lastId);
      var source = es = new EventSource(path);
      var mine = function () { return source === es; };
      panel.request(0);
      panel.wire(wire.sseOpen(path));
      source.onopen = function () {
        if (!mine()) return;
        panel.openedAt = now();
        panel.received(SSE_CONNECTION_BYTES);
        failures = 0;
        panel.live();
      };
      source.addEventListener("message", function (e) {
        if (!mine()) return;
        panel.received(sseEventBytes("message", e));
        panel.wire(wire.sseFrame(path, "message", e));
        var msg;
        try { msg = JSON.parse(e.data); } catch (err) { panel.note("unreadable event: " + e.data, "warn"); return; }
        panel.arrive(msg);
      });
      source.addEventListener("truncated", function (e) {
        if (!mine()) return;
        panel.received(sseEventBytes("truncated", e));
        panel.wire(wire.sseFrame(path, "truncated", e));
        var t = JSON.parse(e.data);
        panel.note("history no longer reaches back to #" + (t.since + 1) + ": resuming at #" + t.first + " (truncated)", "warn");
        panel.lastId = Math.max(panel.lastId, t.first - 1);
      });
      source.addEventListener("error", function (e) {
        if (!mine()) return;
        if (e.data) { // the server's own "event: error", e.g. a slow consumer
          panel.received(sseEventBytes("error", e));
          panel.wire(wire.sseFrame(path, "error", e));
          var reason = e.data;
          try { reason = JSON.parse(e.data).error; } catch (err) { /* keep the raw text */ }
          panel.note("server: " + reason, "warn");
          return;
        }
        if (source.readyState === EventSource.CONNECTING) {
          // The browser retries by itself after the server's retry: 3000,
          // sending Last-Event-ID, so the stream resumes where it broke.
          if (panel.state === "live") {
            panel.note("stream ended: the browser reconnects in 3 s with Last-Event-ID: " + panel.lastId, "warn");
          }
          panel.lost("the browser retries in 3 s with Last-Event-ID");
          panel.request(0); // that retry
          return;
        }
        // CLOSED: the browser gave up (an HTTP error or a wrong content
        // type). Start over from the last id shown.
        source.close();
        failures++;
        var wait = backoff(failures);
        panel.lost("stream refused; retry in " + demo.seconds(wait));
        clearTimeout(timer);
        timer = setTimeout(connect, wait);
      });
    }

    connect();
    return {
      drop: function () {
        clearTimeout(timer);
        if (es) es.close();
        es = null;
      },
      resume: function () {
        connect();
        // A closed EventSource cannot be reopened, so the page passes the
        // cursor itself; the browser's own retry sends Last-Event-ID instead.
        return "new EventSource(\"…/events?since=" + panel.lastId + "\") (the browser's own retry sends Last-Event-ID: " + panel.lastId + " instead)";
      }
    };
  }

  // ---- WebSocket -----------------------------------------------------------

  var WS_HANDSHAKE_BYTES = 129; // "HTTP/1.1 101 Switching Protocols" and its headers

  function webSocket(panel) {
    var failures = 0;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = null; // the socket now open, null while dropped
    var timer = 0; // the next connect, when one is scheduled

    function connect() {
      var path = base + "/ws" + cursor(panel.lastId);
      var sock = ws = new WebSocket(scheme + location.host + path);
      panel.request(0);
      panel.wire(wire.wsOpen(path));
      sock.onopen = function () {
        if (sock !== ws) return;
        panel.openedAt = now();
        panel.received(WS_HANDSHAKE_BYTES);
        failures = 0;
        panel.live();
      };
      sock.onmessage = function (e) {
        if (sock !== ws) return;
        var header = wire.frameHeader(utf8Length(e.data));
        panel.received(header.length + utf8Length(e.data));
        panel.wire(wire.wsFrame(e.data));
        var msg;
        try { msg = JSON.parse(e.data); } catch (err) { panel.note("unreadable frame: " + e.data, "warn"); return; }
        if (msg.event === "truncated") {
          panel.note("history no longer reaches back to #" + (msg.since + 1) + ": resuming at #" + msg.first + " (truncated)", "warn");
          panel.lastId = Math.max(panel.lastId, msg.first - 1);
          return;
        }
        if (msg.event === "error") { panel.note("server: " + msg.error, "warn"); return; }
        if (msg.event) return; // an ack of a publish over this socket
        panel.arrive(msg);
      };
      sock.onclose = function (e) {
        if (sock !== ws) return;
        var wait;
        if (e.code === 1008) {
          // Too slow to keep up: the server dropped us. History has what
          // we missed, so come straight back with ?since=.
          panel.note("closed 1008 (" + (e.reason || "slow consumer") + "): resuming after #" + panel.lastId, "warn");
          wait = 100;
        } else {
          failures++;
          wait = backoff(failures);
          if (e.code === 1001) panel.note("closed 1001 (" + (e.reason || "going away") + "): retry in " + demo.seconds(wait), "warn");
          else if (panel.state === "live") panel.note("connection lost (" + e.code + "): retry in " + demo.seconds(wait), "warn");
        }
        panel.lost("closed " + e.code + "; retry in " + demo.seconds(wait));
        clearTimeout(timer);
        timer = setTimeout(connect, wait);
      };
    }

    connect();
    return {
      drop: function () {
        clearTimeout(timer);
        var sock = ws;
        ws = null;
        if (sock) sock.close();
      },
      resume: function () {
        connect();
        return "new WebSocket(\"…/ws?since=" + panel.lastId + "\")";
      }
    };
  }

  // ---- publishing ------------------------------------------------------------

  function publishForm(form) {
    var status = document.getElementById("publish-status");
    var button = form.querySelector("button");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var content = form.elements.content.value;
      if (!content) return;
      var headers = {"Content-Type": "application/json"};
      var key = form.elements.key ? form.elements.key.value : "";
      if (key || token) headers.Authorization = "Bearer " + (key || token);
      button.disabled = true;
      status.className = "";
      status.textContent = "publishing…";
      var sent = now();
      fetch(base + "/messages", {method: "POST", headers: headers, body: JSON.stringify({content: content})})
        .then(function (res) {
          return res.json().catch(function () { return {}; }).then(function (body) {
            if (!res.ok) throw new Error(body.error || res.status + " " + res.statusText);
            status.className = "ok";
            status.textContent = "published #" + body.id + " in " + demo.formatLatency(now() - sent);
            if (form.elements.content.value === content) form.elements.content.value = "";
          });
        })
        .catch(function (err) {
          status.className = "error";
          status.textContent = err.message;
        })
        .then(function () {
          button.disabled = false;
          form.elements.content.focus();
        });
    });
  }

  // ---- start -----------------------------------------------------------------

  publishForm(document.getElementById("publish"));
  if (window.jQuery) panels.poll.controls(longPoll(panels.poll));
  else panels.poll.setState("reconnecting", "jQuery did not load");
  if (window.EventSource) panels.sse.controls(serverSentEvents(panels.sse));
  else panels.sse.setState("reconnecting", "this browser has no EventSource");
  if (window.WebSocket) panels.ws.controls(webSocket(panels.ws));
  else panels.ws.setState("reconnecting", "this browser has no WebSocket");
})();
