// The fourth panel: announce.js chooses the transport, reconnects and
// resumes by itself; the panel shows which transport it chose, how often it
// reconnected and which messages it replayed (published while it was away).
(function () {
  "use strict";
  var el = document.getElementById("auto");
  if (!el || typeof announce == "undefined") return;
  var channel = document.body.getAttribute("data-channel");
  var stat = function (k) { return el.querySelector("[data-stat=" + k + "]"); };
  var logEl = el.querySelector("[data-role=log]");
  var counts = { reconnects: 0, replayed: 0, messages: 0 };
  var liveSince = 0, wasLive = false;

  function show() {
    for (var k in counts) {
      stat(k).textContent = String(counts[k]);
      el.setAttribute("data-" + k, String(counts[k]));
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

  var sub = announce.subscribe(location.origin + "/channels/" + encodeURIComponent(channel), { shared: true });
  sub.addEventListener("state", function (e) {
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
  });
  sub.addEventListener("truncated", function (e) {
    note("history truncated: #" + (e.detail.since + 1) + " to #" + (e.detail.first - 1) + " are gone");
  });
  sub.addEventListener("message", function (e) {
    var m = e.detail;
    var replayed = counts.messages > 0 && Date.parse(m.time) < liveSince - 250;
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
  });
})();
