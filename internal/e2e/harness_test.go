package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
	"github.com/chromedp/chromedp"
)

// Bounds of the waits. They are generous because the tests run under -race
// on loaded CI machines; a passing test never waits for them.
const (
	actionTimeout = 30 * time.Second // one browser action: navigate, click, evaluate
	arriveTimeout = 20 * time.Second // a published message reaching every panel
	resumeTimeout = 45 * time.Second // every panel reconnecting after a restart (SSE retries after 3 s)
)

// transports are the demo's panels, by element id.
var transports = []string{"poll", "sse", "ws"}

// node is a running server that is shut down once, by the test or at cleanup.
type node struct {
	*serve.Node
	once sync.Once
	err  error
}

// startNode starts a node; a Listen address that is still taken (a node
// shut down a moment ago) is retried for a few seconds.
func startNode(t *testing.T, cfg serve.Config) *node {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.Memory = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := serve.Start(cfg)
		if err == nil {
			nd := &node{Node: n}
			t.Cleanup(func() { nd.shutdown(t) })
			return nd
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("starting a node on %s: %v", cfg.Listen, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *node) shutdown(t *testing.T) {
	t.Helper()
	n.once.Do(func() { n.err = testenv.Stop(5*time.Second, n.Shutdown) })
	if n.err != nil {
		t.Errorf("shutting down the node at %s: %v", n.Addr(), n.err)
	}
}

// browser is one tab of a headless Chromium.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
	allowed  []string // console text a test provoked on purpose (allowConsole)

	dump func() string // what describe shows on a page other than the demo
}

// newBrowser opens a tab and records the page's console. An exception the
// page did not catch, or a violation of a page's Content-Security-Policy
// (csp_test.go), fails the test; other console errors (a refused
// connection while the server restarts) are only logged.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	return newBrowserWith(t)
}

// newBrowserWith is newBrowser with extra browser options (tls_test.go).
func newBrowserWith(t *testing.T, opts ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	b := &browser{t: t, ctx: testenv.BrowserContextWith(t, opts...)}
	console := chromedp.Console(b.ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, m := range b.messages {
			if m.IsException() {
				t.Errorf("the page threw: %s", m)
			} else if violatesCSP(m.Text) && !b.provoked(m.Text) {
				t.Errorf("the page broke its policy: %s", m)
			} else if t.Failed() || testing.Verbose() {
				t.Logf("console: %s", m)
			}
		}
	})
	b.recordCSPViolations()
	return b
}

// allowConsole lets console messages containing one of texts pass: the
// test provoked them.
func (b *browser) allowConsole(texts ...string) {
	b.mu.Lock()
	b.allowed = append(b.allowed, texts...)
	b.mu.Unlock()
}

// provoked reports whether an allowed text is in s. Requires b.mu.
func (b *browser) provoked(s string) bool {
	for _, a := range b.allowed {
		if strings.Contains(s, a) {
			return true
		}
	}
	return false
}

// do runs actions, each run bounded by actionTimeout.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// open navigates to url and waits for the page's scripts to have started.
func (b *browser) open(url string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url))
}

// navigateBy runs an action that navigates (a form submit) and waits for
// the new page to load.
func (b *browser) navigateBy(action chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, action)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	if res.Status != http.StatusOK {
		b.t.Fatalf("browser: %s answered %d %s", res.URL, res.Status, res.StatusText)
	}
}

// eval evaluates a JavaScript expression into a T.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS polls the page until the JavaScript expression is truthy, for at
// most timeout. On failure it shows the panels as they were.
func (b *browser) waitJS(what string, timeout time.Duration, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(25*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		b.t.Fatalf("waiting %v for %s: %v\n%s", timeout, what, err, b.describe())
	}
}

// describe dumps what the panels show, for failure messages.
func (b *browser) describe() string {
	if b.dump != nil {
		return b.dump()
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](snapshotJS))
	if err != nil {
		return "(the page could not be read: " + err.Error() + ")"
	}
	var out bytes.Buffer
	_ = json.Indent(&out, raw, "", "  ")
	return out.String()
}

// panel is what one transport's panel shows.
type panel struct {
	State      string   `json:"state"`
	Current    string   `json:"current"`
	Requests   float64  `json:"requests"`
	Bytes      float64  `json:"bytes"`
	Reconnects float64  `json:"reconnects"`
	Messages   float64  `json:"messages"`
	Gaps       float64  `json:"gaps"` // ids that never arrived (the page noted each)
	Latency    string   `json:"latency"`
	IDs        []uint64 `json:"ids"`   // the log's message ids, newest first
	Texts      []string `json:"texts"` // their contents
	Lats       []string `json:"lats"`  // their latencies as shown
	Notes      []string `json:"notes"` // the log's notes, newest first
}

// page is what the demo page shows.
type page struct {
	Channel     string           `json:"channel"`
	CurrentID   uint64           `json:"currentID"`
	CurrentText string           `json:"currentText"`
	Panels      map[string]panel `json:"panels"`
	Summary     map[string]map[string]string
	Status      string `json:"status"`
}

const snapshotJS = `(() => {
  const num = (p, k) => Number(p.getAttribute("data-" + k));
  const text = (el) => el ? el.textContent : "";
  const panels = {};
  for (const p of document.querySelectorAll(".panel")) {
    const stat = (k) => p.querySelector("[data-stat=" + k + "]");
    const entries = [...p.querySelectorAll(".log li[data-id]")];
    panels[p.id] = {
      state: p.getAttribute("data-state"),
      current: text(p.querySelector("[data-role=current]")),
      requests: num(p, "requests"), bytes: num(p, "bytes"),
      reconnects: num(p, "reconnects"), messages: num(p, "messages"), gaps: num(p, "gaps"),
      latency: text(stat("latency")),
      ids: entries.map((li) => Number(li.getAttribute("data-id"))),
      texts: entries.map((li) => text(li.querySelector(".text"))),
      lats: entries.map((li) => text(li.querySelector(".lat"))),
      notes: [...p.querySelectorAll(".log li.note")].map(text),
    };
  }
  const summary = {};
  for (const row of document.querySelectorAll(".summary tbody tr")) {
    const cells = {};
    for (const td of row.querySelectorAll("[data-col]")) cells[td.getAttribute("data-col")] = td.textContent;
    summary[row.getAttribute("data-transport")] = cells;
  }
  const cur = document.getElementById("current");
  return {
    channel: document.body.getAttribute("data-channel"),
    currentID: Number(cur.getAttribute("data-id")), currentText: cur.textContent,
    panels, Summary: summary,
    status: text(document.getElementById("publish-status")),
  };
})()`

// snapshot reads the demo page.
func (b *browser) snapshot() page {
	b.t.Helper()
	raw := eval[[]byte](b, snapshotJS)
	var p page
	if err := json.Unmarshal(raw, &p); err != nil {
		b.t.Fatalf("reading the page: %v: %s", err, raw)
	}
	return p
}

// allPanels builds an expression that holds when cond holds for all three
// panels: a JavaScript expression over the panel element p and s(name), which
// reads one of its counters (requests, bytes, reconnects, messages, latency).
func allPanels(cond string) string {
	return `[...document.querySelectorAll(".panel")].length === 3 && [...document.querySelectorAll(".panel")].every((p) => {
  const s = (k) => Number(p.getAttribute("data-" + k));
  return (` + cond + `);
})`
}

// waitLive waits until every panel is live.
func (b *browser) waitLive(timeout time.Duration) {
	b.t.Helper()
	b.waitJS("every panel to be live", timeout, allPanels(`p.getAttribute("data-state") === "live"`))
}

// waitArrived waits until every panel logged message id with content.
func (b *browser) waitArrived(id uint64, content string) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("message #%d %q in every panel", id, content), arriveTimeout, allPanels(fmt.Sprintf(
		`[...p.querySelectorAll(".log li[data-id]")].some((li) => li.getAttribute("data-id") === %q && li.querySelector(".text").textContent === %s)`,
		fmt.Sprint(id), jsString(content))))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// publish posts content to a channel over HTTP and returns the new id.
func publish(t *testing.T, base, channel, content, key string) uint64 {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"content": content})
	req, err := http.NewRequest(http.MethodPost, base+"/channels/"+channel+"/messages", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("publishing %q: %v", content, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("publishing %q: %s: %s", content, res.Status, raw)
	}
	var m struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.ID == 0 {
		t.Fatalf("publishing %q: answer %s: %v", content, raw, err)
	}
	return m.ID
}

// get fetches a URL and returns its body.
func get(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, res.Status, raw)
	}
	return string(raw)
}

// waitObservers waits until the channel has at least n observers of the
// transport ("poll", "sse", "ws"), so a test publishes only once a
// cursor-less classic client is really waiting.
func waitObservers(t *testing.T, base, channel, transport string, n int) {
	t.Helper()
	testenv.WaitFor(t, arriveTimeout, fmt.Sprintf("%d %s observers on %s", n, transport, channel), func() bool {
		var info struct {
			Observers map[string]int `json:"observers"`
		}
		raw := get(t, base+"/channels/"+channel)
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			t.Fatalf("channel info %s: %v", raw, err)
		}
		return info.Observers[transport] >= n
	})
}

// contextFor bounds one action on the tab.
func contextFor(b *browser) (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, actionTimeout)
}
