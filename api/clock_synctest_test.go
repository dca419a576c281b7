package api_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// Timers on a fake clock: an event stream's session served through the
// ResponseWriter (HTTP/2, HTTP/1.0) and a poll's wait run here on an
// in-memory writer inside a synctest bubble, so the heartbeat, a token's
// expiry and a poll's timeout are asserted to the millisecond without
// waiting for them.

// memWriter is an in-memory ResponseWriter that flushes; safe to read
// while the session writes.
type memWriter struct {
	mu      sync.Mutex
	header  http.Header
	body    bytes.Buffer
	status  int
	flushes int
}

func newMemWriter() *memWriter { return &memWriter{header: http.Header{}} }

func (w *memWriter) Header() http.Header { return w.header }

func (w *memWriter) WriteHeader(status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		w.status = status
	}
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.Write(p)
}

func (w *memWriter) Flush() {
	w.mu.Lock()
	w.flushes++
	w.mu.Unlock()
}

func (w *memWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.String()
}

// bubbleServer is an API on a memory store made inside the bubble; stop
// ends it (and every goroutine it started) before the bubble does.
func bubbleServer(t *testing.T, opts ...func(*api.Config)) (s *api.Server, stop func()) {
	store := announce.NewMemoryStore(announce.DefaultHistory)
	hub, err := announce.NewHub(announce.Config{History: announce.DefaultHistory, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Hub: hub}
	for _, o := range opts {
		o(&cfg)
	}
	if s, err = api.New(cfg); err != nil {
		t.Fatal(err)
	}
	return s, func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		_ = hub.Shutdown(context.Background())
		_ = store.Close()
	}
}

// serveStream starts GET path as an event stream through w; the returned
// channel closes when the handler returns.
func serveStream(s *api.Server, ctx context.Context, w http.ResponseWriter, path string) <-chan struct{} {
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	req.Header.Set("Accept", "text/event-stream")
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Handler().ServeHTTP(w, req)
	}()
	return done
}

func TestSSEHeartbeatEveryIntervalOnAFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, stop := bubbleServer(t, func(c *api.Config) { c.Heartbeat = 15 * time.Second })
		defer stop()
		ctx, cancel := context.WithCancel(context.Background())
		w := newMemWriter()
		done := serveStream(s, ctx, w, "/channels/beat/events")
		synctest.Wait()
		if got := w.String(); !strings.HasPrefix(got, "retry: 3000\n\n") || strings.Contains(got, "keepalive") {
			t.Fatalf("at start the stream holds %q, want the retry line and no keepalive", got)
		}
		for n := 1; n <= 3; n++ {
			time.Sleep(15*time.Second - time.Millisecond)
			synctest.Wait()
			if got := strings.Count(w.String(), ": keepalive\n\n"); got != n-1 {
				t.Fatalf("just before heartbeat %d: %d keepalives", n, got)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if got := strings.Count(w.String(), ": keepalive\n\n"); got != n {
				t.Fatalf("at heartbeat %d: %d keepalives", n, got)
			}
		}
		cancel() // the client leaves: the handler returns
		<-done
	})
}

func TestSSETokenExpiryEndsTheStreamOnTimeOnAFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, stop := bubbleServer(t, func(c *api.Config) {
			c.PublishKey, c.TokenSecret, c.Heartbeat = tkKey, tkSecret, time.Hour
		})
		defer stop()
		exp := time.Now().Add(90 * time.Second).Truncate(time.Second)
		w := newMemWriter()
		done := serveStream(s, context.Background(), w,
			"/channels/private-clock/events?token="+tkMint(t, tkSecret, "private-clock", exp, false))
		time.Sleep(time.Until(exp) - time.Millisecond)
		synctest.Wait()
		select {
		case <-done:
			t.Fatalf("the stream ended before its token expired: %q", w.String())
		default:
		}
		time.Sleep(time.Millisecond)
		<-done
		if got := w.String(); !strings.HasSuffix(got, "event: error\ndata: {\"event\":\"error\",\"error\":\"token expired\"}\n\n") {
			t.Fatalf("the stream ended with %q, want the token-expired event last", got)
		}
		if !time.Now().Equal(exp) {
			t.Fatalf("the stream ended at %v, want at the expiry %v", time.Now(), exp)
		}
	})
}

// A poll that cannot be taken over waits in the handler, on the same wait
// as a deferred one: answered with the current message when its timeout
// passes, not a moment before.
func TestPollTimeoutOnAFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, stop := bubbleServer(t)
		defer stop()
		for _, path := range []string{"/channels/clock/status?since=0&timeout=30", "/channels/clock/messages?since=0&wait=30"} {
			start := time.Now()
			w := newMemWriter()
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.0", 1, 0 // cannot be hijacked
			done := make(chan struct{})
			go func() { defer close(done); s.Handler().ServeHTTP(w, req) }()
			time.Sleep(30*time.Second - time.Millisecond)
			synctest.Wait()
			select {
			case <-done:
				t.Fatalf("%s answered %q after %v, before its timeout", path, w.String(), time.Since(start))
			default:
			}
			time.Sleep(time.Millisecond)
			<-done
			if w.status != http.StatusOK || !strings.HasPrefix(w.String(), "{") && !strings.HasPrefix(w.String(), "[") {
				t.Fatalf("%s answered %d %q at its timeout", path, w.status, w.String())
			}
			if waited := time.Since(start); waited != 30*time.Second {
				t.Fatalf("%s answered after %v, want 30s", path, waited)
			}
		}
	})
}
