package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
)

// testServer is a real announce API on a real socket: an in-memory hub, the
// gin handler and an httptest.Server in front of it. Every field is live
// until the test's cleanup runs.
type testServer struct {
	URL  string           // base URL, no trailing slash
	Hub  *announce.Hub    // the domain, for Stats() and direct publishes
	API  *api.Server      // the API, for Handler() and Shutdown()
	HTTP *httptest.Server // the socket
}

// newTestServer starts a server on announce.NewMemoryStore with the hub's
// defaults; opts adjust the api.Config (PollTimeout, PublishKey, CORSOrigins...).
// Cleanup shuts the API down (waiting long-polls answer, streams end), closes
// the listener and every connection, waits for the stream handlers and closes
// the hub and the store. Like t.Fatal, call it from the test goroutine.
func newTestServer(t *testing.T, opts ...func(*api.Config)) *testServer {
	t.Helper()
	return newTestServerHub(t, nil, opts...)
}

// newTestServerHub is newTestServer with hubOpt adjusting the hub's config
// too (History, MaxMessage, Queue). It takes a testing.TB so fuzz targets
// can share one server across their inputs.
func newTestServerHub(tb testing.TB, hubOpt func(*announce.Config), opts ...func(*api.Config)) *testServer {
	tb.Helper()
	hub, store, s := newHubAPI(tb, hubOpt, opts...)
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener = s.Listener(hs.Listener) // answered long-polls keep their connection
	hs.Start()
	closeAtCleanup(tb, hub, store, s, hs)
	return &testServer{URL: hs.URL, Hub: hub, API: s, HTTP: hs}
}

// newHubAPI makes the hub on a memory store and the API over it.
func newHubAPI(tb testing.TB, hubOpt func(*announce.Config), opts ...func(*api.Config)) (*announce.Hub, announce.Store, *api.Server) {
	tb.Helper()
	hcfg := announce.Config{History: announce.DefaultHistory}
	if hubOpt != nil {
		hubOpt(&hcfg)
	}
	store := announce.NewMemoryStore(hcfg.History)
	hcfg.Store = store
	hub, err := announce.NewHub(hcfg)
	if err != nil {
		tb.Fatalf("announce.NewHub: %v", err)
	}
	cfg := api.Config{Hub: hub}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := api.New(cfg)
	if err != nil {
		_ = hub.Shutdown(context.Background())
		tb.Fatalf("api.New: %v", err)
	}
	return hub, store, s
}

// closeAtCleanup stops the API, the HTTP server, the hub and the store when the test ends.
func closeAtCleanup(tb testing.TB, hub *announce.Hub, store announce.Store, s *api.Server, hs *httptest.Server) {
	tb.Cleanup(func() {
		shutdownAPI(tb, s) // long-polls answer, SSE streams end, WebSockets close
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			tb.Errorf("hub.Close: %v", err)
		}
		_ = store.Close()
	})
}

// shutdownAPI stops s and fails the test unless its streams end within 10s.
func shutdownAPI(tb testing.TB, s *api.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		tb.Errorf("api.Shutdown: %v", err)
	}
}

// Addr is the listener's host:port, for raw connections and Host headers.
func (ts *testServer) Addr() string { return ts.HTTP.Listener.Addr().String() }

// Publish posts {"content": content} to /channels/{channel}/messages, asserts
// 201 and returns the stored message. Like t.Fatal, call it from the test goroutine.
func (ts *testServer) Publish(t *testing.T, channel, content string) announce.Message {
	t.Helper()
	m, err := ts.publish(channel, content)
	if err != nil {
		t.Fatalf("publish %q to %s: %v", content, channel, err)
	}
	return m
}

// publish is Publish for any goroutine: it returns what went wrong instead of failing.
func (ts *testServer) publish(channel, content string) (announce.Message, error) {
	body, _ := json.Marshal(map[string]string{"content": content})
	resp, err := http.Post(ts.URL+"/channels/"+channel+"/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		return announce.Message{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return announce.Message{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return announce.Message{}, fmt.Errorf("status %d, want 201: %s", resp.StatusCode, b)
	}
	var m announce.Message
	if err := json.Unmarshal(b, &m); err != nil {
		return announce.Message{}, fmt.Errorf("answer %q: %v", b, err)
	}
	if m.Channel != channel || m.Content != content || m.ID == 0 {
		return m, fmt.Errorf("stored %+v, want channel %q content %q and an id", m, channel, content)
	}
	return m, nil
}

// waitObservers waits until the hub counts n observers of transport tr.
func waitObservers(t testing.TB, hub *announce.Hub, tr announce.Transport, n int64) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d %s observers", n, tr), func() bool {
		return hub.Stats().Observers(tr) == n
	})
}

// do sends req with client (http.DefaultClient when nil) and returns the
// answer with its body read.
func do(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, b
}

// get sends a GET to the server's path.
func (ts *testServer) get(t testing.TB, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, nil, req)
}

// post sends body with the content type to the server's path.
func (ts *testServer) post(t testing.TB, path, ctype string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, nil, req)
}

// raw writes the request line (and extra header lines) on a fresh TCP
// connection, so the path reaches the server exactly as written (Go's client
// would clean "..").
func (ts *testServer) raw(t testing.TB, method, target string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, ts.Addr())
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// decodeMessage decodes one message answer.
func decodeMessage(t testing.TB, body []byte) announce.Message {
	t.Helper()
	var m announce.Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("not a message: %q: %v", body, err)
	}
	return m
}

// assertStatus checks the status code, showing the body when it differs.
func assertStatus(t testing.TB, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %q", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
}

// assertError checks an error answer: the status, Cache-Control: no-store
// and a JSON body {"error": "<non-empty reason>"} and nothing else.
func assertError(t testing.TB, resp *http.Response, body []byte, want int) {
	t.Helper()
	assertStatus(t, resp, body, want)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("status %d: Content-Type %q, want application/json", want, ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("status %d: Cache-Control %q, want no-store", want, cc)
	}
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("status %d: body %q is not JSON: %v", want, body, err)
	}
	reason, ok := e["error"].(string)
	if len(e) != 1 || !ok || strings.TrimSpace(reason) == "" {
		t.Errorf("status %d: body %s, want exactly {\"error\": \"<reason>\"}", want, body)
	}
}
