// The teaching demo, part 2 of 4: a panel. What one transport shows: its
// state, the arrivals in order and once, its counters, the wire view, and
// the "drop connection" button with how the transport recovered. The
// transports themselves are in demo.js.
(function () {
  "use strict";
  var demo = window.announceDemo;
  var now = demo.now;
  var LOG_LIMIT = 200; // log entries kept per panel
  var DROP_MS = 6000; // how long a dropped connection stays down: time to publish

  // ---- the page's current announcement -----------------------------------

  var hero = {
    el: document.getElementById("current"),
    meta: document.getElementById("current-meta"),
    id: demo.start.id || 0,
    show: function (msg) {
      if (msg.id <= this.id) return;
      this.id = msg.id;
      this.el.textContent = msg.content;
      this.el.setAttribute("data-id", String(msg.id));
      this.meta.textContent = "#" + msg.id + " · " + demo.formatTime(msg.time);
      document.title = msg.content + " · announce · " + demo.channel;
    }
  };
  if (demo.start.id && demo.start.time) hero.meta.textContent = "#" + demo.start.id + " · " + demo.formatTime(demo.start.time);

  // ---- a panel -----------------------------------------------------------

  var STATE_TEXT = {connecting: "connecting", live: "live", reconnecting: "reconnecting"};

  function Panel(transport) {
    this.transport = transport;
    this.el = document.getElementById(transport);
    this.row = document.getElementById("row-" + transport);
    this.stateEl = this.el.querySelector("[data-role=state]");
    this.currentEl = this.el.querySelector("[data-role=current]");
    this.logEl = this.el.querySelector("[data-role=log]");
    this.wireEl = this.el.querySelector("[data-role=wire]");
    this.dropEl = this.el.querySelector("[data-role=drop]");
    this.recoveryEl = this.el.querySelector("[data-role=recovery]");
    this.state = "connecting";
    this.lastId = demo.start.id || 0; // the newest id shown: the cursor to resume from
    this.requests = 0;
    this.bytes = 0;
    this.reconnects = 0;
    this.messages = 0;
    this.lastLatency = NaN;
    this.latencies = []; // live arrivals only, the last 500
    this.dropped = false; // lost the connection since the last time it was live
    this.openedAt = 0; // when the SSE or WebSocket stream opened: older messages are replays
    this.gaps = 0; // ids that never arrived
    this.doubled = 0; // ids that arrived again (and were not shown twice)
    this.waitingSince = 0; // when the long-poll request now held open was sent
    this.held = null; // a drop by the button: {until, timer} while the connection stays cut
    this.recovery = null; // the last drop: {after, cursor, at, replayed, first, last, gaps, doubled}
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
    this.waitingSince = 0;
    this.el.setAttribute("data-last-drop", detail || "");
    this.setState("reconnecting", detail);
  };

  Panel.prototype.setState = function (state, detail) {
    this.state = state;
    this.el.setAttribute("data-state", state);
    this.stateEl.title = detail || "";
    this.drawState();
    this.render();
  };

  // waitFrom marks a long-poll request held open since sent (0: answered).
  Panel.prototype.waitFrom = function (sent) {
    this.waitingSince = sent;
    this.drawState();
  };

  // stateText is the state as the badge says it: a long-poll that waits
  // for news counts the seconds, so it does not look stuck.
  Panel.prototype.stateText = function () {
    if (this.held) return "dropped · back in " + Math.max(0, Math.ceil((this.held.until - now()) / 1000)) + " s";
    if (this.state === "live" && this.waitingSince) {
      return "waiting · request open " + Math.floor((now() - this.waitingSince) / 1000) + " s";
    }
    return STATE_TEXT[this.state] || this.state;
  };

  Panel.prototype.drawState = function () {
    var text = this.stateText();
    if (this.stateEl.textContent !== text) this.stateEl.textContent = text;
    var cell = this.row && this.row.querySelector("[data-col=state]");
    if (cell && cell.textContent !== text) cell.textContent = text;
  };

  // ---- dropping and recovering ----------------------------------------------

  // controls wires the "drop connection" button to a transport's
  // {drop(), resume()}: drop cuts the connection in the browser, resume
  // reconnects and returns the request it resumed with (the cursor).
  Panel.prototype.controls = function (transport) {
    var self = this;
    this.dropEl.disabled = false;
    this.dropEl.addEventListener("click", function () {
      if (self.held) self.resume(transport);
      else self.drop(transport);
    });
  };

  Panel.prototype.drop = function (transport) {
    var self = this;
    transport.drop();
    this.recovery = {after: this.lastId, cursor: "", at: 0, replayed: 0, first: 0, last: 0, gaps: this.gaps, doubled: this.doubled};
    this.lost("dropped by the button");
    this.held = {until: now() + DROP_MS, timer: setTimeout(function () { self.resume(transport); }, DROP_MS)};
    this.el.setAttribute("data-held", "true");
    this.dropEl.textContent = "reconnect now";
    this.note("connection dropped after #" + this.lastId + ": publish now, it comes back in " + DROP_MS / 1000 + " s", "warn");
    this.drawState();
    this.drawRecovery();
  };

  Panel.prototype.resume = function (transport) {
    if (!this.held) return;
    clearTimeout(this.held.timer);
    this.held = null;
    this.el.setAttribute("data-held", "false");
    this.dropEl.textContent = "drop connection";
    this.recovery.at = now();
    this.recovery.cursor = transport.resume();
    this.el.setAttribute("data-resumed-from", String(this.lastId));
    this.note("reconnecting with " + this.recovery.cursor, "info");
    this.drawState();
    this.drawRecovery();
  };

  // drawRecovery says how the last drop was recovered from: the cursor,
  // what was replayed, and that nothing was missed or shown twice.
  Panel.prototype.drawRecovery = function () {
    var r = this.recovery;
    if (!r) return;
    var missed = this.gaps - r.gaps, doubled = this.doubled - r.doubled;
    this.el.setAttribute("data-replayed", String(r.replayed));
    this.el.setAttribute("data-missed", String(missed));
    this.el.setAttribute("data-doubled", String(doubled));
    var text = "Dropped after #" + r.after + ". ";
    if (!r.at) text += "Nothing arrives while the connection is cut.";
    else {
      text += "Resumed with " + r.cursor + ": replayed " + r.replayed +
        (r.replayed ? " (#" + range(r.first, r.last) + ")" : "") +
        " · missed " + missed + " · doubled " + doubled + ".";
    }
    this.recoveryEl.textContent = text;
  };

  // wire shows the bytes of the last exchange (demo-wire.js writes them).
  Panel.prototype.wire = function (text) {
    this.wireEl.textContent = text;
  };

  // arrive shows a message in order, once, and reports whether it was new.
  // how tags a message that did not come live: "caught up" from history by
  // the long-poll, "replayed" on (re)connecting. Their latency includes the
  // time the transport was away, so the median leaves them out.
  Panel.prototype.arrive = function (msg, how) {
    if (typeof msg.id !== "number") return false;
    if (msg.id <= this.lastId) { // already shown: a transport sent it twice
      this.doubled++;
      this.note("#" + msg.id + " arrived again (not shown twice)", "warn");
      this.drawRecovery();
      return false;
    }
    if (msg.id > this.lastId + 1) {
      this.gaps++;
      this.note("gap: #" + range(this.lastId + 1, msg.id - 1) + " never arrived", "warn");
    }
    var accepted = demo.acceptedAt(msg.time);
    if (!how && this.openedAt && accepted < this.openedAt) how = "replayed";
    var r = this.recovery;
    if (r && r.at && accepted < r.at) { // published while the connection was cut
      how = how || "replayed";
      r.first = r.first || msg.id;
      r.last = msg.id;
      r.replayed++;
    }
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
    lat.textContent = demo.formatLatency(latency);
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
    this.drawRecovery();
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
    var med = demo.median(this.latencies);
    var perMessage = this.messages ? Math.round(this.bytes / this.messages) : NaN;
    return {
      state: [this.state, [this.stateText(), ""]],
      messages: [this.messages, [String(this.messages), ""]],
      latency: [this.lastLatency, demo.latencyParts(this.lastLatency)],
      median: [med, demo.latencyParts(med)],
      requests: [this.requests, [String(this.requests), ""]],
      bytes: [this.bytes, demo.bytesParts(this.bytes)],
      perMessage: [perMessage, demo.bytesParts(perMessage)],
      reconnects: [this.reconnects, [String(this.reconnects), ""]],
      gaps: [this.gaps, [String(this.gaps), ""]],
      duplicates: [this.doubled, [String(this.doubled), ""]]
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
        cells[j].textContent = demo.joined(values[i][col][1]);
        if (col in max) {
          var share = max[col] > 0 ? (values[i][col][0] || 0) / max[col] : 0;
          cells[j].style.setProperty("--share", String(share));
        }
      }
      p.row.setAttribute("data-state", p.state);
    });
  }

  var panels = {poll: new Panel("poll"), sse: new Panel("sse"), ws: new Panel("ws")};
  demo.panels = panels;
  // The counting labels (waiting N s, back in N s) tick by themselves.
  setInterval(function () {
    for (var k in panels) panels[k].drawState();
  }, 250);
})();
