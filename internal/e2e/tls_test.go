package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// tlsNode starts a node serving HTTPS with a certificate of a fresh test CA,
// and a browser that trusts that certificate (by its public key's hash).
func tlsNode(t *testing.T) (*node, *browser, *testenv.TestCA) {
	t.Helper()
	ca := testenv.NewTestCA(t)
	cert := ca.Issue(t, 1, 24*time.Hour)
	certFile, keyFile := cert.Write(t, t.TempDir())
	n := startNode(t, serve.Config{TLS: serve.TLSConfig{CertFile: certFile, KeyFile: keyFile}})
	b := newBrowserWith(t, chromedp.Flag("ignore-certificate-errors-spki-list", cert.SPKIHash))
	return n, b, ca
}

// openStreamsJS opens n EventSources on one channel and counts each one's messages.
const openStreamsJS = `(() => {
  window.counts = [];
  window.streams = [];
  for (let i = 0; i < %d; i++) {
    window.counts.push(0);
    const es = new EventSource("/channels/ten/events");
    es.onmessage = () => { window.counts[i]++; };
    window.streams.push(es);
  }
})()`

// publishJS publishes from the page itself.
const publishJS = `fetch("/channels/ten/messages", {method: "POST", headers: {"Content-Type": "text/plain"}, body: %q}).then((r) => r.status)`

// Over HTTP/2 one page's 10 EventSources to one origin are all open at
// once and all get every message; HTTP/1.1 would hold a browser to 6.
func TestBrowserTenEventSourcesOverHTTP2(t *testing.T) {
	n, b, _ := tlsNode(t)
	b.open(n.URL() + "/healthz")
	if proto := eval[string](b, `performance.getEntriesByType("navigation")[0].nextHopProtocol`); proto != "h2" {
		t.Fatalf("the page loaded over %q, want h2", proto)
	}
	eval[any](b, fmt.Sprintf(openStreamsJS, 10))
	b.waitJS("10 open EventSources", arriveTimeout, `window.streams.every((es) => es.readyState === 1)`)
	waitHubObservers(t, n.Hub(), announce.SSE, 10)
	const messages = 5
	for i := 1; i <= messages; i++ {
		status := evalAwait[float64](b, fmt.Sprintf(publishJS, fmt.Sprintf("message %d", i)))
		if status != http.StatusCreated {
			t.Fatalf("publishing from the page: %v", status)
		}
	}
	b.waitJS("every stream to get every message", arriveTimeout,
		fmt.Sprintf(`window.counts.length === 10 && window.counts.every((c) => c === %d)`, messages))
}

// The same page over plain HTTP/1.1: Chromium opens 6 streams to the host
// and queues the rest, the limit HTTP/2 lifts.
func TestBrowserSixEventSourcesOverHTTP11(t *testing.T) {
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.open(n.URL() + "/healthz")
	eval[any](b, fmt.Sprintf(openStreamsJS, 10))
	waitHubObservers(t, n.Hub(), announce.SSE, 6)
	b.waitJS("6 open EventSources, 4 queued", arriveTimeout,
		`window.streams.filter((es) => es.readyState === 1).length === 6 && window.streams.filter((es) => es.readyState === 0).length === 4`)
	if got := n.Hub().Stats().Observers(announce.SSE); got != 6 {
		t.Fatalf("%d SSE observers over HTTP/1.1, want Chromium's 6 per host", got)
	}
}

// The demo page over https: its WebSocket panel connects with wss://.
func TestBrowserDemoPageOverHTTPS(t *testing.T) {
	n, b, ca := tlsNode(t)
	c, err := client.New(client.Config{Server: n.URL(), TLSConfig: ca.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, "default", "Before the page loads"); err != nil {
		t.Fatal(err)
	}
	b.open(n.URL() + "/")
	b.waitLive(arriveTimeout) // the WebSocket panel live on an https page: over wss://
	if n.Hub().Stats().Observers(announce.WebSocket) < 1 {
		t.Fatal("no WebSocket observer while the page's WebSocket panel is live")
	}
	m, err := c.Publish(ctx, "default", "Over TLS")
	if err != nil {
		t.Fatal(err)
	}
	b.waitArrived(m.ID, "Over TLS")
	if !strings.HasPrefix(n.URL(), "https://") {
		t.Fatalf("node URL %s", n.URL())
	}
}

// evalAwait evaluates an expression that yields a promise, and waits for it.
func evalAwait[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func waitHubObservers(t *testing.T, hub *announce.Hub, tr announce.Transport, want int64) {
	t.Helper()
	testenv.WaitFor(t, arriveTimeout, fmt.Sprintf("%d %s observers", want, tr), func() bool { return hub.Stats().Observers(tr) == want })
}
