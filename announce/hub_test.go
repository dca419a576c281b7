package announce

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestNewHubRequiresStore(t *testing.T) {
	if _, err := NewHub(Config{}); err == nil {
		t.Fatal("NewHub without a store succeeded")
	}
}

func TestHubDefaults(t *testing.T) {
	h := newTestHub(t, Config{})
	if h.MaxMessage() != DefaultMaxMessage || h.QueueLimit() != DefaultQueue || h.history != DefaultHistory || h.idle != DefaultIdleTimeout {
		t.Fatalf("defaults: max %d queue %d history %d idle %v", h.MaxMessage(), h.QueueLimit(), h.history, h.idle)
	}
	if h.Store() == nil {
		t.Fatal("Store() is nil")
	}
}

func TestTinyIdleTimeout(t *testing.T) {
	h, err := NewHub(Config{Store: NewMemoryStore(0), IdleTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(context.Background(), "x", "y"); err != nil {
		t.Fatal(err)
	}
	h.Shutdown(context.Background())
}

func TestStats(t *testing.T) {
	h := newTestHub(t, Config{})
	ctx := context.Background()
	s := h.Stats()
	poll := NewObserver(Poll, 0)
	sse1, sse2 := NewObserver(SSE, 0), NewObserver(SSE, 0)
	ws := NewObserver(WebSocket, 0)
	if _, _, err := h.Wait(ctx, "s", poll, nil); err != nil {
		t.Fatal(err)
	}
	c, _, err := h.Subscribe(ctx, "s", sse1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Observer{sse2, ws} {
		if _, _, err := h.Subscribe(ctx, "s", o, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := map[Transport]int64{Poll: 1, SSE: 2, WebSocket: 1}
	for tr, n := range want {
		if s.Observers(tr) != n || c.Counts()[tr.String()] != int(n) {
			t.Fatalf("Observers(%v) = %d, Counts %v; want %d", tr, s.Observers(tr), c.Counts(), n)
		}
	}

	mustPublish(t, h, "s", 3)
	if s.Published() != 3 {
		t.Fatalf("Published = %d, want 3", s.Published())
	}
	// The long-poll got the first only; SSE twice three; WebSocket three.
	for tr, n := range map[Transport]uint64{Poll: 1, SSE: 6, WebSocket: 3} {
		if s.Delivered(tr) != n {
			t.Fatalf("Delivered(%v) = %d, want %d", tr, s.Delivered(tr), n)
		}
	}
	if s.Observers(Poll) != 0 {
		t.Fatalf("Observers(poll) = %d after the wake, want 0", s.Observers(Poll))
	}
	c.Unsubscribe(sse1)
	if s.Observers(SSE) != 1 {
		t.Fatalf("Observers(sse) = %d after Unsubscribe, want 1", s.Observers(SSE))
	}
	// Publishing on a channel nobody holds counts as published, delivers nothing.
	mustPublish(t, h, "nobody", 1)
	if s.Published() != 4 || s.Delivered(SSE) != 6 {
		t.Fatalf("Published %d Delivered(sse) %d; want 4, 6", s.Published(), s.Delivered(SSE))
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config (all defaults): %v", err)
	}
	for want, cfg := range map[string]Config{
		"--history must be at least 1":             {History: -1},
		"--max-message must be at least 1":         {MaxMessage: -1},
		"--queue must be at least 1":               {Queue: -1},
		"the idle timeout must not be negative":    {IdleTimeout: -time.Second},
		"--max-cached-channels must be at least 1": {Limits: Limits{MaxCachedChannels: -1}},
		"--channel-ttl must not be negative":       {Limits: Limits{ChannelTTL: -time.Second}},
	} {
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %v, want %q", cfg, err, want)
		}
		cfg.Store = NewMemoryStore(0)
		if _, err := NewHub(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewHub(%+v) = %v, want %q", cfg, err, want)
		}
	}
	// Every setting out of range is reported at once.
	err := Config{History: -1, Queue: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "--history") || !strings.Contains(err.Error(), "--queue") {
		t.Fatalf("two bad settings: %v", err)
	}
	// No limit is a valid limit.
	if err := (Config{Limits: Limits{MaxChannels: -1, MaxScheduledTotal: -1}}).Validate(); err != nil {
		t.Fatalf("negative MaxChannels and MaxScheduledTotal (no limit): %v", err)
	}
}
