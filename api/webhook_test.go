package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/token"
	"github.com/announce/announce/announce/webhook"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

const hookSecret = "webhook-secret-for-the-api-tests"

// hookReceiver is a webhook receiver that checks every request's signature
// and freshness, as the README tells receivers to.
type hookReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	hits   atomic.Int64
	status atomic.Int64 // the answer; 204 when 0
	mu     sync.Mutex
	events []webhook.Event
}

func newHookReceiver(t *testing.T) *hookReceiver {
	rc := &hookReceiver{t: t}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify(hookSecret, body, r.Header.Get("X-Announce-Signature"), 5*time.Minute, time.Now()) {
			t.Errorf("webhook %s: signature %q does not verify", body, r.Header.Get("X-Announce-Signature"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if status := int(rc.status.Load()); status != 0 {
			w.WriteHeader(status)
			return
		}
		var e webhook.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		if ts := r.Header.Get("X-Announce-Timestamp"); ts != strconv.FormatInt(e.Timestamp, 10) {
			t.Errorf("X-Announce-Timestamp %q, body %d", ts, e.Timestamp)
		}
		rc.mu.Lock()
		rc.events = append(rc.events, e)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *hookReceiver) got() []webhook.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.events)
}

// wait waits for an event matching match and returns it.
func (rc *hookReceiver) wait(t *testing.T, what string, match func(webhook.Event) bool) webhook.Event {
	t.Helper()
	var found webhook.Event
	testenv.WaitFor(t, 15*time.Second, what, func() bool {
		for _, e := range rc.got() {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// hookServer is a server whose presence feeds a webhook dispatcher posting
// to rc; the dispatcher's metrics are on /metrics.
func hookServer(t *testing.T, rc *hookReceiver, wcfg webhook.Config, opts ...func(*api.Config)) (*testServer, *presence.Tracker, *webhook.Dispatcher) {
	t.Helper()
	wcfg.URLs = []string{rc.srv.URL + "/hook"}
	wcfg.Secret = hookSecret
	wcfg.Node = "node-a"
	if wcfg.Backoff == 0 {
		wcfg.Backoff = 20 * time.Millisecond
	}
	d, err := webhook.New(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Collector())
	ts, tr := presenceServer(t, presence.Config{Node: "node-a", Grace: 200 * time.Millisecond, Sinks: []announce.Events{d}},
		append([]func(*api.Config){func(c *api.Config) { c.Registry = reg }}, opts...)...)
	return ts, tr, d
}

func isEvent(typ, transport, name string) func(webhook.Event) bool {
	return func(e webhook.Event) bool { return e.Type == typ && e.Transport == transport && e.Name == name }
}

// TestWebhooksSessionsAndPublishes: connected, published (over HTTP and
// WebSocket) and disconnected, also when the client vanishes abruptly,
// reach the receiver signed, once each.
func TestWebhooksSessionsAndPublishes(t *testing.T) {
	rc := newHookReceiver(t)
	ts, _, d := hookServer(t, rc, webhook.Config{}, func(c *api.Config) {
		c.PublishKey = tkKey
		c.TokenSecret = tkSecret
	})

	ws := dialWS(t, ts, "/channels/news/ws?name=bob")
	c := rc.wait(t, "ws connected", isEvent("connected", "ws", "bob"))
	if c.Channel != "news" || c.Session == "" || c.Node != "node-a" || c.EventID == "" || time.Since(c.Time) > time.Minute {
		t.Fatalf("connected %+v", c)
	}

	// An HTTP publish with a token naming its holder, and one with the key.
	signer, _ := token.NewSigner([]byte(tkSecret), nil)
	tok, _, _ := signer.Mint(token.Grant{Channel: "news", Publish: true, Name: "publisher-1"})
	resp, body := ts.post(t, "/channels/news/messages", "text/plain", []byte("by token"), "Authorization", "Bearer "+tok)
	assertStatus(t, resp, body, http.StatusCreated)
	m1 := decodeMessage(t, body)
	p := rc.wait(t, "published by token", isEvent("published", "http", "publisher-1"))
	if p.ID != m1.ID || p.Channel != "news" || !p.Time.Equal(m1.Time) || p.Session != "" {
		t.Fatalf("published %+v for %+v", p, m1)
	}
	resp, body = ts.post(t, "/channels/news/messages", "text/plain", []byte("by key"), "Authorization", "Bearer "+tkKey,
		"Idempotency-Key", "k1")
	assertStatus(t, resp, body, http.StatusCreated)
	resp, body = ts.post(t, "/channels/news/messages", "text/plain", []byte("by key"), "Authorization", "Bearer "+tkKey,
		"Idempotency-Key", "k1") // a replay publishes nothing
	assertStatus(t, resp, body, http.StatusCreated)
	m2 := decodeMessage(t, body)
	rc.wait(t, "published by key", func(e webhook.Event) bool { return e.Type == "published" && e.ID == m2.ID && e.Name == "" })

	// A WebSocket publish names the connection's observer.
	sendWS(t, ws, fmt.Sprintf(`{"type":"publish","content":"from ws","key":%q}`, tkKey))
	rc.wait(t, "published over ws", isEvent("published", "ws", "bob"))

	// Abrupt loss: the TCP connection dies without a close frame.
	_ = ws.NetConn().Close()
	dc := rc.wait(t, "ws disconnected", isEvent("disconnected", "ws", "bob"))
	if dc.Session != c.Session {
		t.Fatalf("disconnected session %q, connected %q", dc.Session, c.Session)
	}
	sse := openSSE(t, ts.URL+"/channels/news/events?name=sue")
	rc.wait(t, "sse connected", isEvent("connected", "sse", "sue"))
	sse.Close()
	rc.wait(t, "sse disconnected", isEvent("disconnected", "sse", "sue"))

	// A long-poll client: connected at its first poll, disconnected after its grace.
	pollNow(t, ts, "/channels/news/status?since=0&name=pat")
	rc.wait(t, "poll connected", isEvent("connected", "poll", "pat"))
	rc.wait(t, "poll disconnected", isEvent("disconnected", "poll", "pat"))

	testenv.WaitFor(t, 10*time.Second, "every delivery", func() bool { return d.Stats().Pending == 0 })
	count := map[string]int{}
	ids := map[string]bool{}
	for _, e := range rc.got() {
		count[e.Type+"/"+e.Transport]++
		if ids[e.EventID] {
			t.Errorf("event %s delivered twice", e.EventID)
		}
		ids[e.EventID] = true
	}
	want := map[string]int{"connected/ws": 1, "disconnected/ws": 1, "connected/sse": 1, "disconnected/sse": 1,
		"connected/poll": 1, "disconnected/poll": 1, "published/http": 2, "published/ws": 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%s: %d events, want %d (all: %v)", k, count[k], n, count)
		}
	}
	if v := scrapeMetric(t, ts, `announce_webhook_events_total{result="ok"}`); v != 9 {
		t.Errorf(`announce_webhook_events_total{result="ok"} = %v, want 9`, v)
	}
}

// TestWebhooksOnShutdown: observers still attached when the server stops,
// and long-poll clients within their grace, are reported disconnected, and
// the queue is flushed.
func TestWebhooksOnShutdown(t *testing.T) {
	rc := newHookReceiver(t)
	ts, tr, d := hookServer(t, rc, webhook.Config{})
	ts.Publish(t, "news", "one") // so a poll with since=0 answers at once
	dialWS(t, ts, "/channels/news/ws?name=w")
	openSSE(t, ts.URL+"/channels/news/events?name=s")
	pollNow(t, ts, "/channels/news/status?since=0&name=p") // within its grace at shutdown
	testenv.WaitFor(t, 10*time.Second, "three connected and a published", func() bool { return len(rc.got()) == 4 })

	shutdownAPI(t, ts.API)
	ts.HTTP.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range [][2]string{{"ws", "w"}, {"sse", "s"}, {"poll", "p"}} {
		rc.wait(t, "disconnected "+e[0], isEvent("disconnected", e[0], e[1]))
	}
}

// TestWebhooksRetryUntilUp: a receiver failing with 503 gets the event
// once it recovers; one answering 400 is not asked again.
func TestWebhooksRetryUntilUp(t *testing.T) {
	rc := newHookReceiver(t)
	rc.status.Store(http.StatusServiceUnavailable)
	ts, _, d := hookServer(t, rc, webhook.Config{Backoff: 50 * time.Millisecond})
	m := ts.Publish(t, "news", "while the receiver is down")
	testenv.WaitFor(t, 10*time.Second, "two failed attempts", func() bool { return rc.hits.Load() >= 2 })
	rc.status.Store(0)
	e := rc.wait(t, "the event after retries", func(e webhook.Event) bool { return e.Type == "published" })
	if e.ID != m.ID {
		t.Fatalf("published %+v", e)
	}
	testenv.WaitFor(t, 10*time.Second, "the success to be counted", func() bool { return d.Stats().OK == 1 })
	if s := d.Stats(); s.Retries < 1 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}

	rc.status.Store(http.StatusBadRequest)
	before, retries := rc.hits.Load(), d.Stats().Retries
	ts.Publish(t, "news", "refused")
	// Failed counts an event once no try is left for it: a retry of the
	// refusal would have been counted in Retries before.
	testenv.WaitFor(t, 10*time.Second, "the refusal", func() bool { return d.Stats().Failed == 1 })
	if n, r := rc.hits.Load()-before, d.Stats().Retries-retries; n != 1 || r != 0 {
		t.Fatalf("a 400 was tried %d times (%d retries), want once", n, r)
	}
	if v := scrapeMetric(t, ts, `announce_webhook_events_total{result="failed"}`); v != 1 {
		t.Errorf("failed metric %v", v)
	}
}

// TestWebhooksFullQueueNeverBlocksPublish: with the receiver hanging and
// the queue full, publishes are acknowledged at once and the events dropped
// and counted.
func TestWebhooksFullQueueNeverBlocksPublish(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	rc := &hookReceiver{t: t, srv: hang}
	ts, _, d := hookServer(t, rc, webhook.Config{Queue: 2, Workers: 1, Timeout: time.Minute})
	for i := range 50 {
		ts.Publish(t, "news", fmt.Sprint("m", i))
	}
	if s := d.Stats(); s.Dropped != 48 || s.Pending != 2 {
		t.Fatalf("stats %+v, want 48 dropped, 2 pending", s)
	}
	if v := scrapeMetric(t, ts, `announce_webhook_events_total{result="dropped"}`); v != 48 {
		t.Errorf("dropped metric %v", v)
	}
}
