// The teaching demo: one channel observed three ways side by side.
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
// this page showing it.
(function () {
  "use strict";

  // renderedCurrent reads the announcement the server rendered into the page
  // as data (a script of type application/json: the page runs no inline script).
  function renderedCurrent() {
    var el = document.getElementById("announce-current");
    try { return el ? JSON.parse(el.textContent) : null; } catch (e) { return null; }
  }

  var channel = document.body.getAttribute("data-channel");
  var start = renderedCurrent() || {id: 0, channel: channel, content: ""};
  var base = "/channels/" + encodeURIComponent(channel);
  // A private channel's page is opened with ?token=; every transport passes it on.
  var token = new URLSearchParams(location.search).get("token");
  function cursor(id) { return "?since=" + id + (token ? "&token=" + encodeURIComponent(token) : ""); }
  var LOG_LIMIT = 200; // log entries kept per panel
  var panels; // by transport, made at the end

  // ---- measuring --------------------------------------------------------

  var encoder = new TextEncoder();
  function utf8Length(s) { return encoder.encode(s).length; }

  // now is this browser's wall clock in milliseconds, with the fraction the
  // high-resolution timer adds (on localhost a message takes about one ms).
  // That timer is monotonic and can drift from the wall clock in a page left
  // open for days (a laptop asleep, the clock set): then Date.now() it is.
  function now() {
    var wall = Date.now();
    if (!window.performance || !performance.timeOrigin) return wall;
    var fine = performance.timeOrigin + performance.now();
    return Math.abs(fine - wall) < 2 ? fine : wall;
  }

  // acceptedAt reads message.time, RFC 3339 with microseconds, keeping the
  // fraction of a millisecond that Date.parse would drop.
  function acceptedAt(time) {
    var m = /^(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(time || "");
    if (!m) return NaN;
    var ms = Date.parse(m[1] + m[3]);
    return m[2] ? ms + parseFloat("0." + m[2]) * 1000 : ms;
  }

  // The formatters return [number, unit], so the counters can set the unit
  // in smaller type; join them for plain text.
  function latencyParts(ms) {
    if (ms == null || isNaN(ms)) return ["–", ""];
    if (Math.abs(ms) < 10) return [ms.toFixed(1), "ms"];
    if (Math.abs(ms) < 1000) return [String(Math.round(ms)), "ms"];
    if (Math.abs(ms) < 60000) return [(ms / 1000).toFixed(1), "s"];
    return [String(Math.round(ms / 60000)), "min"];
  }

  function bytesParts(n) {
    if (n == null || isNaN(n)) return ["–", ""];
    if (n < 1024) return [String(n), "B"];
    if (n < 1048576) return [(n / 1024).toFixed(1), "KiB"];
    return [(n / 1048576).toFixed(1), "MiB"];
  }

  function joined(parts) { return parts[1] ? parts[0] + " " + parts[1] : parts[0]; }
  function formatLatency(ms) { return joined(latencyParts(ms)); }

  function formatTime(time) {
    var t = new Date(acceptedAt(time));
    if (isNaN(t.getTime())) return "";
    return t.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
  }

  function median(xs) {
    if (!xs.length) return NaN;
    var s = xs.slice().sort(function (a, b) { return a - b; });
    var mid = s.length >> 1;
    return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  }

  // backoff is the wait before retry number n (1, 2, ...): 0.5 s doubling to
  // 10 s, with jitter so a restarted server is not hit by every page at once.
  function backoff(n) {
    var ms = Math.min(10000, 500 * Math.pow(2, Math.max(0, n - 1)));
    return Math.round(ms * (0.8 + Math.random() * 0.4));
  }

  // ---- the page's current announcement -----------------------------------

  var hero = {
    el: document.getElementById("current"),
    meta: document.getElementById("current-meta"),
    id: start.id || 0,
    show: function (msg) {
      if (msg.id <= this.id) return;
      this.id = msg.id;
      this.el.textContent = msg.content;
      this.el.setAttribute("data-id", String(msg.id));
      this.meta.textContent = "#" + msg.id + " · " + formatTime(msg.time);
      document.title = msg.content + " · announce · " + channel;
    }
  };
  if (start.id && start.time) hero.meta.textContent = "#" + start.id + " · " + formatTime(start.time);

  // ---- a panel -----------------------------------------------------------

  var STATE_TEXT = {connecting: "connecting", live: "live", reconnecting: "reconnecting"};

  function Panel(transport) {
    this.transport = transport;
    this.el = document.getElementById(transport);
    this.row = document.getElementById("row-" + transport);
    this.stateEl = this.el.querySelector("[data-role=state]");
    this.currentEl = this.el.querySelector("[data-role=current]");
    this.logEl = this.el.querySelector("[data-role=log]");
    this.state = "connecting";
    this.lastId = start.id || 0; // the newest id shown: the cursor to resume from
    this.requests = 0;
    this.bytes = 0;
    this.reconnects = 0;
    this.messages = 0;
    this.lastLatency = NaN;
    this.latencies = []; // live arrivals only, the last 500
    this.dropped = false; // lost the connection since the last time it was live
    this.openedAt = 0; // when the SSE or WebSocket stream opened: older messages are replays
    this.gaps = 0;
    this.pending = false;
  }

  var TAG_TITLE = {
    "caught up": "fetched from history: the long-poll answered with a newer message",
    "replayed": "sent from history as the stream (re)connected: the latency includes the time before"
  };

  function range(from, to) { return from === to ? String(from) : from + "–#" + to; }

  // request counts one HTTP request and, optionally, bytes received.
  Panel.prototype.request = function (bytes) {
    this.requests++;
    this.received(bytes || 0);
  };

  Panel.prototype.received = function (bytes) {
    this.bytes += bytes;
    this.render();
  };

  // live marks the transport connected; after a drop that is a reconnect.
  Panel.prototype.live = function () {
    if (this.state === "live") return;
    if (this.dropped) {
      this.reconnects++;
      this.dropped = false;
      this.note("reconnected, resuming after #" + this.lastId);
    }
    this.setState("live");
  };

  // lost marks the transport disconnected; detail says what happens next.
  Panel.prototype.lost = function (detail) {
    this.dropped = true;
    this.el.setAttribute("data-last-drop", detail || "");
    this.setState("reconnecting", detail);
  };

  Panel.prototype.setState = function (state, detail) {
    this.state = state;
    this.el.setAttribute("data-state", state);
    this.stateEl.textContent = STATE_TEXT[state] || state;
    this.stateEl.title = detail || "";
    this.render();
  };

  // arrive shows a message in order, once, and reports whether it was new.
  // how tags a message that did not come live: "caught up" from history by
  // the long-poll, "replayed" on (re)connecting. Their latency includes the
  // time the transport was away, so the median leaves them out.
  Panel.prototype.arrive = function (msg, how) {
    if (typeof msg.id !== "number") return false;
    if (msg.id <= this.lastId) return false; // already shown (a replay overlap)
    if (msg.id > this.lastId + 1) {
      this.gaps++;
      this.note("gap: #" + range(this.lastId + 1, msg.id - 1) + " never arrived", "warn");
    }
    var accepted = acceptedAt(msg.time);
    if (!how && this.openedAt && accepted < this.openedAt) how = "replayed";
    var latency = now() - accepted;
    this.lastId = msg.id;
    this.messages++;
    this.lastLatency = latency;
    if (!how && !isNaN(latency)) {
      this.latencies.push(latency);
      if (this.latencies.length > 500) this.latencies.shift();
    }

    var li = document.createElement("li");
    li.setAttribute("data-id", String(msg.id));
    var id = document.createElement("span");
    id.className = "id";
    id.textContent = "#" + msg.id;
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = msg.content;
    var lat = document.createElement("span");
    lat.className = "lat";
    lat.textContent = formatLatency(latency);
    lat.title = TAG_TITLE[how] || "from publish to arrival";
    li.appendChild(id);
    li.appendChild(text);
    if (how) {
      var tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = how;
      li.appendChild(tag);
    }
    li.appendChild(lat);
    this.prepend(li);

    this.currentEl.textContent = msg.content;
    hero.show(msg);
    this.render();
    return true;
  };

  // note adds a line about the connection to the log.
  Panel.prototype.note = function (text, kind) {
    var li = document.createElement("li");
    li.className = "note" + (kind ? " " + kind : "");
    li.textContent = text;
    this.prepend(li);
  };

  Panel.prototype.prepend = function (li) {
    this.logEl.insertBefore(li, this.logEl.firstChild);
    while (this.logEl.childNodes.length > LOG_LIMIT) this.logEl.removeChild(this.logEl.lastChild);
  };

  // render updates the counters, at most once a frame however busy the channel.
  Panel.prototype.render = function () {
    if (this.pending) return;
    this.pending = true;
    var self = this;
    requestAnimationFrame(function () {
      self.pending = false;
      self.draw();
    });
  };

  // values are the panel's numbers: raw, and as [number, unit] to show.
  Panel.prototype.values = function () {
    var med = median(this.latencies);
    var perMessage = this.messages ? Math.round(this.bytes / this.messages) : NaN;
    return {
      state: [this.state, [STATE_TEXT[this.state] || this.state, ""]],
      messages: [this.messages, [String(this.messages), ""]],
      latency: [this.lastLatency, latencyParts(this.lastLatency)],
      median: [med, latencyParts(med)],
      requests: [this.requests, [String(this.requests), ""]],
      bytes: [this.bytes, bytesParts(this.bytes)],
      perMessage: [perMessage, bytesParts(perMessage)],
      reconnects: [this.reconnects, [String(this.reconnects), ""]],
      gaps: [this.gaps, [String(this.gaps), ""]]
    };
  };

  Panel.prototype.draw = function () {
    var values = this.values();
    // The raw numbers are the panel's data-* attributes, for scripts and tests.
    for (var k in values) this.el.setAttribute("data-" + k, String(values[k][0]));
    var stats = this.el.querySelectorAll("[data-stat]");
    for (var i = 0; i < stats.length; i++) {
      var shown = values[stats[i].getAttribute("data-stat")][1];
      stats[i].textContent = shown[0];
      if (shown[1]) {
        var unit = document.createElement("small");
        unit.textContent = " " + shown[1];
        stats[i].appendChild(unit);
      }
    }
    drawSummary();
  };

  // drawSummary fills the comparison table, with a bar behind the cost
  // columns scaled to the costliest transport.
  function drawSummary() {
    var all = [panels.poll, panels.sse, panels.ws];
    var values = all.map(function (p) { return p.values(); });
    var max = {};
    ["requests", "bytes", "perMessage"].forEach(function (col) {
      max[col] = Math.max.apply(null, values.map(function (v) { return v[col][0] || 0; }));
    });
    all.forEach(function (p, i) {
      var cells = p.row.querySelectorAll("[data-col]");
      for (var j = 0; j < cells.length; j++) {
        var col = cells[j].getAttribute("data-col");
        cells[j].textContent = joined(values[i][col][1]);
        if (col in max) {
          var share = max[col] > 0 ? (values[i][col][0] || 0) / max[col] : 0;
          cells[j].style.setProperty("--share", String(share));
        }
      }
      p.row.setAttribute("data-state", p.state);
    });
  }

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

    function poll() {
      since = panel.lastId;
      var sent = now();
      panel.request(0);
      // A request the server is still holding after a moment is a live
      // long-poll: the server answers at once only on an error or news.
      var held = setTimeout(function () { panel.live(); }, 500);
      $.getJSON(base + "/status", token ? {since: since, token: token} : {since: since})
        .done(function (data, _, xhr) {
          clearTimeout(held);
          panel.received(answerBytes(xhr, data.id));
          failures = 0;
          lastError = null;
          panel.live();
          answer(data, now() - sent);
        })
        .fail(function (xhr) {
          clearTimeout(held);
          panel.received(xhr.status ? answerBytes(xhr) : 0);
          var reason = errorOf(xhr.responseText);
          if (reason && reason !== lastError) panel.note("server: " + xhr.status + " " + reason, "warn");
          lastError = reason;
          failures++;
          var wait = backoff(failures);
          panel.lost("request failed" + (xhr.status ? " (" + xhr.status + ")" : "") + "; retry in " + (wait / 1000).toFixed(1) + " s");
          setTimeout(poll, wait);
        });
    }

    function answer(data, took) {
      if (data.id === since) {
        // The poll timed out (200 with the message unchanged). A server or
        // proxy that answers at once would make the loop spin: slow down.
        setTimeout(poll, took < 100 ? 1000 : 0);
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
      var from = since;
      panel.request(0);
      var query = {since: from, limit: Math.min(1000, latest.id - from)};
      if (token) query.token = token;
      $.getJSON(base + "/messages", query)
        .done(function (list, _, xhr) {
          panel.received(answerBytes(xhr));
          if (list.length && list[0].id > from + 1) {
            panel.note("history no longer holds #" + (from + 1) + (list[0].id - 1 > from + 1 ? "–#" + (list[0].id - 1) : "") + " (truncated)", "warn");
            panel.lastId = list[0].id - 1;
          }
          var caught = 0;
          for (var i = 0; i < list.length && list[i].id < latest.id; i++) {
            if (panel.arrive(list[i], "caught up")) caught++;
          }
          if (caught) panel.note("caught up on " + caught + " from history", "info");
          panel.arrive(latest);
          poll();
        })
        .fail(function () {
          panel.note("could not catch up from history; showing the latest", "warn");
          panel.lastId = latest.id - 1;
          panel.arrive(latest);
          poll();
        });
    }

    poll();
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
    var es = null;
    var failures = 0;

    function connect() {
      es = new EventSource(base + "/events" + cursor(panel.lastId));
      panel.request(0);
      es.onopen = function () {
        panel.openedAt = now();
        panel.received(SSE_CONNECTION_BYTES);
        failures = 0;
        panel.live();
      };
      es.addEventListener("message", function (e) {
        panel.received(sseEventBytes("message", e));
        var msg;
        try { msg = JSON.parse(e.data); } catch (err) { panel.note("unreadable event: " + e.data, "warn"); return; }
        panel.arrive(msg);
      });
      es.addEventListener("truncated", function (e) {
        panel.received(sseEventBytes("truncated", e));
        var t = JSON.parse(e.data);
        panel.note("history no longer reaches back to #" + (t.since + 1) + ": resuming at #" + t.first + " (truncated)", "warn");
        panel.lastId = Math.max(panel.lastId, t.first - 1);
      });
      es.addEventListener("error", function (e) {
        if (e.data) { // the server's own "event: error", e.g. a slow consumer
          panel.received(sseEventBytes("error", e));
          var reason = e.data;
          try { reason = JSON.parse(e.data).error; } catch (err) { /* keep the raw text */ }
          panel.note("server: " + reason, "warn");
          return;
        }
        if (es.readyState === EventSource.CONNECTING) {
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
        es.close();
        failures++;
        var wait = backoff(failures);
        panel.lost("stream refused; retry in " + (wait / 1000).toFixed(1) + " s");
        setTimeout(connect, wait);
      });
    }

    connect();
  }

  // ---- WebSocket -----------------------------------------------------------

  var WS_HANDSHAKE_BYTES = 129; // "HTTP/1.1 101 Switching Protocols" and its headers

  function frameBytes(payload) {
    var n = utf8Length(payload);
    return n + (n < 126 ? 2 : n < 65536 ? 4 : 10);
  }

  function webSocket(panel) {
    var failures = 0;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";

    function connect() {
      var ws = new WebSocket(scheme + location.host + base + "/ws" + cursor(panel.lastId));
      panel.request(0);
      ws.onopen = function () {
        panel.openedAt = now();
        panel.received(WS_HANDSHAKE_BYTES);
        failures = 0;
        panel.live();
      };
      ws.onmessage = function (e) {
        panel.received(frameBytes(e.data));
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
      ws.onclose = function (e) {
        var wait;
        if (e.code === 1008) {
          // Too slow to keep up: the server dropped us. History has what
          // we missed, so come straight back with ?since=.
          panel.note("closed 1008 (" + (e.reason || "slow consumer") + "): resuming after #" + panel.lastId, "warn");
          wait = 100;
        } else {
          failures++;
          wait = backoff(failures);
          if (e.code === 1001) panel.note("closed 1001 (" + (e.reason || "going away") + "): retry in " + (wait / 1000).toFixed(1) + " s", "warn");
          else if (panel.state === "live") panel.note("connection lost (" + e.code + "): retry in " + (wait / 1000).toFixed(1) + " s", "warn");
        }
        panel.lost("closed " + e.code + "; retry in " + (wait / 1000).toFixed(1) + " s");
        setTimeout(connect, wait);
      };
    }

    connect();
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
            status.textContent = "published #" + body.id + " in " + formatLatency(now() - sent);
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

  panels = {poll: new Panel("poll"), sse: new Panel("sse"), ws: new Panel("ws")};
  window.announceDemo = {panels: panels}; // to poke at from the console
  publishForm(document.getElementById("publish"));
  if (window.jQuery) longPoll(panels.poll);
  else panels.poll.setState("reconnecting", "jQuery did not load");
  if (window.EventSource) serverSentEvents(panels.sse);
  else panels.sse.setState("reconnecting", "this browser has no EventSource");
  if (window.WebSocket) webSocket(panels.ws);
  else panels.ws.setState("reconnecting", "this browser has no WebSocket");
})();
