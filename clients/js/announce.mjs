// announce.js, the browser client of announce: the best transport that works,
// resume without a gap, one connection for all tabs. This module is the one
// source; the server serves it as /announce.mjs and, wrapped, as the classic
// script /announce.js. See docs/client.md.

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

class Subscription extends EventTarget {
  constructor(channelURL, options) {
    super();
    const o = (this.o = options || {});
    Object.assign(this, split(channelURL));
    this.order = (o.transports || ORDER).filter((t) => transports[t]);
    const w = worked[this.origin];
    if (w && this.order.indexOf(w) > 0) this.order = [w].concat(this.order.filter((t) => t != w));
    this.timeout = o.timeout || 10000;
    this.lastId = o.since == null ? null : Number(o.since);
    this.token = o.token || null;
    this.state = "connecting";
    this.transport = null;
    this.gen = 0;
    this.idx = 0;
    this.attempt = 0;
    this.jsonp = o.jsonp || crossOriginWithoutCORS(this.origin);
    this._wake = () => {
      if (this.timer && (G.document == null || G.document.visibilityState != "hidden")) this._connect();
    };
    if (G.addEventListener) G.addEventListener("online", this._wake);
    if (G.document && G.document.addEventListener) G.document.addEventListener("visibilitychange", this._wake);
    this._connect();
  }

  close() {
    if (this.state == "closed") return;
    this._stop();
    if (G.removeEventListener) G.removeEventListener("online", this._wake);
    if (G.document && G.document.removeEventListener) G.document.removeEventListener("visibilitychange", this._wake);
    this._setState("closed");
  }

  url(path, params) {
    const p = { token: this.token, name: this.o.name };
    for (const k in params) p[k] = params[k];
    return withQuery(this.base + path + (this.query ? "?" + this.query : ""), p);
  }

  _get(path, params, timeout, done) {
    const u = this.url(path, params);
    return this.jsonp ? jsonp(u, { timeout }, done) : request("GET", u, { timeout, withCredentials: this.o.withCredentials }, done);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state) {
    if (state == this.state && state != "live") return;
    const changed = state != this.state;
    this.state = state;
    if (changed) this._emit("state", { state, transport: this.transport });
  }

  // _stop ends the current connection and any timer; its late events are ignored.
  _stop() {
    this.gen++;
    clearTimeout(this.timer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.probeTimer);
    clearTimeout(this.refreshTimer);
    this.timer = null;
    if (this.conn) this.conn.close();
    this.conn = null;
  }

  // _connect opens the next transport now: a token first if one is due,
  // and the current message first when there is no cursor yet.
  _connect() {
    this._stop();
    if (this.state == "closed") return;
    const gen = this.gen;
    if (this.state != "connecting") this._setState("reconnecting");
    const g = this.o.getToken;
    const due = g && this.token && refreshAt(this.token);
    if (g && (!this.token || (due && due <= Date.now()))) {
      Promise.resolve()
        .then(() => g())
        .then((t) => { if (gen == this.gen) { this.token = t; this._connect(); } })
        .catch((e) => { if (gen == this.gen) { this._emit("error", { error: "getToken: " + e }); this._retry(gen, 0); } });
      return;
    }
    if (this.lastId == null) {
      this.conn = this._get("/status", { since: 0, timeout: 0 }, this.timeout, (status, body, header) => {
        if (status != 200 || !body) return this._drop(gen, { opened: true, status, header, body });
        if (this.lastId == null) this.lastId = 0;
        this._msg(gen, body);
        this._connect();
      });
      return;
    }
    const t = this.order[this.idx];
    this.transport = t;
    this.fresh = true;
    this.connectTimer = setTimeout(() => this._fail(gen), this.timeout);
    if (due) this.refreshTimer = setTimeout(() => this._connect(), due - Date.now());
    try {
      this.conn = transports[t](this, gen);
    } catch (e) {
      setTimeout(() => this._fail(gen), 0);
    }
  }

  // _open: the connection is up. A stream that then delivers nothing while
  // the log has something newer is held back by a proxy: try the next one.
  _open(gen) {
    if (gen != this.gen) return;
    clearTimeout(this.connectTimer);
    this._setState("live");
    if (this.transport == "longpoll") return this._proven();
    const since = this.lastId;
    const probe = (again) => {
      this.probeTimer = setTimeout(() => {
        if (gen != this.gen || this.lastId != since) return;
        this._get("/messages", { since, limit: 1 }, this.timeout, (status, body) => {
          if (gen != this.gen || this.lastId != since) return;
          if (status == 200 && body && body.length) again ? this._fail(gen) : probe(true);
          else if (status == 200) this._proven();
        });
      }, this.timeout);
    };
    probe(false);
  }

  _proven() {
    if (this.transport) worked[this.origin] = this.transport;
    this.attempt = 0;
    this.o.getToken && (this.authRetry = 0);
  }

  // _fail: this transport does not work here; the next one is tried.
  _fail(gen) {
    if (gen == this.gen) this._drop(gen, { opened: false });
  }

  _frame(gen, data) {
    let d;
    try {
      d = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (d.event) this._notice(gen, d);
    else if (d.id != null) this._msg(gen, d);
  }

  _notice(gen, d) {
    if (gen != this.gen) return;
    if (d.event == "truncated") this._emit("truncated", { since: d.since, first: d.first });
    else if (d.event == "error" || d.event == "deleted") this._emit("error", { error: d.error || d.event });
  }

  // _msg delivers m once, in order. An id behind the cursor as a
  // connection's first message means the store was reset: read it from the start.
  _msg(gen, m, first) {
    if (gen != this.gen) return;
    const fresh = this.fresh || first;
    this.fresh = false;
    if (this.lastId != null && m.id <= this.lastId) {
      if (fresh && m.id < this.lastId) {
        this.lastId = 0;
        this._connect();
      }
      return;
    }
    this.lastId = m.id;
    if (this.transport != "longpoll") this._proven();
    if (m.id > 0) this._emit("message", m);
  }

  // _drop: the connection ended. One that was up is retried after a backoff;
  // one that never came up gives way to the next transport at once, and
  // after the last one the round starts again after a backoff.
  _drop(gen, info) {
    if (gen != this.gen) return;
    this.gen++;
    if (this.conn) this.conn.close();
    this.conn = null;
    clearTimeout(this.connectTimer);
    clearTimeout(this.probeTimer);
    const s = info.status;
    if ((info.auth || s == 401) && this.o.getToken && (this.authRetry = (this.authRetry || 0) + 1) <= 2) {
      this.token = null;
      return this._retry(this.gen, 0);
    }
    if (s == 400 || s == 403 || s == 404 || s == 401) {
      this._emit("error", { error: (info.body && info.body.error) || "status " + s, status: s });
      return this.close();
    }
    let delay = 0;
    if (info.opened) delay = backoff(this.attempt++);
    else if (++this.idx >= this.order.length) {
      this.idx = 0;
      delay = backoff(this.attempt++);
    }
    if (info.header) delay = Math.max(delay, retryAfter(info.header));
    this._retry(this.gen, delay);
  }

  _retry(gen, delay) {
    if (gen != this.gen || this.state == "closed") return;
    this._setState("reconnecting");
    this.timer = setTimeout(() => this._connect(), delay);
  }
}

// Shared is a subscription one tab of the browser holds for all: the tab
// that holds the Web Lock connects and relays over a BroadcastChannel.
class Shared extends EventTarget {
  constructor(channelURL, options) {
    super();
    this.lastId = options.since == null ? null : Number(options.since);
    this.state = "connecting";
    this.transport = null;
    this.last = null;
    const name = "announce " + split(channelURL).base;
    this.bc = new G.BroadcastChannel(name);
    this.bc.onmessage = (e) => this._relay(e.data);
    this.abort = new AbortController();
    G.navigator.locks
      .request(name, { signal: this.abort.signal }, () => new Promise((release) => {
        this.release = release;
        const inner = (this.inner = new Subscription(channelURL, Object.assign({}, options, { since: this.lastId, shared: false })));
        ["message", "state", "truncated", "error"].forEach((t) =>
          inner.addEventListener(t, (e) => {
            if (t == "state" && e.detail.state == "closed") return;
            const d = { t, d: e.detail };
            this.bc.postMessage(d);
            this._relay(d);
          }));
      }))
      .catch(() => {});
    this.bc.postMessage({ t: "hello" });
  }

  _relay(x) {
    const d = x.d;
    if (this.state == "closed") return;
    if (x.t == "hello") {
      if (this.inner) this.bc.postMessage({ t: "cursor", d: { id: this.lastId, last: this.last, state: this.state, transport: this.transport } });
      return;
    }
    if (x.t == "cursor") {
      if (this.lastId == null && d.id != null) {
        if (d.last) this._relay({ t: "message", d: d.last });
        this.lastId = d.id;
      }
      x = { t: "state", d };
    }
    if (x.t == "message") {
      if (this.lastId != null && x.d.id <= this.lastId) return;
      this.lastId = x.d.id;
      this.last = x.d;
    }
    if (x.t == "state") {
      if (x.d.state == this.state && x.d.transport == this.transport) return;
      this.state = x.d.state;
      this.transport = x.d.transport;
      x = { t: "state", d: { state: this.state, transport: this.transport } };
    }
    this.dispatchEvent(new CustomEvent(x.t, { detail: x.d }));
  }

  close() {
    if (this.state == "closed") return;
    this.abort.abort();
    if (this.inner) this.inner.close();
    if (this.release) this.release();
    this.bc.close();
    this.state = "closed";
    this.dispatchEvent(new CustomEvent("state", { detail: { state: "closed", transport: this.transport } }));
  }
}

/** subscribe observes a channel; see docs/client.md. */
function subscribe(channelURL, options) {
  const o = options || {};
  const n = G.navigator;
  return o.shared && n && n.locks && G.BroadcastChannel ? new Shared(channelURL, o) : new Subscription(channelURL, o);
}

function randomKey() {
  const c = G.crypto;
  if (c && c.randomUUID) return c.randomUUID();
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
}

/** publish posts content to a channel; a network failure is retried with the same Idempotency-Key. */
function publish(channelURL, content, options) {
  const o = options || {};
  const { base, query } = split(channelURL);
  const headers = { "Content-Type": "application/json", "Idempotency-Key": o.idempotencyKey || randomKey() };
  const cred = o.key || o.token;
  if (cred) headers.Authorization = "Bearer " + cred;
  const retries = o.retries == null ? 5 : o.retries;
  return new Promise((resolve, reject) => {
    let attempt = 0;
    const send = () =>
      request("POST", base + "/messages" + (query ? "?" + query : ""), { headers, body: JSON.stringify({ content }), timeout: o.timeout || 30000, withCredentials: o.withCredentials }, (status, body, header) => {
        if (status >= 200 && status < 300 && body) return resolve(body);
        if ((status == 0 || status == 429 || status >= 502) && attempt < retries) {
          return setTimeout(send, Math.max(backoff(attempt++), retryAfter(header)));
        }
        const e = new Error((body && body.error) || (status ? "publish answered " + status : "publish: network error"));
        e.status = status;
        reject(e);
      });
    send();
  });
}

const announce = { subscribe, publish };
export { subscribe, publish };
export default announce;
