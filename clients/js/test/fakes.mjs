// Fakes of the browser's network APIs, installed on globalThis, so the
// client's logic runs under node's test runner with no dependencies.

export const net = { ws: [], es: [], xhr: [] };

export class FakeWebSocket {
  constructor(url) {
    this.url = url;
    this.closed = false;
    net.ws.push(this);
  }
  open() { this.onopen && this.onopen({}); }
  send() {}
  deliver(obj) { this.onmessage && this.onmessage({ data: JSON.stringify(obj) }); }
  drop(code = 1006, reason = "") { this.closed = true; this.onclose && this.onclose({ code, reason }); }
  close() { this.closed = true; }
}

export class FakeEventSource {
  constructor(url, opts) {
    this.url = url;
    this.opts = opts;
    this.readyState = 0;
    this.listeners = {};
    net.es.push(this);
  }
  addEventListener(type, f) { (this.listeners[type] ||= []).push(f); }
  open() { this.readyState = 1; this.onopen && this.onopen({}); }
  deliver(obj, type = "message") { for (const f of this.listeners[type] || []) f({ data: JSON.stringify(obj) }); }
  fail(readyState = 2) { this.readyState = readyState; this.onerror && this.onerror({}); }
  close() { this.readyState = 2; this.closed = true; }
}

export class FakeXHR {
  constructor() {
    this.headers = {};
    this.readyState = 0;
    this.withCredentials = false;
    net.xhr.push(this);
  }
  open(method, url) { this.method = method; this.url = url; }
  setRequestHeader(k, v) { this.headers[k] = v; }
  send(body) { this.body = body; }
  abort() { this.aborted = true; }
  getResponseHeader(n) { return (this.resHeaders || {})[n] ?? null; }
  respond(status, body, headers) {
    this.status = status;
    this.responseText = body === undefined ? "" : JSON.stringify(body);
    this.resHeaders = headers || {};
    this.readyState = 4;
    this.onreadystatechange && this.onreadystatechange();
  }
}

export function install() {
  globalThis.WebSocket = FakeWebSocket;
  globalThis.EventSource = FakeEventSource;
  globalThis.XMLHttpRequest = FakeXHR;
}

export function reset() {
  net.ws.length = net.es.length = net.xhr.length = 0;
}

// until waits (on real timers) for cond to hold.
export async function until(cond, what = "condition") {
  for (let i = 0; i < 400; i++) {
    const v = cond();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error("timed out waiting for " + what);
}

// pending returns the newest request not yet answered whose URL contains s.
export function pending(s) {
  return [...net.xhr].reverse().find((x) => x.readyState != 4 && !x.aborted && x.url.includes(s));
}

export function msg(id, content = "m" + id) {
  return { id, channel: "c", content, time: "2026-12-07T00:00:00Z" };
}

// record collects a subscription's events.
export function record(sub) {
  const r = { ids: [], states: [], truncated: [], errors: [] };
  sub.addEventListener("message", (e) => r.ids.push(e.detail.id));
  sub.addEventListener("state", (e) => r.states.push(e.detail.state + ":" + e.detail.transport));
  sub.addEventListener("truncated", (e) => r.truncated.push(e.detail));
  sub.addEventListener("error", (e) => r.errors.push(e.detail));
  return r;
}

// fakeLocks is navigator.locks within one process: a lock goes to the
// first request waiting for it once its holder's promise settles.
export function fakeLocks() {
  const queues = {};
  const grant = (name) => {
    const q = queues[name];
    if (!q.length || q.held) return;
    const r = q.shift();
    q.held = true;
    Promise.resolve(r.cb()).finally(() => { q.held = false; r.resolve(); grant(name); });
  };
  return {
    request(name, opts, cb) {
      const q = (queues[name] ||= []);
      return new Promise((resolve, reject) => {
        const r = { cb, resolve };
        q.push(r);
        opts.signal.addEventListener("abort", () => {
          const i = q.indexOf(r);
          if (i >= 0) { q.splice(i, 1); reject(new Error("AbortError")); }
        });
        grant(name);
      });
    },
  };
}
