package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/webhook"
	"github.com/announce/announce/internal/testenv"
)

const secret = "s3cret-of-the-webhooks"

// receiver records verified webhook POSTs; answer decides each status.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	got    []webhook.Event
	hits   atomic.Int64
	answer func(n int64) int // the status of the nth request (from 1)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rc.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	status := http.StatusNoContent
	if rc.answer != nil {
		status = rc.answer(n)
	}
	if status < 300 {
		sig := r.Header.Get(webhook.HeaderSignature)
		if !webhook.Verify(secret, body, sig, 5*time.Minute, time.Now()) {
			rc.t.Errorf("signature %q does not verify body %s", sig, body)
		}
		var e webhook.Event
		if err := json.Unmarshal(body, &e); err != nil {
			rc.t.Errorf("body %s: %v", body, err)
		}
		if h := r.Header.Get(webhook.HeaderTimestamp); h != strconv.FormatInt(e.Timestamp, 10) {
			rc.t.Errorf("timestamp header %q, body %d", h, e.Timestamp)
		}
		if r.Header.Get(webhook.HeaderEvent) != e.Type || r.Header.Get(webhook.HeaderEventID) != e.EventID ||
			r.Header.Get("Content-Type") != "application/json" {
			rc.t.Errorf("headers %v do not match body %s", r.Header, body)
		}
		rc.mu.Lock()
		rc.got = append(rc.got, e)
		rc.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (rc *receiver) events() []webhook.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]webhook.Event(nil), rc.got...)
}

func newDispatcher(t *testing.T, cfg webhook.Config) *webhook.Dispatcher {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = secret
	}
	if cfg.Node == "" {
		cfg.Node = "node-1"
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 10 * time.Millisecond
	}
	d, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}

// inMemory is a client that hands each request to h in the caller's
// goroutine, with no socket: inside a synctest bubble the dispatcher's
// timers then run on the bubble's clock.
func inMemory(h http.Handler) *http.Client {
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		return rec.Result(), nil
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDeliversSignedEvents(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	d := newDispatcher(t, webhook.Config{URLs: []string{srv.URL}})
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	d.Connected(announce.Session{ID: "n-1", Channel: "news", Transport: announce.WebSocket, Name: "alice", Time: at})
	d.Published(announce.Publication{Message: announce.Message{ID: 42, Channel: "news", Content: "hi", Time: at}, Via: "http", Name: "bob"})
	d.Disconnected(announce.Session{ID: "n-1", Channel: "news", Transport: announce.WebSocket, Name: "alice", Time: at})
	testenv.WaitFor(t, 15*time.Second, "three deliveries", func() bool { return d.Stats().OK == 3 })
	byType := map[string]webhook.Event{}
	ids := map[string]bool{}
	for _, e := range rc.events() {
		byType[e.Type] = e
		ids[e.EventID] = true
	}
	if len(ids) != 3 {
		t.Errorf("event ids not unique: %v", ids)
	}
	c := byType["connected"]
	if c.Channel != "news" || c.Transport != "ws" || c.Name != "alice" || c.Session != "n-1" || !c.Time.Equal(at) || c.Node != "node-1" || c.ID != 0 {
		t.Errorf("connected: %+v", c)
	}
	p := byType["published"]
	if p.ID != 42 || p.Transport != "http" || p.Name != "bob" || p.Session != "" || p.Node != "node-1" {
		t.Errorf("published: %+v", p)
	}
	if dc := byType["disconnected"]; dc.Session != "n-1" || dc.Transport != "ws" {
		t.Errorf("disconnected: %+v", dc)
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	body := []byte(`{"type":"connected","timestamp":` + strconv.FormatInt(now.Unix(), 10) + `}`)
	sig := webhook.Sign(secret, body)
	if !webhook.Verify(secret, body, sig, time.Minute, now) {
		t.Fatal("a fresh, signed body does not verify")
	}
	if webhook.Verify("other", body, sig, time.Minute, now) {
		t.Error("verified with the wrong secret")
	}
	tampered := append([]byte(nil), body...)
	tampered[10] = 'X'
	if webhook.Verify(secret, tampered, sig, time.Minute, now) {
		t.Error("verified a tampered body")
	}
	if webhook.Verify(secret, body, sig, time.Minute, now.Add(10*time.Minute)) {
		t.Error("verified a replay ten minutes later")
	}
}

// TestRetriesUntilUp: a receiver answering 503, then one that is not even
// listening, gets the event once it is up again.
func TestRetriesUntilUp(t *testing.T) {
	t.Run("5xx", func(t *testing.T) {
		rc := &receiver{t: t, answer: func(n int64) int {
			if n <= 3 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		d := newDispatcher(t, webhook.Config{URLs: []string{srv.URL}})
		d.Published(announce.Publication{Message: announce.Message{ID: 1, Channel: "news"}, Via: "http"})
		testenv.WaitFor(t, 15*time.Second, "delivery after retries", func() bool { return d.Stats().OK == 1 })
		if s := d.Stats(); s.Retries != 3 || s.Failed != 0 || rc.hits.Load() != 4 {
			t.Fatalf("stats %+v, hits %d; want 3 retries then success", s, rc.hits.Load())
		}
	})
	t.Run("refused", func(t *testing.T) {
		// A loopback address of its own, so that nothing else is likely
		// to take the port between the close and the listen again.
		l, err := net.Listen("tcp", fmt.Sprintf("127.%d.%d.%d:0", 1+rand.IntN(250), rand.IntN(250), 1+rand.IntN(250)))
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // down: connections are refused
		d := newDispatcher(t, webhook.Config{URLs: []string{"http://" + addr + "/hook"}, Backoff: 100 * time.Millisecond, Attempts: 8})
		d.Connected(announce.Session{ID: "x", Channel: "news", Transport: announce.SSE})
		testenv.WaitFor(t, 15*time.Second, "a failed attempt", func() bool { return d.Stats().Retries >= 1 })
		rc := &receiver{t: t}
		srv := httptest.NewUnstartedServer(rc)
		srv.Listener.Close()
		if srv.Listener, err = net.Listen("tcp", addr); err != nil {
			t.Fatalf("listening again on %s: %v", addr, err)
		}
		srv.Start()
		defer srv.Close()
		testenv.WaitFor(t, 15*time.Second, "delivery once the receiver is up", func() bool { return d.Stats().OK == 1 })
		if got := rc.events(); len(got) != 1 || got[0].Type != "connected" {
			t.Fatalf("received %+v", got)
		}
	})
}

// TestNoRetryOn4xx: a refusal is final; ten backoffs later no retry came.
func TestNoRetryOn4xx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{t: t, answer: func(int64) int { return http.StatusBadRequest }}
		d := newDispatcher(t, webhook.Config{URLs: []string{"http://receiver.test/hook"}, Client: inMemory(rc)})
		d.Published(announce.Publication{Message: announce.Message{ID: 1, Channel: "news"}})
		synctest.Wait()
		if s := d.Stats(); s.Failed != 1 {
			t.Fatalf("stats %+v, want the refusal counted as failed", s)
		}
		time.Sleep(10 * 10 * time.Millisecond) // ten first backoffs
		synctest.Wait()
		if s := d.Stats(); s.Retries != 0 || rc.hits.Load() != 1 || s.Pending != 0 {
			t.Fatalf("stats %+v, hits %d; want one attempt, no retry", s, rc.hits.Load())
		}
	})
}

// TestGivesUpAfterAttempts: with the default backoff, five tries span about
// 30 s, and then the delivery counts as failed.
func TestGivesUpAfterAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{t: t, answer: func(int64) int { return http.StatusBadGateway }}
		d := newDispatcher(t, webhook.Config{URLs: []string{"http://receiver.test/hook"}, Client: inMemory(rc),
			Backoff: webhook.DefaultBackoff})
		begin := time.Now()
		d.Published(announce.Publication{Message: announce.Message{ID: 1, Channel: "news"}})
		for d.Stats().Failed == 0 {
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(begin) // 2+4+8+16 = 30 s, each wait ±20 %
		if s := d.Stats(); s.Retries != webhook.DefaultAttempts-1 || rc.hits.Load() != webhook.DefaultAttempts || s.Pending != 0 {
			t.Fatalf("stats %+v, hits %d; want %d attempts", s, rc.hits.Load(), webhook.DefaultAttempts)
		}
		if took < 24*time.Second || took > 36*time.Second+100*time.Millisecond {
			t.Fatalf("five tries took %v, want 30 s ± 20 %%", took)
		}
	})
}

// TestBackoffDoubles: each retry waits twice the one before, within the
// ±20 % spread.
func TestBackoffDoubles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		rc := &receiver{t: t, answer: func(n int64) int {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			if n < 5 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}}
		const backoff = time.Second
		d := newDispatcher(t, webhook.Config{URLs: []string{"http://receiver.test/hook"}, Client: inMemory(rc),
			Backoff: backoff, Attempts: 5})
		d.Connected(announce.Session{ID: "x", Channel: "news", Transport: announce.SSE})
		time.Sleep(time.Minute)
		synctest.Wait()
		if s := d.Stats(); s.OK != 1 || s.Retries != 4 {
			t.Fatalf("stats %+v, want delivered on the fifth try", s)
		}
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < len(at); i++ {
			want := backoff << (i - 1)
			if gap := at[i].Sub(at[i-1]); gap < want-want/5 || gap > want+want/5 {
				t.Errorf("wait before try %d: %v, want %v ± 20 %%", i+1, gap, want)
			}
		}
	})
}

// TestFullQueueDrops: a receiver that hangs fills the queue; further events
// are dropped and counted at once, never waited for.
func TestFullQueueDrops(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client leaving
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	d := newDispatcher(t, webhook.Config{URLs: []string{srv.URL}, Queue: 5, Workers: 1, Timeout: time.Minute})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			d.Published(announce.Publication{Message: announce.Message{ID: uint64(i + 1), Channel: "news"}})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("enqueueing blocked on a full queue")
	}
	if s := d.Stats(); s.Dropped != 995 || s.Pending != 5 {
		t.Fatalf("stats %+v, want 995 dropped and 5 pending", s)
	}
}

// TestCloseFlushes: retries waiting for their backoff go out at once when
// the dispatcher closes, so a receiver that recovers still gets them.
func TestCloseFlushes(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	rc := &receiver{t: t, answer: func(int64) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	d := newDispatcher(t, webhook.Config{URLs: []string{srv.URL}, Backoff: time.Hour})
	d.Disconnected(announce.Session{ID: "x", Channel: "news", Transport: announce.SSE})
	testenv.WaitFor(t, 15*time.Second, "the first failure", func() bool { return d.Stats().Retries == 1 })
	down.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := d.Stats(); s.OK != 1 {
		t.Fatalf("stats %+v: the waiting retry was not flushed", s)
	}
	d.Connected(announce.Session{ID: "y", Channel: "news"}) // after Close: dropped
	if s := d.Stats(); s.Dropped != 1 {
		t.Fatalf("after Close: %+v", s)
	}
}

// TestCloseDeadline: a receiver that hangs cannot hold the shutdown.
func TestCloseDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		d := newDispatcher(t, webhook.Config{URLs: []string{"http://receiver.test/hook"}, Client: inMemory(hang), Timeout: time.Minute})
		d.Connected(announce.Session{ID: "x", Channel: "news"})
		d.Connected(announce.Session{ID: "y", Channel: "news"})
		const deadline = 200 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		begin := time.Now()
		if err := d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want the deadline", err)
		}
		if took := time.Since(begin); took > deadline+10*time.Millisecond {
			t.Errorf("Close took %v with a %v deadline", took, deadline)
		}
		if s := d.Stats(); s.Dropped != 2 || s.Pending != 0 {
			t.Fatalf("stats %+v, want both abandoned as dropped", s)
		}
	})
}

func TestEveryURL(t *testing.T) {
	a, b := &receiver{t: t}, &receiver{t: t}
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	d := newDispatcher(t, webhook.Config{URLs: []string{sa.URL, sb.URL}})
	d.Published(announce.Publication{Message: announce.Message{ID: 3, Channel: "news"}})
	testenv.WaitFor(t, 15*time.Second, "both receivers", func() bool { return len(a.events()) == 1 && len(b.events()) == 1 })
	if a.events()[0].EventID != b.events()[0].EventID {
		t.Error("one event, two ids")
	}
}

// TestHungReceiverHoldsUpOnlyItself: with a receiver that never answers,
// holding every worker it has, each event still reaches the healthy one.
func TestHungReceiverHoldsUpOnlyItself(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	healthy := &receiver{t: t}
	sh := httptest.NewServer(healthy)
	defer sh.Close()
	d := newDispatcher(t, webhook.Config{URLs: []string{hung.URL, sh.URL}, Workers: 2, Timeout: time.Minute})
	const events = 50
	for i := range events {
		d.Published(announce.Publication{Message: announce.Message{ID: uint64(i + 1), Channel: "news"}})
	}
	testenv.WaitFor(t, 15*time.Second, "every event at the healthy receiver", func() bool { return len(healthy.events()) == events })
}

func TestNewValidates(t *testing.T) {
	for _, urls := range [][]string{nil, {"ftp://x/"}, {"not a url"}, {"http://"}} {
		if _, err := webhook.New(webhook.Config{URLs: urls}); err == nil {
			t.Errorf("New(%q) succeeded", urls)
		}
	}
}
