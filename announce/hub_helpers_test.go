package announce

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// The hub's tests, by subject: hub_test.go (configuration, counters),
// hub_publish_test.go (publish, subscribe, replay, long-poll),
// hub_gap_test.go (the sequencer: order, gaps), hub_cache_test.go (loading,
// idle eviction, channel TTL, delete), hub_shutdown_test.go. Timer-driven tests
// run in a testing/synctest bubble, where time is fake and exact.

// newTestHub returns a hub over a MemoryStore keeping cfg.History messages,
// shut down when the test ends. The gap-fill grace is shortened so that
// tests out of a synctest bubble that meet a gap run quickly.
func newTestHub(t testing.TB, cfg Config) *Hub {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore(cfg.History)
	}
	h, err := NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.gapGrace = 20 * time.Millisecond
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

func ptr(id uint64) *uint64 { return &id }

func mustPublish(t testing.TB, h *Hub, ch string, n int) []*Envelope {
	t.Helper()
	out := make([]*Envelope, 0, n)
	for i := range n {
		e, err := h.Publish(context.Background(), ch, fmt.Sprintf("message %d", i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// receive waits until o has delivered n envelopes (replay not included) and
// returns them; it fails the test when o closes or nothing comes for 5s.
func receive(t testing.TB, o *Observer, n int) []*Envelope {
	t.Helper()
	var got []*Envelope
	deadline := time.After(5 * time.Second)
	for {
		got = o.Take(got)
		if len(got) >= n {
			return got
		}
		select {
		case <-o.Ready():
		case <-o.Done():
			if got = o.Take(got); len(got) >= n {
				return got
			}
			t.Fatalf("observer closed (%v) after %d of %d messages", o.Err(), len(got), n)
		case <-deadline:
			t.Fatalf("timed out after %d of %d messages: %v", len(got), n, envIDs(got))
		}
	}
}

func wantIDs(t testing.TB, what string, got []*Envelope, want ...uint64) {
	t.Helper()
	if ids := envIDs(got); !slices.Equal(ids, want) {
		t.Fatalf("%s: ids %v, want %v", what, ids, want)
	}
}

// appendToStore commits n messages to the store behind the hub's back, as
// another node sharing the store would.
func appendToStore(t testing.TB, s Store, ch string, n int) []Message {
	t.Helper()
	out := make([]Message, 0, n)
	for i := range n {
		m, err := s.Append(context.Background(), ch, fmt.Sprint("remote ", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
