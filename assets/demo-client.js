// The fourth panel: announce.js chooses the transport, reconnects and
// resumes by itself; the panel shows which transport it chose, how often it
// reconnected and which messages it replayed (published while it was away).
// Its "drop connection" button closes the subscription and, a few seconds
// later, subscribes again with {since: the last id shown}.
(function () {
  "use strict";
  var el = document.getElementById("auto");
  if (!el || typeof announce == "undefined") return;
  var channel = document.body.getAttribute("data-channel");
  var url = location.origin + "/channels/" + encodeURIComponent(channel);
  var DROP_MS = 6000;
  var stat = function (k) { return el.querySelector("[data-stat=" + k + "]"); };
  var logEl = el.querySelector("[data-role=log]");
  var dropEl = el.querySelector("[data-role=drop]");
  var recoveryEl = el.querySelector("[data-role=recovery]");
  var counts = { reconnects: 0, replayed: 0, messages: 0, missed: 0, doubled: 0 };
  var liveSince = 0, wasLive = false;
  var lastId = 0; // the newest id shown
  var sub = null, held = null, resumed = null; // resumed: {after, at} of the last drop

  function show() {
    for (var k in counts) {
      if (stat(k)) stat(k).textContent = String(counts[k]);
      el.setAttribute("data-" + k, String(counts[k]));
    }
    if (resumed) {
      recoveryEl.textContent = "Dropped after #" + resumed.after + ". Resumed with announce.subscribe(…, {since: " + resumed.after +
        "}): missed " + counts.missed + " · doubled " + counts.doubled + ".";
    }
  }

  function prepend(li) {
    logEl.insertBefore(li, logEl.firstChild);
    while (logEl.childNodes.length > 50) logEl.removeChild(logEl.lastChild);
  }

  function note(text) {
    var li = document.createElement("li");
    li.className = "note info";
    li.textContent = text;
    prepend(li);
  }

  function onState(e) {
    var d = e.detail;
    el.setAttribute("data-state", d.state);
    el.querySelector("[data-role=state]").textContent = d.state;
    stat("transport").textContent = d.transport || "–";
    el.setAttribute("data-transport", d.transport || "");
    if (d.state == "live") {
      liveSince = Date.now();
      note("live over " + d.transport);
      wasLive = true;
    } else if (d.state == "reconnecting" && wasLive) {
      counts.reconnects++;
      wasLive = false;
      note("connection lost: reconnecting");
      show();
    }
  }

  function onMessage(e) {
    var m = e.detail;
    if (m.id <= lastId) { // already shown
      counts.doubled++;
      show();
      return;
    }
    if (lastId && m.id > lastId + 1) counts.missed += m.id - lastId - 1;
    lastId = m.id;
    var replayed = counts.messages > 0 && (Date.parse(m.time) < liveSince - 250 || (resumed && Date.parse(m.time) < resumed.at));
    counts.messages++;
    if (replayed) counts.replayed++;
    var li = document.createElement("li");
    li.setAttribute("data-id", String(m.id));
    var parts = [["id", "#" + m.id], ["text", m.content]];
    if (replayed) parts.push(["tag", "replayed"]);
    parts.push(["lat", Math.max(0, Date.now() - Date.parse(m.time)) + " ms"]);
    for (var i = 0; i < parts.length; i++) {
      var s = document.createElement("span");
      s.className = parts[i][0];
      s.textContent = parts[i][1];
      li.appendChild(s);
    }
    prepend(li);
    el.querySelector("[data-role=current]").textContent = m.content;
    show();
  }

  // subscribe opens a subscription; a closed one's late events are ignored.
  function subscribe(options) {
    var mine = sub = announce.subscribe(url, options);
    var current = function (fn) { return function (e) { if (mine === sub) fn(e); }; };
    mine.addEventListener("state", current(onState));
    mine.addEventListener("truncated", current(function (e) {
      note("history truncated: #" + (e.detail.since + 1) + " to #" + (e.detail.first - 1) + " are gone");
    }));
    mine.addEventListener("message", current(onMessage));
  }

  function resume() {
    if (!held) return;
    clearTimeout(held);
    held = null;
    el.setAttribute("data-held", "false");
    dropEl.textContent = "drop connection";
    resumed = { after: lastId, at: Date.now() };
    counts.reconnects++;
    note("subscribing again with {since: " + lastId + "}");
    subscribe({ shared: true, since: lastId });
    show();
  }

  subscribe({ shared: true });
  dropEl.disabled = false;
  dropEl.addEventListener("click", function () {
    if (held) return resume();
    var closing = sub;
    sub = null;
    closing.close();
    wasLive = false;
    held = setTimeout(resume, DROP_MS);
    el.setAttribute("data-held", "true");
    el.setAttribute("data-state", "reconnecting");
    el.querySelector("[data-role=state]").textContent = "dropped";
    dropEl.textContent = "reconnect now";
    note("subscription closed after #" + lastId + ": publish now, it comes back in " + DROP_MS / 1000 + " s");
  });
})();
