package api_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// Reads of channels nobody published on keep nothing in memory: not the
// channel info, the log, a long-poll that times out nor a stream that ends.
func TestReadsOfUnknownChannelsCacheNothing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) {
		t.Helper()
		resp, err := client.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	for i := range 300 {
		get(fmt.Sprintf("/channels/x-%d", i))
		get(fmt.Sprintf("/channels/y-%d/messages", i))
		get(fmt.Sprintf("/channels/z-%d/status?since=0&timeout=0.01", i))
	}
	for i := range 20 {
		s := openSSE(t, fmt.Sprintf("%s/channels/s-%d/events", ts.URL, i))
		s.Close()
	}
	w := dialRawWS(t, ts, "/channels/w-1/ws")
	w.conn.Close()
	waitCached(t, ts, 0)

	// A channel with a message is cached once read, and still answers.
	ts.Publish(t, "real", "hello")
	get("/channels/real")
	if n := ts.Hub.CachedChannels(); n != 1 {
		t.Fatalf("%d channels cached after reading one with a message, want 1", n)
	}
}

// The cache holds at most --max-cached-channels unobserved channels, least
// recently used out first, and never drops an observed one: its observer
// still gets what is published after the cache filled up many times over.
func TestChannelCacheIsBoundedAndKeepsObserved(t *testing.T) {
	t.Parallel()
	const limit = 64
	ts := newTestServerHub(t, func(c *announce.Config) { c.Limits.MaxCachedChannels = limit })
	ts.Publish(t, "watched", "first")
	s := openSSE(t, ts.URL+"/channels/watched/events")
	if m := s.nextMessage(t); m.Content != "first" {
		t.Fatalf("replay %q, want first", m.Content)
	}
	for i := range 10 * limit {
		name := fmt.Sprintf("c-%d", i)
		ts.Publish(t, name, "m")
		resp, err := http.Get(ts.URL + "/channels/" + name)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if n := ts.Hub.CachedChannels(); n > limit {
			t.Fatalf("%d channels cached, limit %d", n, limit)
		}
	}
	ts.Publish(t, "watched", "second")
	if m := s.nextMessage(t); m.Content != "second" {
		t.Fatalf("observer got %q, want second", m.Content)
	}
}

// waitCached waits until the hub caches n channels: observers leave
// asynchronously once their connection closes.
func waitCached(t *testing.T, ts *testServer, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ts.Hub.CachedChannels() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d channels cached, want %d", ts.Hub.CachedChannels(), n)
		}
	}
}
