package redis_test

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/internal/testenv"
)

func openPresence(t *testing.T, addr, prefix string) *redis.Presence {
	t.Helper()
	p, err := redis.NewPresence(redis.PresenceConfig{URL: "redis://" + addr, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestPresencePutRead: nodes' entries add up, an empty state removes one,
// and an entry not refreshed within its ttl is gone (a crashed node).
func TestPresencePutRead(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	a, b := openPresence(t, addr, prefix), openPresence(t, addr, prefix)
	ctx := t.Context()
	alice := presence.State{Counts: presence.Counts{SSE: 2, WS: 1}, Names: []string{"alice"}}
	if err := a.Put(ctx, "A", map[string]presence.State{"news": alice, "other": {Counts: presence.Counts{Poll: 1}}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	crashed := presence.State{Counts: presence.Counts{Poll: 4}}
	if err := b.Put(ctx, "B", map[string]presence.State{"news": crashed}, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	got, err := b.Read(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["A"].Counts != alice.Counts || !slices.Equal(got["A"].Names, alice.Names) || got["B"].Counts != crashed.Counts {
		t.Fatalf("Read = %+v", got)
	}
	time.Sleep(400 * time.Millisecond) // B never refreshes: it crashed
	if got, _ = a.Read(ctx, "news"); len(got) != 1 || got["A"].Counts != alice.Counts {
		t.Fatalf("after B's ttl: %+v, want A alone", got)
	}
	raw := rawClient(t, addr)
	if n, _ := raw.HLen(ctx, prefix+"{news}:presence").Result(); n != 1 {
		t.Errorf("the expired field was not deleted: %d fields", n)
	}
	if err := a.Put(ctx, "A", map[string]presence.State{"news": {}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ = a.Read(ctx, "news"); len(got) != 0 {
		t.Fatalf("after removal: %+v", got)
	}
	if ttl, _ := raw.PTTL(ctx, prefix+"{other}:presence").Result(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("the hash has TTL %v, want at most the entries' ttl", ttl)
	}
}

func TestPresenceBroadcast(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := "t[*]:" // glob characters in the prefix stay literal
	a, b := openPresence(t, addr, prefix), openPresence(t, addr, prefix)
	other := openPresence(t, addr, "elsewhere:")
	type got struct{ node, channel, event string }
	var mu sync.Mutex
	var heard, stray []got
	if err := b.Listen(func(node, channel string, event []byte) {
		mu.Lock()
		heard = append(heard, got{node, channel, string(event)})
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := other.Listen(func(node, channel string, event []byte) {
		mu.Lock()
		stray = append(stray, got{node, channel, string(event)})
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Listen(func(string, string, []byte) {}); err == nil {
		t.Error("a second Listen succeeded")
	}
	ev := []byte(`{"event":"join","channel":"a.b:c-d_e","name":"x"}`)
	// The pattern subscription is asynchronous: broadcast until it is heard.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := a.Broadcast(t.Context(), "A", "a.b:c-d_e", ev); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(heard)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no broadcast heard")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if h := heard[0]; h.node != "A" || h.channel != "a.b:c-d_e" || h.event != string(ev) {
		t.Fatalf("heard %+v", h)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(heard[0].event), &e); err != nil {
		t.Fatal(err)
	}
	if len(stray) != 0 {
		t.Fatalf("a node with another prefix heard %+v", stray)
	}
}

func TestPresenceUnavailable(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := openPresence(t, srv.Addr, uniquePrefix())
	srv.Stop()
	if _, err := p.Read(t.Context(), "news"); !errors.Is(err, announce.ErrUnavailable) {
		t.Errorf("Read with Redis down: %v", err)
	}
	if err := p.Put(t.Context(), "A", map[string]presence.State{"news": {Counts: presence.Counts{WS: 1}}}, time.Second); !errors.Is(err, announce.ErrUnavailable) {
		t.Errorf("Put with Redis down: %v", err)
	}
}
