import { test, mock } from "node:test";
import assert from "node:assert/strict";
import { install, reset, net, until, pending, msg, record, fakeLocks } from "./fakes.mjs";

install();
// The page's window: online and visibilitychange are dispatched on it.
const win = new EventTarget();
globalThis.addEventListener = win.addEventListener.bind(win);
globalThis.removeEventListener = win.removeEventListener.bind(win);
const announce = (await import("../announce.mjs")).default;

// Each test uses its own host: the client remembers per server what worked.
let hosts = 0;
const channel = () => "http://h" + ++hosts + ".test/channels/c";

function jwt(claims) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return b({ alg: "HS256" }) + "." + b(claims) + ".sig";
}

test("websocket: in order, no duplicate, resumes from lastId after a drop", async () => {
  reset();
  const sub = announce.subscribe(channel(), { since: 0 });
  const r = record(sub);
  const ws = await until(() => net.ws[0], "a WebSocket");
  assert.match(ws.url, /^ws:\/\/h\d+\.test\/channels\/c\/ws\?since=0$/);
  ws.open();
  assert.equal(sub.state, "live");
  assert.equal(sub.transport, "websocket");
  for (const id of [1, 2, 2, 3]) ws.deliver(msg(id));
  assert.deepEqual(r.ids, [1, 2, 3]);
  assert.equal(sub.lastId, 3);
  ws.drop(1001);
  assert.equal(sub.state, "reconnecting");
  const again = await until(() => net.ws[1], "a second WebSocket");
  assert.match(again.url, /since=3$/);
  again.open();
  again.deliver(msg(3));
  again.deliver(msg(4));
  assert.deepEqual(r.ids, [1, 2, 3, 4]);
  sub.close();
  assert.equal(sub.state, "closed");
  assert.deepEqual(r.states, ["live:websocket", "reconnecting:websocket", "live:websocket", "closed:websocket"]);
});

test("without since: the current message (from the channel's info) first, then the stream from its id", async () => {
  reset();
  const sub = announce.subscribe(channel());
  const r = record(sub);
  const x = await until(() => pending("/channels/c"), "the channel's info");
  assert.match(x.url, /^http:\/\/h\d+\.test\/channels\/c$/);
  x.respond(200, { channel: "c", current: msg(5), observers: {} });
  assert.deepEqual(r.ids, [5]);
  const ws = await until(() => net.ws[0]);
  assert.match(ws.url, /since=5$/);
  sub.close();
});

test("fallback: websocket then eventsource fail, long-poll reads the log; what worked is remembered", async () => {
  reset();
  const url = channel();
  const sub = announce.subscribe(url, { since: 0, name: "ann" });
  const r = record(sub);
  (await until(() => net.ws[0])).drop(1006);
  const es = await until(() => net.es[0], "an EventSource");
  assert.match(es.url, /\/events\?name=ann&since=0$/);
  es.fail(2);
  const x = await until(() => pending("/messages"), "a log request");
  assert.match(x.url, /\/channels\/c\/messages\?name=ann&since=0&limit=100&wait=0$/);
  x.respond(200, [msg(1), msg(2)]);
  assert.equal(sub.transport, "longpoll");
  assert.equal(sub.state, "live");
  const next = await until(() => pending("since=2"));
  next.respond(200, [msg(3)]);
  assert.deepEqual(r.ids, [1, 2, 3]);
  sub.close();

  const second = announce.subscribe(url, { since: 3 });
  assert.ok(pending("/messages?since=3"), "the second subscription starts with long-poll");
  assert.equal(net.ws.length, 1, "and opens no WebSocket");
  second.close();
});

test("a constructor that throws counts as a transport that cannot connect", async () => {
  reset();
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = function () { throw new Error("blocked"); };
  try {
    const sub = announce.subscribe(channel(), { since: 0 });
    await until(() => net.es[0], "the EventSource after the WebSocket threw");
    sub.close();
  } finally {
    globalThis.WebSocket = saved;
  }
});

test("a stream that delivers nothing the log has gives way to the next transport", async () => {
  reset();
  const sub = announce.subscribe(channel(), { since: 3, timeout: 30 });
  const ws = await until(() => net.ws[0]);
  ws.open();
  (await until(() => pending("/messages?since=3&limit=1"), "the first probe")).respond(200, [msg(4)]);
  (await until(() => pending("/messages?since=3&limit=1"), "the second probe")).respond(200, [msg(4)]);
  const es = await until(() => net.es[0], "the EventSource");
  assert.match(es.url, /since=3$/);
  sub.close();
});

test("a quiet stream whose log has nothing newer stays", async () => {
  reset();
  const sub = announce.subscribe(channel(), { since: 3, timeout: 30 });
  (await until(() => net.ws[0])).open();
  (await until(() => pending("/messages?since=3&limit=1"))).respond(200, []);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(net.es.length, 0);
  assert.equal(sub.transport, "websocket");
  sub.close();
});

test("truncated: the server's notice, and a gap in the log", async () => {
  reset();
  const sub = announce.subscribe(channel(), { since: 3, transports: ["websocket"] });
  const r = record(sub);
  const ws = await until(() => net.ws[0]);
  ws.open();
  ws.deliver({ event: "truncated", since: 3, first: 7 });
  ws.deliver(msg(7));
  assert.deepEqual(r.truncated, [{ since: 3, first: 7 }]);
  sub.close();

  const lp = announce.subscribe(channel(), { since: 3, transports: ["longpoll"] });
  const r2 = record(lp);
  (await until(() => pending("/messages"))).respond(200, [msg(9), msg(10)]);
  assert.deepEqual(r2.truncated, [{ since: 3, first: 9 }]);
  assert.deepEqual(r2.ids, [9, 10]);
  lp.close();
});

test("a first message behind the cursor (the store was reset) rereads from the start", async () => {
  reset();
  const sub = announce.subscribe(channel(), { since: 10, transports: ["websocket"] });
  const r = record(sub);
  const ws = await until(() => net.ws[0]);
  ws.open();
  ws.deliver(msg(2));
  const again = await until(() => net.ws[1]);
  assert.match(again.url, /since=0$/);
  again.open();
  again.deliver(msg(1));
  again.deliver(msg(2));
  assert.deepEqual(r.ids, [1, 2]);
  sub.close();
});

test("getToken: before connecting, when the server says the token expired, and on 401", async () => {
  reset();
  const now = Math.floor(Date.now() / 1000);
  const tokens = [jwt({ exp: now + 3600, iat: now, n: 1 }), jwt({ exp: now + 3600, iat: now, n: 2 }), jwt({ exp: now + 3600, iat: now, n: 3 })];
  let calls = 0;
  const sub = announce.subscribe(channel(), { since: 0, transports: ["websocket", "longpoll"], getToken: () => Promise.resolve(tokens[calls++]) });
  const ws = await until(() => net.ws[0]);
  assert.ok(ws.url.includes("token=" + encodeURIComponent(tokens[0])));
  ws.open();
  ws.deliver(msg(1));
  ws.drop(1008, "token expired");
  const ws2 = await until(() => net.ws[1]);
  assert.equal(calls, 2);
  assert.ok(ws2.url.includes("token=" + encodeURIComponent(tokens[1])) && ws2.url.endsWith("since=1"));
  ws2.drop(1006); // cannot connect: long-poll next
  (await until(() => pending("/messages"))).respond(401, { error: "token expired" });
  await until(() => calls == 3, "a third token");
  const x = await until(() => pending("/messages"));
  assert.ok(x.url.includes("token=" + encodeURIComponent(tokens[2])));
  sub.close();
});

test("a token about to expire is renewed before it does", async () => {
  reset();
  const now = Math.floor(Date.now() / 1000);
  let calls = 0;
  const getToken = () => { calls++; return jwt({ iat: now, exp: now + 1 + calls }); };
  const sub = announce.subscribe(channel(), { since: 0, transports: ["websocket"], getToken });
  (await until(() => net.ws[0])).open();
  await until(() => net.ws.length >= 2 && calls >= 2, "a renewal");
  assert.ok(net.ws[0].closed);
  sub.close();
});

test("backoff: full jitter from 0.5 s doubling to 30 s; online reconnects at once", async () => {
  reset();
  mock.timers.enable({ apis: ["setTimeout"] });
  const random = mock.method(Math, "random", () => 0.999999);
  try {
    const sub = announce.subscribe(channel(), { since: 0, transports: ["websocket"] });
    const waits = [];
    for (let i = 0; i < 8; i++) {
      const ws = net.ws[i];
      ws.open();
      ws.drop(1006);
      let waited = 0;
      while (net.ws.length == i + 1 && waited < 60000) {
        mock.timers.tick(50);
        waited += 50;
      }
      waits.push(waited);
    }
    assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    net.ws[8].drop(1006);
    mock.timers.tick(50);
    assert.equal(net.ws.length, 9);
    win.dispatchEvent(new Event("online"));
    assert.equal(net.ws.length, 10, "online reconnects without waiting");
    sub.close();
  } finally {
    random.mock.restore();
    mock.timers.reset();
  }
});

test("Retry-After holds the next long-poll back", async () => {
  reset();
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const sub = announce.subscribe(channel(), { since: 0, transports: ["longpoll"] });
    net.xhr[0].respond(200, []);
    net.xhr[1].respond(503, { error: "unavailable" }, { "Retry-After": "7" });
    mock.timers.tick(6900);
    assert.equal(net.xhr.length, 2);
    mock.timers.tick(200);
    assert.equal(net.xhr.length, 3);
    sub.close();
  } finally {
    mock.timers.reset();
  }
});

test("eventsource: the browser's own reconnect is let be; a closed stream is reopened from lastId", async () => {
  reset();
  const sub = announce.subscribe(channel(), { since: 0, transports: ["eventsource"] });
  const r = record(sub);
  const es = await until(() => net.es[0]);
  es.open();
  es.deliver(msg(1));
  es.fail(0); // CONNECTING: the browser retries after the server's retry:
  assert.equal(sub.state, "reconnecting");
  es.open();
  assert.equal(sub.state, "live");
  es.deliver(msg(2));
  es.fail(2);
  const es2 = await until(() => net.es[1]);
  assert.match(es2.url, /since=2$/);
  assert.deepEqual(r.ids, [1, 2]);
  sub.close();
});

test("a refused channel (400) is an error event and closes", async () => {
  reset();
  const sub = announce.subscribe(channel(), { since: 0, transports: ["longpoll"] });
  const r = record(sub);
  (await until(() => pending("/messages"))).respond(400, { error: "bad channel" });
  assert.deepEqual(r.errors, [{ error: "bad channel", status: 400 }]);
  assert.equal(sub.state, "closed");
});

test("shared without Web Locks connects on its own", async () => {
  reset();
  const sub = announce.subscribe(channel(), { since: 0, shared: true });
  await until(() => net.ws[0]);
  sub.close();
});

test("publish: a network failure is retried with the same Idempotency-Key", async () => {
  reset();
  const p = announce.publish(channel(), "hello", { key: "k" });
  const first = await until(() => pending("/messages"));
  assert.equal(first.method, "POST");
  assert.equal(first.body, '{"content":"hello"}');
  assert.equal(first.headers.Authorization, "Bearer k");
  const key = first.headers["Idempotency-Key"];
  assert.ok(key);
  first.respond(0);
  const second = await until(() => pending("/messages"));
  assert.notEqual(second, first);
  assert.equal(second.headers["Idempotency-Key"], key);
  second.respond(201, msg(7, "hello"));
  assert.deepEqual(await p, msg(7, "hello"));
});

test("publish: a refusal rejects with the server's error and status", async () => {
  reset();
  const p = announce.publish(channel(), "", { idempotencyKey: "same" });
  const x = await until(() => pending("/messages"));
  assert.equal(x.headers["Idempotency-Key"], "same");
  x.respond(400, { error: "content is empty" });
  await assert.rejects(p, (e) => e.status == 400 && e.message == "content is empty");
});

test("shared: one tab leads and relays; a tab behind reads the gap from the log; another takes over when the leader closes", async () => {
  reset();
  Object.defineProperty(globalThis, "navigator", { value: { locks: fakeLocks() }, configurable: true, writable: true });
  try {
    const url = channel();
    const a = announce.subscribe(url, { since: 0, shared: true });
    const ra = record(a);
    const ws = await until(() => net.ws[0], "the leader's WebSocket");
    ws.open();
    ws.deliver(msg(1));
    ws.deliver(msg(2));

    const b = announce.subscribe(url, { since: 0, shared: true });
    const rb = record(b);
    const fill = await until(() => pending("/messages?since=0&limit=2"), "the follower reading its gap");
    fill.respond(200, [msg(1), msg(2)]);
    await until(() => rb.ids.length == 2, "the follower's first two");
    assert.equal(b.state, "live");
    assert.equal(b.transport, "websocket");
    ws.deliver(msg(3));
    await until(() => rb.ids.length == 3, "the relayed message");
    assert.equal(net.ws.length, 1, "one connection for both");

    a.close();
    const ws2 = await until(() => net.ws[1], "the new leader's WebSocket");
    assert.match(ws2.url, /since=3$/);
    ws2.open();
    ws2.deliver(msg(4));
    await until(() => rb.ids.length == 4);
    assert.deepEqual(ra.ids, [1, 2, 3]);
    assert.deepEqual(rb.ids, [1, 2, 3, 4]);
    b.close();
  } finally {
    delete globalThis.navigator;
  }
});
