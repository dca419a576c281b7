// The network half of announce.js: URLs, backoff, tokens, HTTP (XMLHttpRequest
// or JSONP) and the three transports. announce.mjs builds on it; the server
// serves the two joined as one file (clients/js/embed.go).

const G = typeof globalThis != "undefined" ? globalThis : self;
const ORDER = ["websocket", "eventsource", "longpoll"];
const MIN_DELAY = 500, MAX_DELAY = 30000;
// The transport that worked, by server, for the page's life.
const worked = {};

// split parses a channel URL into its absolute base (no trailing "/") and query.
function split(u) {
  const q = u.indexOf("?");
  let base = (q < 0 ? u : u.slice(0, q)).replace(/\/+$/, "");
  const loc = G.location;
  if (!/^https?:/i.test(base) && loc) {
    base = base.slice(0, 2) == "//" ? loc.protocol + base : loc.protocol + "//" + loc.host + (base[0] == "/" ? "" : "/") + base;
  }
  return { base, query: q < 0 ? "" : u.slice(q + 1), origin: base.replace(/^(\w+:\/\/[^/]+).*$/, "$1") };
}

function withQuery(url, params) {
  const q = [];
  for (const k in params) if (params[k] != null) q.push(k + "=" + encodeURIComponent(params[k]));
  return q.length ? url + (url.indexOf("?") < 0 ? "?" : "&") + q.join("&") : url;
}

// backoff is full jitter: a random delay up to 0.5 s doubling per attempt, capped at 30 s.
function backoff(attempt) {
  return Math.max(50, Math.random() * Math.min(MAX_DELAY, MIN_DELAY * Math.pow(2, attempt)));
}

// refreshAt returns when a token (a JWT) is about to expire, in ms since
// the epoch: a fifth of its life (at most 5 s) before it does; 0 when unknown.
function refreshAt(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const c = JSON.parse(G.atob(p + "===".slice((p.length + 3) % 4)));
    return c.exp ? c.exp * 1000 - Math.min(5000, ((c.exp - (c.iat || 0)) * 1000) / 5) : 0;
  } catch (e) {
    return 0;
  }
}

function retryAfter(header) {
  const s = Number(header("Retry-After"));
  return s > 0 ? s * 1000 : 0;
}

// request sends one HTTP request with XMLHttpRequest and calls done(status, body, header) once.
function request(method, url, opts, done) {
  const x = new G.XMLHttpRequest();
  x.open(method, url, true);
  const h = opts.headers || {};
  for (const k in h) x.setRequestHeader(k, h[k]);
  if (opts.withCredentials) x.withCredentials = true;
  if (opts.timeout) x.timeout = opts.timeout;
  x.onreadystatechange = function () {
    if (x.readyState != 4) return;
    let body = null;
    try {
      body = JSON.parse(x.responseText);
    } catch (e) {}
    done(x.status, body, (n) => x.getResponseHeader(n));
  };
  x.send(opts.body == null ? null : opts.body);
  return { close() { x.onreadystatechange = null; x.abort(); } };
}

let jsonpSeq = 0;
// jsonp is request's GET for a cross-origin page whose browser lacks CORS.
function jsonp(url, opts, done) {
  const name = "_announce" + ++jsonpSeq, d = G.document;
  const s = d.createElement("script");
  let over = false;
  const finish = (status, body) => {
    if (over) return;
    over = true;
    clearTimeout(timer);
    G[name] = function () {};
    if (s.parentNode) s.parentNode.removeChild(s);
    if (status >= 0) done(status, body, () => null);
  };
  const timer = setTimeout(() => finish(0, null), opts.timeout || 60000);
  G[name] = (body) => finish(200, body);
  s.onerror = () => finish(0, null);
  s.src = withQuery(url, { callback: name });
  (d.head || d.getElementsByTagName("head")[0]).appendChild(s);
  return { close() { finish(-1); } };
}

function crossOriginWithoutCORS(origin) {
  const loc = G.location;
  if (!loc || !G.document || origin == loc.protocol + "//" + loc.host) return false;
  return !G.XMLHttpRequest || !("withCredentials" in new G.XMLHttpRequest());
}

// Each transport opens a connection for sub's generation gen and reports to
// sub with gen, so a late event of a connection already closed is ignored.
const transports = {
  websocket(sub, gen) {
    const w = new G.WebSocket(sub.url("/ws", { since: sub.lastId }).replace(/^http/, "ws"));
    let opened = false;
    w.onopen = () => { opened = true; sub._open(gen); };
    w.onmessage = (e) => sub._frame(gen, e.data);
    w.onclose = (e) => sub._drop(gen, { opened, auth: e.reason == "token expired" });
    return { close() { w.onopen = w.onmessage = w.onclose = null; w.close(); } };
  },

  // eventsource lets the browser reconnect a stream that was open (it obeys
  // the server's retry: and sends Last-Event-ID), within sub's connect timeout.
  eventsource(sub, gen) {
    const e = new G.EventSource(sub.url("/events", { since: sub.lastId }), { withCredentials: !!sub.o.withCredentials });
    let opened = false, auth = false, watchdog;
    const stop = () => { clearTimeout(watchdog); e.close(); };
    e.onopen = () => {
      clearTimeout(watchdog);
      if (opened) sub._setState("live");
      else sub._open(gen);
      opened = true;
    };
    const frame = (ev) => sub._frame(gen, ev.data);
    e.addEventListener("message", frame);
    e.addEventListener("truncated", frame);
    e.addEventListener("deleted", frame);
    e.onerror = (ev) => {
      if (ev.data) { // the server's own error event
        auth = ev.data.indexOf("token expired") >= 0;
        return frame(ev);
      }
      if (opened && !auth && e.readyState == 0) {
        sub._setState("reconnecting");
        clearTimeout(watchdog);
        watchdog = setTimeout(() => { stop(); sub._drop(gen, { opened: true }); }, sub.timeout);
        return;
      }
      stop();
      sub._drop(gen, { opened, auth });
    };
    return { close: stop };
  },

  // longpoll reads the log: every message after the cursor, waiting while there is none.
  longpoll(sub, gen) {
    let req, opened = false;
    const poll = () => {
      // The first request answers at once, so the connection is known to work.
      const since = sub.lastId, wait = opened ? sub.o.pollWait || 25 : 0;
      req = sub._get("/messages", { since, limit: 100, wait }, (wait + 15) * 1000, (status, body, header) => {
        if (status != 200 || !Array.isArray(body)) return sub._drop(gen, { opened, status, header, body });
        if (!opened) { opened = true; sub._open(gen); }
        if (body.length && body[0].id > since + 1) sub._notice(gen, { event: "truncated", since, first: body[0].id });
        for (let i = 0; i < body.length && gen == sub.gen; i++) sub._msg(gen, body[i], i == 0);
        if (gen == sub.gen) poll();
      });
    };
    poll();
    return { close() { req.close(); } };
  },
};

export { G, ORDER, worked, split, withQuery, backoff, refreshAt, retryAfter, request, jsonp, crossOriginWithoutCORS, transports };
