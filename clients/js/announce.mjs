// announce.js, the browser client of announce: the best transport that works,
// resume without a gap, one connection for all tabs. This module and
// transport.mjs are its source; the server joins them into /announce.mjs and,
// wrapped, the classic script /announce.js (embed.go). See docs/client.md.

import { G, ORDER, worked, split, withQuery, backoff, refreshAt, retryAfter, request, jsonp, crossOriginWithoutCORS, transports } from "./transport.mjs";

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
    if (state == this.state) return;
    this.state = state;
    this._emit("state", { state, transport: this.transport });
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
        .catch((e) => { if (gen == this.gen) { this._emit("error", { error: "getToken: " + e }); this._retry(gen, backoff(this.attempt++)); } });
      return;
    }
    if (this.lastId == null) {
      // The channel's info has its current message; JSONP asks the long-poll for it at once.
      const path = this.jsonp ? "/status" : "", q = this.jsonp ? { since: 0, timeout: 0 } : {};
      this.conn = this._get(path, q, this.timeout, (status, body, header) => {
        const cur = body && (this.jsonp ? body : body.current);
        if (status != 200 || !cur) return this._drop(gen, { opened: true, status, header, body });
        this.lastId = 0;
        this._msg(gen, cur);
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
    this.o = options;
    this.channelURL = channelURL;
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
    if (this.queue) return this.queue.push(x);
    if (x.t == "cursor") {
      if (this.lastId == null && d.id != null) {
        if (d.last) this._relay({ t: "message", d: d.last });
        this.lastId = d.id;
      } else if (d.id > this.lastId) this._fill(d.id);
      x = { t: "state", d };
    }
    if (x.t == "message") {
      if (this.lastId != null && x.d.id <= this.lastId) return;
      if (this.lastId != null && x.d.id > this.lastId + 1 && !this.inner) {
        this._fill(x.d.id - 1);
        return this.queue.push(x);
      }
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

  // _fill reads the log up to id for a tab behind the leader (it started
  // from an older since), holding back what is relayed meanwhile.
  _fill(id) {
    const o = this.o, since = this.lastId, held = (this.queue = []);
    const u = split(this.channelURL);
    Promise.resolve(o.token || (o.getToken && o.getToken()))
      .then((token) => new Promise((done) => {
        const url = withQuery(u.base + "/messages" + (u.query ? "?" + u.query : ""), { token, since, limit: id - since });
        request("GET", url, { withCredentials: o.withCredentials, timeout: 30000 }, (status, body) => done(status == 200 && Array.isArray(body) ? body : []));
      }))
      .catch(() => [])
      .then((list) => {
        this.queue = null;
        const first = list.length ? list[0].id : id + 1; // nothing read: the gap is given up
        if (first > since + 1) this._relay({ t: "truncated", d: { since, first } });
        if (!list.length) this.lastId = id;
        list.forEach((m) => this._relay({ t: "message", d: m }));
        held.forEach((x) => this._relay(x));
      });
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
