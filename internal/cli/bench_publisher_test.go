package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
	"github.com/gorilla/websocket"
)

// checkPublished checks a fanout report's publish and delivery counts.
func checkPublished(t *testing.T, rep map[string]any, messages, observers int) {
	t.Helper()
	want := map[string]float64{
		"published": float64(messages), "publish_errors": 0, "connected": float64(observers),
		"expected_deliveries": float64(messages * observers), "deliveries": float64(messages * observers),
		"missed": 0, "duplicated": 0, "reordered": 0, "foreign": 0,
	}
	for k, v := range want {
		if rep[k] != v {
			t.Errorf("%s = %v, want %v", k, rep[k], v)
		}
	}
	if r, _ := rep["publishes_per_second"].(float64); r <= 0 {
		t.Errorf("publishes_per_second = %v", rep["publishes_per_second"])
	}
}

// countingProxy is a reverse proxy in front of target that counts the TCP
// connections it accepts; with closeAfterPublish it closes a publish's
// connection right after the answer, without a Connection: close header
// (as a server closing an idle keep-alive connection does).
func countingProxy(t *testing.T, target string, closeAfterPublish bool) (string, *atomic.Int64) {
	t.Helper()
	u, _ := url.Parse(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	var conns atomic.Int64
	var mu sync.Mutex
	keys := map[string]bool{}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if conns.Load() > 0 && keys[""] {
			t.Error("a publish without an Idempotency-Key")
		}
	})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			key := r.Header.Get("Idempotency-Key")
			if keys[key] {
				t.Errorf("Idempotency-Key %q on two publishes", key)
			}
			keys[key] = true
			mu.Unlock()
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("publish with Content-Type %q", ct)
			}
		}
		if !closeAfterPublish || r.Method != http.MethodPost {
			proxy.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		resp := rec.Result()
		resp.ContentLength = int64(rec.Body.Len())
		bw := bufio.NewWriter(c)
		_ = resp.Write(bw)
		_ = bw.Flush()
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, &conns
}

// P publishers publish N messages on the embedded (bolt) store, each on a
// keep-alive connection of its own: every message acknowledged and
// delivered once, no more connections than publishers.
func TestBenchPublishersKeepAlive(t *testing.T) {
	node, err := serve.Start(serve.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.Stop(5*time.Second, node.Shutdown) })
	proxy, conns := countingProxy(t, node.URL(), false)
	const messages, publishers, observers = 400, 16, 3
	rep := runBench(t, "fanout", "--server", proxy, "--transport", "ws", "-n", "3", "--messages", "400",
		"--rate", "1000000", "--publishers", "16")
	checkPublished(t, rep, messages, observers)
	// The publishers' connections, the observers', and the bench's own
	// requests (the channel's id, /readyz, /metrics) through net/http's pool.
	if n := conns.Load(); n > publishers+observers+4 {
		t.Errorf("%d connections for %d publishers and %d observers: publishers do not keep their connections", n, publishers, observers)
	}
	// One publisher: messages one after the other, in order.
	rep = runBench(t, "fanout", "--server", node.URL(), "-n", "2", "--messages", "50", "--rate", "1000000")
	checkPublished(t, rep, 50, 2)
}

// The publish key goes out as Authorization: Bearer KEY; without it, the
// first refusal ends the run, naming the flag to pass.
func TestBenchPublishKey(t *testing.T) {
	node := startTestNode(t, serve.Config{PublishKey: "sesame"})
	rep := runBench(t, "fanout", "--server", node.URL(), "-n", "2", "--messages", "40", "--rate", "1000000",
		"--publishers", "4", "--publish-key", "sesame")
	checkPublished(t, rep, 40, 2)

	_, err := benchJSON("fanout", "--server", node.URL(), "-n", "1", "--messages", "5", "--rate", "1000000",
		"--publishers", "2", "--drain", "100ms")
	if err == nil || !strings.Contains(err.Error(), "--publish-key") || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the key: %v; want exit 1 naming 401 and --publish-key", err)
	}
}

// A server that closes the connection after every answer (no Connection:
// close header): each publish after the first on a connection finds it
// closed, dials again and is published once.
func TestBenchPublishersReconnect(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	proxy, conns := countingProxy(t, node.URL(), true)
	const messages = 60
	for _, publishers := range []string{"1", "8"} {
		t.Run("publishers="+publishers, func(t *testing.T) {
			before := conns.Load()
			rep := runBench(t, "fanout", "--server", proxy, "-n", "2", "--messages", "60", "--rate", "1000000",
				"--publishers", publishers)
			checkPublished(t, rep, messages, 2)
			if n := conns.Load() - before; n < messages {
				t.Errorf("%d connections for %d publishes on a server closing each", n, messages)
			}
		})
	}
}

// fakeNchan is nchan as the bench sees it (docs/nchan.conf): WebSocket
// subscribers on /sub/CH get each body POSTed to /pub/CH raw, the publish
// answered 201 in text; with closeAfterPublish the connection is closed
// after the answer without a Connection: close header. It counts the
// publishers' connections.
func fakeNchan(t *testing.T, closeAfterPublish bool) (string, *atomic.Int64) {
	t.Helper()
	var mu sync.Mutex
	var subs []*websocket.Conn
	var pubConns atomic.Int64
	up := websocket.Upgrader{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/nchan_status":
			_, _ = io.WriteString(w, "active connections: 1\n")
		case strings.HasPrefix(r.URL.Path, "/sub/"):
			// Registered under the lock taken before the handshake's answer:
			// a publish sent once the client has its 101 reaches it.
			mu.Lock()
			defer mu.Unlock()
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			subs = append(subs, c)
		case strings.HasPrefix(r.URL.Path, "/pub/") && r.Method == http.MethodPost:
			body, _ := io.ReadAll(r.Body)
			if ct := r.Header.Get("Content-Type"); ct != "text/plain" || r.Header.Get("Idempotency-Key") != "" || !bytes.HasPrefix(body, []byte(`{"t":`)) {
				t.Errorf("nchan publish: Content-Type %q, Idempotency-Key %q, body %q", ct, r.Header.Get("Idempotency-Key"), body)
			}
			mu.Lock()
			for _, c := range subs {
				_ = c.WriteMessage(websocket.TextMessage, body)
			}
			mu.Unlock()
			answer := "queued messages: 1\r\nlast requested: 0 sec. ago\r\nactive channels: 1\r\nsubscribers: 1\r\n"
			if !closeAfterPublish {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, answer)
				return
			}
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
			c.Close()
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			pubConns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range subs {
			c.Close()
		}
		mu.Unlock()
		srv.Close()
	})
	return srv.URL, &pubConns
}

// --target nchan publishes through the same publishers: the body raw, 201
// acknowledged; a connection the server closed after its answer is dialed
// again and the publish sent once (nchan knows no Idempotency-Key, so only
// a request nothing was answered to is sent again).
func TestBenchPublishersNchan(t *testing.T) {
	for _, closing := range []bool{false, true} {
		t.Run(fmt.Sprintf("close=%v", closing), func(t *testing.T) {
			server, conns := fakeNchan(t, closing)
			const messages, publishers = 80, 4
			rep := runBench(t, "fanout", "--target", "nchan", "--server", server, "-n", "2", "--messages", "80",
				"--rate", "1000000", "--publishers", "4")
			checkPublished(t, rep, messages, 2)
			n := conns.Load()
			switch {
			case closing && n < messages:
				t.Errorf("%d connections for %d publishes on a server closing each", n, messages)
			case !closing && n > publishers+2+2:
				t.Errorf("%d connections for %d publishers and 2 observers", n, publishers)
			}
		})
	}
}
