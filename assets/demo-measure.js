// The teaching demo, part 1 of 4: measuring. The clock, the byte counts
// and the formatters every panel shares (demo-panel.js, demo-wire.js and
// demo.js read them from window.announceDemo).
(function () {
  "use strict";
  var demo = window.announceDemo = window.announceDemo || {};

  // renderedCurrent reads the announcement the server rendered into the page
  // as data (a script of type application/json: the page runs no inline script).
  function renderedCurrent() {
    var el = document.getElementById("announce-current");
    try { return el ? JSON.parse(el.textContent) : null; } catch (e) { return null; }
  }

  var channel = document.body.getAttribute("data-channel");
  demo.channel = channel;
  demo.start = renderedCurrent() || {id: 0, channel: channel, content: ""};
  demo.base = "/channels/" + encodeURIComponent(channel);
  // A private channel's page is opened with ?token=; every transport passes it on.
  demo.token = new URLSearchParams(location.search).get("token");

  var encoder = new TextEncoder();
  demo.utf8Length = function (s) { return encoder.encode(s).length; };

  // now is this browser's wall clock in milliseconds, with the fraction the
  // high-resolution timer adds (on localhost a message takes about one ms).
  // That timer is monotonic and can drift from the wall clock in a page left
  // open for days (a laptop asleep, the clock set): then Date.now() it is.
  demo.now = function () {
    var wall = Date.now();
    if (!window.performance || !performance.timeOrigin) return wall;
    var fine = performance.timeOrigin + performance.now();
    return Math.abs(fine - wall) < 2 ? fine : wall;
  };

  // acceptedAt reads message.time, RFC 3339 with microseconds, keeping the
  // fraction of a millisecond that Date.parse would drop.
  demo.acceptedAt = function (time) {
    var m = /^(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(time || "");
    if (!m) return NaN;
    var ms = Date.parse(m[1] + m[3]);
    return m[2] ? ms + parseFloat("0." + m[2]) * 1000 : ms;
  };

  // The formatters return [number, unit], so the counters can set the unit
  // in smaller type; join them for plain text.
  demo.latencyParts = function (ms) {
    if (ms == null || isNaN(ms)) return ["–", ""];
    if (Math.abs(ms) < 10) return [ms.toFixed(1), "ms"];
    if (Math.abs(ms) < 1000) return [String(Math.round(ms)), "ms"];
    if (Math.abs(ms) < 60000) return [(ms / 1000).toFixed(1), "s"];
    return [String(Math.round(ms / 60000)), "min"];
  };

  demo.bytesParts = function (n) {
    if (n == null || isNaN(n)) return ["–", ""];
    if (n < 1024) return [String(n), "B"];
    if (n < 1048576) return [(n / 1024).toFixed(1), "KiB"];
    return [(n / 1048576).toFixed(1), "MiB"];
  };

  demo.joined = function (parts) { return parts[1] ? parts[0] + " " + parts[1] : parts[0]; };
  demo.formatLatency = function (ms) { return demo.joined(demo.latencyParts(ms)); };

  demo.formatTime = function (time) {
    var t = new Date(demo.acceptedAt(time));
    if (isNaN(t.getTime())) return "";
    return t.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
  };

  demo.median = function (xs) {
    if (!xs.length) return NaN;
    var s = xs.slice().sort(function (a, b) { return a - b; });
    var mid = s.length >> 1;
    return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  };

  // backoff is the wait before retry number n (1, 2, ...): 0.5 s doubling to
  // 10 s, with jitter so a restarted server is not hit by every page at once.
  demo.backoff = function (n) {
    var ms = Math.min(10000, 500 * Math.pow(2, Math.max(0, n - 1)));
    return Math.round(ms * (0.8 + Math.random() * 0.4));
  };

  demo.seconds = function (ms) { return (ms / 1000).toFixed(1) + " s"; };
})();
