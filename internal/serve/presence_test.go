package serve_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/announce/webhook"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// openStream opens an SSE stream on u and returns a function that drops it.
func openStream(t *testing.T, u string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET %s: %v", u, err)
	}
	go func() { _, _ = io.Copy(io.Discard, resp.Body); resp.Body.Close() }()
	t.Cleanup(cancel)
	return cancel
}

// TestShutdownFlushesWebhooks: an observer still connected at shutdown is
// reported disconnected before Shutdown returns; the counters are on /metrics.
func TestShutdownFlushesWebhooks(t *testing.T) {
	const secret = "serve-test-webhook-secret"
	var mu sync.Mutex
	var got []webhook.Event
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify(secret, body, r.Header.Get(webhook.HeaderSignature), time.Minute, time.Now()) {
			t.Errorf("bad signature on %s", body)
		}
		var e webhook.Event
		_ = json.Unmarshal(body, &e)
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}))
	defer rcv.Close()
	n := start(t, serve.Config{Memory: true, Presence: serve.PresenceConfig{
		Node: "n1", Webhooks: []string{rcv.URL}, WebhookSecret: secret,
	}})
	openStream(t, n.URL()+"/channels/news/events?name=sue")
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	// The receiver may see the event before the worker counts it: poll.
	series := []string{`announce_webhook_events_total{result="ok"} 1`, `announce_webhook_events_total{result="dropped"} 0`, "announce_presence_sessions 1"}
	var metrics []byte
	testenv.WaitFor(t, 10*time.Second, "webhook metrics", func() bool {
		resp, err := http.Get(n.URL() + "/metrics")
		if err != nil {
			return false
		}
		metrics, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, s := range series {
			if !strings.Contains(string(metrics), s) {
				return false
			}
		}
		return true
	})
	if err := testenv.Stop(5*time.Second, n.Shutdown); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[1].Type != "disconnected" || got[1].Name != "sue" || got[1].Node != "n1" || got[1].Session != got[0].Session {
		t.Fatalf("webhooks %+v, want connected then disconnected for sue", got)
	}
}

// TestShutdownWithHangingWebhookReceiver: a receiver that never answers
// cannot fail a graceful shutdown nor hold it past the deadline.
func TestShutdownWithHangingWebhookReceiver(t *testing.T) {
	arrived := make(chan struct{}, 1)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer rcv.Close()
	n := start(t, serve.Config{Memory: true, Presence: serve.PresenceConfig{
		Webhooks: []string{rcv.URL}, WebhookTimeout: time.Minute,
	}})
	openStream(t, n.URL()+"/channels/news/events")
	select {
	case <-arrived: // the connected event is in flight, hanging
	case <-time.After(10 * time.Second):
		t.Fatal("the connected event never reached the receiver")
	}
	start := time.Now()
	if err := testenv.Stop(time.Second, n.Shutdown); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Shutdown took %v with a 1 s deadline", took)
	}
}

func TestStartRefusesBadWebhook(t *testing.T) {
	if n, err := serve.Start(serve.Config{Listen: "127.0.0.1:0", Memory: true, Presence: serve.PresenceConfig{Webhooks: []string{"ftp://x"}}}); err == nil {
		_ = testenv.Stop(5*time.Second, n.Shutdown)
		t.Fatal("started with an ftp:// webhook")
	}
}
