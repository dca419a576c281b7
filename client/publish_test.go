package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

func TestPublishRetries(t *testing.T) {
	var calls atomic.Int32
	failures := int32(2)
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if n <= failures {
			w.WriteHeader(status)
			fmt.Fprint(w, `{"error":"store unavailable"}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":7,"channel":"x","content":"hi","time":"2026-01-02T03:04:05Z"}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	m, err := c.Publish(context.Background(), "x", "hi")
	if err != nil || m.ID != 7 || calls.Load() != 3 {
		t.Fatalf("503 twice, then 201: got %+v, %v after %d calls", m, err, calls.Load())
	}

	calls.Store(0)
	status = http.StatusBadRequest
	_, err = c.Publish(context.Background(), "x", "hi")
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != 400 || e.Reason != "store unavailable" || calls.Load() != 1 {
		t.Fatalf("a 400 must not be retried: err %v after %d calls", err, calls.Load())
	}
}

func TestPublishKey(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true, PublishKey: "s3cret"})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	ctx := context.Background()
	for _, tc := range []struct {
		key    string
		status int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusForbidden}, {"s3cret", 0}} {
		c, err := client.New(client.Config{Server: node.URL(), Key: tc.key})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Publish(ctx, "keyed", "hello")
		var e *client.Error
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("right key: %v", err)
		case tc.status != 0 && (!errors.As(err, &e) || e.StatusCode != tc.status):
			t.Errorf("key %q: err %v, want status %d", tc.key, err, tc.status)
		}
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8000", "ftp://x", "http://", "http://x/?a=b"} {
		if _, err := client.New(client.Config{Server: u}); err == nil {
			t.Errorf("New(%q) accepted it", u)
		}
	}
}

// TestPublishRetryIsIdempotent: the first answer is lost after the server
// stored the message; the retry carries the same Idempotency-Key, so the
// server answers the original message and stores nothing twice.
func TestPublishRetryIsIdempotent(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	target, _ := url.Parse(node.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var calls atomic.Int32
	var keys sync.Map
	lossy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys.Store(r.Header.Get("Idempotency-Key"), true)
		if calls.Add(1) == 1 {
			proxy.ServeHTTP(httptest.NewRecorder(), r) // stored, but the answer is lost
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer lossy.Close()

	m, err := newClient(t, lossy.URL).Publish(context.Background(), "idem", "once")
	if err != nil || m.ID != 1 || calls.Load() != 2 {
		t.Fatalf("got %+v, %v after %d calls; want id 1 after 2", m, err, calls.Load())
	}
	n := 0
	keys.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d different Idempotency-Keys across one publish's attempts, want 1", n)
	}
	info, err := newClient(t, node.URL()).Info(context.Background(), "idem")
	if err != nil || info.Current.ID != 1 {
		t.Errorf("the channel is at id %d (%v): the retry published again", info.Current.ID, err)
	}
}
