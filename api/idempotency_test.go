package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// Helpers here are prefixed idem, so they never collide with other test files.

// idemPost publishes content to path with an Idempotency-Key (none when key is "-").
func idemPost(t *testing.T, ts *testServer, path, key, content string, header ...string) (*http.Response, []byte) {
	t.Helper()
	if key != "-" {
		header = append(header, "Idempotency-Key", key)
	}
	return ts.post(t, path, "application/json", []byte(`{"content":"`+content+`"}`), header...)
}

func idemCurrent(t *testing.T, ts *testServer, ch string) uint64 {
	t.Helper()
	c, err := ts.Hub.Channel(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	return c.Current().ID
}

func TestIdempotentRetryReplays(t *testing.T) {
	ts := newTestServer(t)
	resp, b := idemPost(t, ts, "/channels/idem/messages", "order-42", "once")
	assertStatus(t, resp, b, http.StatusCreated)
	first := decodeMessage(t, b)
	if resp.Header.Get("Idempotent-Replay") != "" {
		t.Errorf("first publish marked as a replay")
	}
	for i := 0; i < 3; i++ {
		resp, b = idemPost(t, ts, "/channels/idem/messages", "order-42", "once")
		assertStatus(t, resp, b, http.StatusCreated)
		if got := decodeMessage(t, b); got != first {
			t.Fatalf("retry answered %+v, want the original %+v", got, first)
		}
		if resp.Header.Get("Idempotent-Replay") != "true" {
			t.Errorf("retry: Idempotent-Replay %q, want true", resp.Header.Get("Idempotent-Replay"))
		}
	}
	if got := ts.Hub.Stats().Published(); got != 1 {
		t.Fatalf("%d messages published, want 1", got)
	}
	// Another key is another message; no key is always a new message.
	resp, b = idemPost(t, ts, "/channels/idem/messages", "order-43", "once")
	assertStatus(t, resp, b, http.StatusCreated)
	if m := decodeMessage(t, b); m.ID != first.ID+1 || resp.Header.Get("Idempotent-Replay") != "" {
		t.Fatalf("other key answered %+v", m)
	}
	for range 2 {
		resp, b = idemPost(t, ts, "/channels/idem/messages", "-", "once")
		assertStatus(t, resp, b, http.StatusCreated)
	}
	if got := idemCurrent(t, ts, "idem"); got != 4 {
		t.Fatalf("current id %d, want 4", got)
	}
	// Keys belong to their channel.
	resp, b = idemPost(t, ts, "/channels/idem2/messages", "order-42", "once")
	assertStatus(t, resp, b, http.StatusCreated)
	if m := decodeMessage(t, b); m.Channel != "idem2" || m.ID != 1 || resp.Header.Get("Idempotent-Replay") != "" {
		t.Fatalf("same key on another channel answered %+v", m)
	}
}

// The seed's POST /chat honours the key too.
func TestIdempotentChat(t *testing.T) {
	ts := newTestServer(t)
	var ids []uint64
	for range 2 {
		resp, b := ts.post(t, "/chat", "application/x-www-form-urlencoded", []byte("content=hello"), "Idempotency-Key", "chat-1")
		assertStatus(t, resp, b, http.StatusCreated)
		ids = append(ids, decodeMessage(t, b).ID)
	}
	if ids[0] != ids[1] || ts.Hub.Stats().Published() != 1 {
		t.Fatalf("ids %v, published %d", ids, ts.Hub.Stats().Published())
	}
}

// Ten concurrent requests with one key publish exactly one message.
func TestIdempotentConcurrentDuplicates(t *testing.T) {
	ts := newTestServer(t)
	const n = 10
	var wg sync.WaitGroup
	type result struct {
		status int
		id     uint64
		replay string
		err    string
	}
	results := make(chan result, 2*n)
	start := make(chan struct{})
	for i := 0; i < 2*n; i++ {
		key := "dup-a"
		if i%2 == 1 {
			key = "dup-b" // a second key racing alongside
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/channels/race/messages", strings.NewReader("content="+key))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Idempotency-Key", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- result{err: err.Error()}
				return
			}
			defer resp.Body.Close()
			var m announce.Message
			body, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(body, &m); err != nil {
				results <- result{status: resp.StatusCode, err: string(body)}
				return
			}
			if m.Content != key {
				results <- result{err: "content " + m.Content + " for key " + key}
				return
			}
			results <- result{status: resp.StatusCode, id: m.ID, replay: resp.Header.Get("Idempotent-Replay")}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	ids := map[uint64]int{}
	fresh := 0
	for r := range results {
		if r.err != "" || r.status != http.StatusCreated {
			t.Fatalf("status %d: %s", r.status, r.err)
		}
		ids[r.id]++
		if r.replay != "true" {
			fresh++
		}
	}
	if len(ids) != 2 || ids[1] != n || ids[2] != n {
		t.Fatalf("answers per id %v, want %d each for ids 1 and 2", ids, n)
	}
	if fresh != 2 {
		t.Errorf("%d answers not marked as replays, want 2 (one per key)", fresh)
	}
	if got := ts.Hub.Stats().Published(); got != 2 {
		t.Fatalf("%d messages published, want 2", got)
	}
	if got := idemCurrent(t, ts, "race"); got != 2 {
		t.Fatalf("current id %d, want 2", got)
	}
}

func TestIdempotencyKeyRejects(t *testing.T) {
	ts := newTestServer(t)
	for _, key := range []string{
		"",
		strings.Repeat("k", 129),
		"caf\u00e9", // not ASCII
		"tab\there", // not printable
	} {
		resp, b := idemPost(t, ts, "/channels/idem/messages", key, "x")
		assertError(t, resp, b, http.StatusBadRequest)
	}
	// Two keys in one request.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/chat", strings.NewReader("x"))
	req.Header.Add("Idempotency-Key", "a")
	req.Header.Add("Idempotency-Key", "b")
	resp, b := do(t, nil, req)
	assertError(t, resp, b, http.StatusBadRequest)
	// The longest allowed key and every printable character are fine.
	resp, b = idemPost(t, ts, "/channels/idem/messages", strings.Repeat("k", 128), "x")
	assertStatus(t, resp, b, http.StatusCreated)
	resp, b = idemPost(t, ts, "/channels/idem/messages", ` !"#$%&'()*+,-./09:;<=>?@AZ[\]^_`+"`az{|}~", "x")
	assertStatus(t, resp, b, http.StatusCreated)
	if got := ts.Hub.Stats().Published(); got != 2 {
		t.Fatalf("%d messages published, want 2", got)
	}
}

// A failed publish is not remembered; a key reused for other content is refused.
func TestIdempotencyFailuresAndReuse(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) { c.PublishKey = "k" })
	auth := []string{"Authorization", "Bearer k"}
	resp, b := idemPost(t, ts, "/channels/idem/messages", "retry-me", "", auth...) // empty content: 400
	assertError(t, resp, b, http.StatusBadRequest)
	resp, b = idemPost(t, ts, "/channels/idem/messages", "retry-me", "now with content") // no key: 401
	assertError(t, resp, b, http.StatusUnauthorized)
	resp, b = idemPost(t, ts, "/channels/idem/messages", "retry-me", "now with content", auth...)
	assertStatus(t, resp, b, http.StatusCreated)
	if resp.Header.Get("Idempotent-Replay") != "" {
		t.Fatal("a failed attempt was remembered")
	}
	resp, b = idemPost(t, ts, "/channels/idem/messages", "retry-me", "different content", auth...)
	assertError(t, resp, b, http.StatusUnprocessableEntity)
	if got := ts.Hub.Stats().Published(); got != 1 {
		t.Fatalf("%d messages published, want 1", got)
	}
}

// A shared Idempotency (as Redis would provide) replaces the per-node memory.
func TestIdempotencyPluggable(t *testing.T) {
	shared := announce.NewMemoryIdempotency(announce.IdempotencyConfig{})
	a := newTestServer(t, func(c *api.Config) { c.Idempotency = shared })
	resp, b := idemPost(t, a, "/channels/idem/messages", "k1", "x")
	assertStatus(t, resp, b, http.StatusCreated)
	if shared.Len() != 1 {
		t.Fatalf("shared store holds %d keys, want 1", shared.Len())
	}
}
