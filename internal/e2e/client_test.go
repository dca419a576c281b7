package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser tests of announce.js: a page of the server's origin loads
// /announce.js, subscribes, and records every message id it is handed; each
// scenario checks the ids are exactly 1..N (none missed, none twice).

// record is what a page's subscription recorded.
type record struct {
	IDs        []uint64 `json:"ids"`
	Dups       int      `json:"dups"`
	States     []string `json:"states"`
	Truncated  []any    `json:"truncated"`
	Transport  string   `json:"transport"`
	State      string   `json:"state"`
	Leader     bool     `json:"leader"`
	TokenCalls int      `json:"tokenCalls"`
}

// loadClient opens a page of base's origin and loads announce.js into it.
func (b *browser) loadClient(base string) {
	b.t.Helper()
	b.dump = func() string { return fmt.Sprintf("the page recorded: %+v", b.record()) }
	b.open(base + "/healthz")
	b.do(chromedp.Evaluate[chromedp.Void](`(() => { const s = document.createElement("script"); s.src = "/announce.js"; document.head.appendChild(s); })()`))
	b.waitJS("announce.js to load", arriveTimeout, `typeof announce == "object"`)
}

// subscribe subscribes the page to channel with the options (a JavaScript
// object literal) and records what it gets in window.rec.
func (b *browser) subscribe(channel, options string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
  window.rec = {ids: [], dups: 0, states: [], truncated: [], tokenCalls: 0};
  window.sub = announce.subscribe(location.origin + "/channels/` + channel + `", ` + options + `);
  sub.addEventListener("message", (e) => { if (rec.ids.includes(e.detail.id)) rec.dups++; rec.ids.push(e.detail.id); });
  sub.addEventListener("state", (e) => rec.states.push(e.detail.state + ":" + e.detail.transport));
  sub.addEventListener("truncated", (e) => rec.truncated.push(e.detail));
})()`))
}

func (b *browser) record() record {
	b.t.Helper()
	raw := eval[[]byte](b, `!window.rec ? "{}" : JSON.stringify(Object.assign({}, rec, {transport: sub.transport, state: sub.state, leader: !!sub.inner}))`)
	var r record
	if err := json.Unmarshal([]byte(mustString(b.t, raw)), &r); err != nil {
		b.t.Fatalf("reading the record: %v: %s", err, raw)
	}
	return r
}

// mustString undoes the JSON string eval returns for JSON.stringify.
func mustString(t *testing.T, raw []byte) string {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("not a string: %s", raw)
	}
	return s
}

// waitIDs waits until the page has recorded n messages.
func (b *browser) waitIDs(n int, timeout time.Duration) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("%d messages", n), timeout, fmt.Sprintf(`window.rec && rec.ids.length >= %d`, n))
}

// checkIDs fails unless the page got exactly 1..n, in order.
func checkIDs(t *testing.T, who string, r record, n int) {
	t.Helper()
	ok := len(r.IDs) == n && r.Dups == 0
	for i := 0; ok && i < n; i++ {
		ok = r.IDs[i] == uint64(i+1)
	}
	if !ok || len(r.Truncated) > 0 {
		t.Errorf("%s got ids %v (%d twice, truncated %v); want 1..%d once each, in order (states %v)", who, r.IDs, r.Dups, r.Truncated, n, r.States)
	}
}

// checkEndsOn is checkIDs for a client that must have ended on transport.
func checkEndsOn(t *testing.T, r record, n int, transport string) {
	t.Helper()
	checkIDs(t, "the "+transport+" client", r, n)
	if r.Transport != transport {
		t.Errorf("transport %q, want %s (states %v)", r.Transport, transport, r.States)
	}
}

// publishRange publishes "Message from".."Message to".
func publishRange(t *testing.T, base, channel string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		publish(t, base, channel, fmt.Sprintf("Message %d", i), "")
	}
}

// blockJS makes the page's WebSocket and EventSource constructors connect
// to a closed port, as a proxy that refuses them would.
const blockJS = `(() => {
  const RealWS = WebSocket, RealES = EventSource;
  window.WebSocket = function () { return new RealWS("ws://127.0.0.1:9/"); };
  window.EventSource = function () { return new RealES("http://127.0.0.1:9/"); };
})()`

// keepSocketsJS keeps the page's WebSockets in window.sockets, so a test
// can cut them as a network or a proxy would; once window.blocked is set,
// new ones connect to a closed port.
const keepSocketsJS = `(() => {
  const RealWS = WebSocket;
  window.sockets = [];
  window.WebSocket = function (u) { const w = new RealWS(window.blocked ? "ws://127.0.0.1:9/" : u); sockets.push(w); return w; };
})()`

// TestClientFallsBackToLongPoll: WebSocket and EventSource are both
// blocked: the client ends on long-poll and misses nothing.
func TestClientFallsBackToLongPoll(t *testing.T) {
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.loadClient(n.URL())
	b.do(chromedp.Evaluate[chromedp.Void](blockJS))
	b.subscribe("fallback", `{since: 0}`)
	b.waitJS("long-poll to be live", resumeTimeout, `sub.transport == "longpoll" && sub.state == "live"`)
	publishRange(t, n.URL(), "fallback", 1, 20)
	b.waitIDs(20, arriveTimeout)
	checkEndsOn(t, b.record(), 20, "longpoll")
}

// TestClientJSONP: the long-poll over JSONP (what a cross-origin page
// whose browser lacks CORS gets) starts from the current message and reads
// the log with nothing missed.
func TestClientJSONP(t *testing.T) {
	n := startNode(t, serve.Config{})
	publishRange(t, n.URL(), "jsonp", 1, 3)
	b := newBrowser(t)
	b.loadClient(n.URL())
	b.subscribe("jsonp", `{transports: ["longpoll"], jsonp: true}`)
	b.waitIDs(1, arriveTimeout) // the current message, #3
	publishRange(t, n.URL(), "jsonp", 4, 10)
	b.waitIDs(8, arriveTimeout)
	r := b.record()
	if want := []uint64{3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(r.IDs, want) || r.Dups != 0 {
		t.Errorf("over JSONP the client got %v, want %v", r.IDs, want)
	}
	if n := eval[int](b, `document.querySelectorAll("script[src*=callback]").length`); n > 1 {
		t.Errorf("%d JSONP script elements are left in the page; want at most the one waiting", n)
	}
}

// TestClientBurstDuringSwitch: a live WebSocket is cut and WebSocket then
// refused, and 195 messages are published in a burst while the client
// falls back: it goes on over EventSource with every message once, in order.
func TestClientBurstDuringSwitch(t *testing.T) {
	n := startNode(t, serve.Config{History: 1000}) // the whole burst stays in history
	b := newBrowser(t)
	b.loadClient(n.URL())
	b.do(chromedp.Evaluate[chromedp.Void](keepSocketsJS))
	b.subscribe("burst", `{since: 0}`)
	b.waitJS("the WebSocket to be live", resumeTimeout, `sub.transport == "websocket" && sub.state == "live"`)

	publishRange(t, n.URL(), "burst", 1, 5)
	b.waitIDs(5, arriveTimeout)
	b.do(chromedp.Evaluate[chromedp.Void](`window.blocked = true; sockets.forEach((w) => w.close())`))
	publishRange(t, n.URL(), "burst", 6, 200) // while the client falls back
	b.waitIDs(200, resumeTimeout)
	checkEndsOn(t, b.record(), 200, "eventsource")
}

// TestClientServerRestart: the server restarts on the same data dir
// mid-stream; the client resumes from its last id.
func TestClientServerRestart(t *testing.T) {
	dir := t.TempDir()
	n1 := startNode(t, serve.Config{DataDir: dir})
	addr := n1.Addr()
	b := newBrowser(t)
	b.loadClient(n1.URL())
	b.subscribe("restart", `{since: 0}`)
	b.waitJS("live", arriveTimeout, `sub.state == "live"`)
	publishRange(t, n1.URL(), "restart", 1, 5)
	b.waitIDs(5, arriveTimeout)
	n1.shutdown(t)
	b.waitJS("the client to notice", resumeTimeout, `sub.state == "reconnecting"`)
	n2 := startNode(t, serve.Config{DataDir: dir, Listen: addr})
	publishRange(t, n2.URL(), "restart", 6, 10) // some before it is back, so they are replayed
	b.waitIDs(10, resumeTimeout)
	publishRange(t, n2.URL(), "restart", 11, 12)
	b.waitIDs(12, arriveTimeout)
	checkIDs(t, "the client", b.record(), 12)
}

// setOffline emulates the network going away (or coming back) through the
// DevTools protocol: requests fail, and navigator.onLine and the page's
// online/offline events follow.
func (b *browser) setOffline(offline bool) {
	b.t.Helper()
	ctx, cancel := contextFor(b)
	defer cancel()
	var conds []*network.Conditions
	if offline {
		conds = []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}}
	}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conds}); err != nil {
		b.t.Fatalf("emulating offline=%v: %v", offline, err)
	}
	if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		b.t.Fatalf("overriding the network state offline=%v: %v", offline, err)
	}
}

// TestClientOfflineOnline: the browser goes offline while messages are
// published and comes back online: the client reconnects at once (not
// after its backoff) and gets what it missed.
func TestClientOfflineOnline(t *testing.T) {
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.loadClient(n.URL())
	b.do(chromedp.Evaluate[chromedp.Void](keepSocketsJS))
	b.subscribe("offline", `{since: 0}`)
	b.waitJS("live", arriveTimeout, `sub.state == "live"`)
	publishRange(t, n.URL(), "offline", 1, 3)
	b.waitIDs(3, arriveTimeout)

	b.do(chromedp.Evaluate[chromedp.Void](`window.addEventListener("offline", () => { window.wentOffline = true; })`))
	b.setOffline(true)
	b.waitJS("the page to be offline", arriveTimeout, `window.wentOffline === true && !navigator.onLine`)
	// Chromium keeps an open WebSocket on the loopback through the
	// emulation, so the page cuts it as a lost network would.
	b.do(chromedp.Evaluate[chromedp.Void](`sockets.forEach((w) => w.close())`))
	b.waitJS("reconnecting offline to fail", resumeTimeout, `sub.state == "reconnecting" && sockets.length >= 3`)
	publishRange(t, n.URL(), "offline", 4, 8)
	b.setOffline(false)
	b.waitIDs(8, resumeTimeout)
	publishRange(t, n.URL(), "offline", 9, 10)
	b.waitIDs(10, arriveTimeout)
	r := b.record()
	checkIDs(t, "the client", r, 10)
	t.Logf("states through offline and online: %v", r.States)
	if !slices.Contains(r.States, "reconnecting:websocket") {
		t.Errorf("the client never reconnected: states %v", r.States)
	}
	if r.State != "live" {
		t.Errorf("state %q after coming back online (states %v)", r.State, r.States)
	}
}

// TestClientTokenRenewal: a private channel with 3 s tokens; getToken
// mints each one. Messages published over several token lifetimes all
// arrive once, and getToken was called again for each renewal.
func TestClientTokenRenewal(t *testing.T) {
	const key = "the-publish-key-of-this-test"
	n := startNode(t, serve.Config{PublishKey: key})
	b := newBrowser(t)
	b.loadClient(n.URL())
	b.subscribe("private-ops", `{since: 0, getToken: () => {
    rec.tokenCalls++;
    return fetch("/channels/private-ops/tokens", {method: "POST", headers: {"Authorization": "Bearer `+key+`", "Content-Type": "application/json"}, body: JSON.stringify({duration: "3s"})})
      .then((r) => r.json()).then((a) => a.token);
  }}`)
	b.waitJS("live", arriveTimeout, `sub.state == "live"`)
	for i := 1; i <= 12; i++ {
		publish(t, n.URL(), "private-ops", fmt.Sprintf("Message %d", i), key)
		time.Sleep(700 * time.Millisecond) // spread over about three token lifetimes
	}
	b.waitIDs(12, resumeTimeout)
	r := b.record()
	checkIDs(t, "the client", r, 12)
	if r.TokenCalls < 3 {
		t.Errorf("getToken was called %d times over about 8 s of 3 s tokens; want at least 3", r.TokenCalls)
	}
}

// observers returns the channel's observer count over every transport.
func observers(t *testing.T, base, channel string) int {
	t.Helper()
	var info struct {
		Observers map[string]int `json:"observers"`
	}
	raw := get(t, base+"/channels/"+channel)
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		t.Fatalf("channel info %s: %v", raw, err)
	}
	sum := 0
	for _, v := range info.Observers {
		sum += v
	}
	return sum
}

// waitObserverTotal waits until the channel has exactly n observers.
func waitObserverTotal(t *testing.T, base, channel string, n int) {
	t.Helper()
	testenv.WaitFor(t, resumeTimeout, fmt.Sprintf("exactly %d observers on %s", n, channel), func() bool { return observers(t, base, channel) == n })
}

// TestClientSharedTabs: three tabs subscribe with shared: true. The server
// sees one connection; every tab gets every message; when the leader tab
// closes, another takes over and no tab misses a message.
func TestClientSharedTabs(t *testing.T) {
	n := startNode(t, serve.Config{})
	root := newBrowser(t)
	tabs := make([]*browser, 3)
	cancels := make([]context.CancelFunc, 3)
	for i := range tabs {
		ctx, cancel := chromedp.NewContext(root.ctx)
		cancels[i] = cancel
		t.Cleanup(cancel)
		if err := chromedp.Do(ctx); err != nil { // opens the tab, with no deadline (see chromedp.Run)
			t.Fatalf("opening tab %d: %v", i, err)
		}
		tabs[i] = &browser{t: t, ctx: ctx}
		tabs[i].loadClient(n.URL())
		tabs[i].subscribe("shared", `{since: 0, shared: true}`)
		tabs[i].waitJS("the tab to be live", arriveTimeout, `sub.state == "live"`)
	}
	if got := observers(t, n.URL(), "shared"); got != 1 {
		t.Errorf("three shared tabs hold %d server connections, want 1", got)
	}
	publishRange(t, n.URL(), "shared", 1, 10)
	leader := -1
	for i, tab := range tabs {
		tab.waitIDs(10, arriveTimeout)
		r := tab.record()
		checkIDs(t, fmt.Sprintf("tab %d", i), r, 10)
		if r.Leader {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no tab leads")
	}

	// Close the leader's tab, and publish while another tab takes over.
	cancels[leader]()
	publishRange(t, n.URL(), "shared", 11, 30)
	for i, tab := range tabs {
		if i == leader {
			continue
		}
		tab.waitIDs(30, resumeTimeout)
		checkIDs(t, fmt.Sprintf("tab %d after the leader closed", i), tab.record(), 30)
	}
	waitObserverTotal(t, n.URL(), "shared", 1)
	publishRange(t, n.URL(), "shared", 31, 31)
	for i, tab := range tabs {
		if i != leader {
			tab.waitIDs(31, arriveTimeout)
			checkIDs(t, fmt.Sprintf("tab %d", i), tab.record(), 31)
		}
	}
}

// TestDemoAutoPanel: the demo's fourth panel, announce.js (automatic),
// goes live on the transport it chose, shows what is published, and
// counts a reconnect and the replayed messages after a restart.
func TestDemoAutoPanel(t *testing.T) {
	dir := t.TempDir()
	n1 := startNode(t, serve.Config{DataDir: dir})
	addr := n1.Addr()
	b := newBrowser(t)
	b.open(n1.URL() + "/?channel=auto")
	b.waitJS("the announce.js panel to be live", arriveTimeout, `document.getElementById("auto").getAttribute("data-state") === "live"`)
	if tr := eval[string](b, `document.getElementById("auto").getAttribute("data-transport")`); tr != "websocket" {
		t.Errorf("the announce.js panel chose %q, want websocket", tr)
	}
	publish(t, n1.URL(), "auto", "Before the restart", "")
	b.waitJS("the message in the panel", arriveTimeout, `!!document.querySelector("#auto .log li[data-id='1']")`)

	n1.shutdown(t)
	b.waitJS("the panel to notice", resumeTimeout, `document.getElementById("auto").getAttribute("data-state") === "reconnecting"`)
	n2 := startNode(t, serve.Config{DataDir: dir, Listen: addr})
	publish(t, n2.URL(), "auto", "While it was away", "")
	b.waitJS("the replayed message", resumeTimeout, `!!document.querySelector("#auto .log li[data-id='2']")`)
	b.waitJS("the counters", arriveTimeout, `(() => { const p = document.getElementById("auto");
	  return p.getAttribute("data-state") === "live" && p.getAttribute("data-reconnects") === "1" && p.getAttribute("data-messages") === "2"; })()`)
}
