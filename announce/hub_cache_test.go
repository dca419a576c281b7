package announce

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestIdleEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 20 * time.Millisecond
		h := newTestHub(t, Config{IdleTimeout: idle})
		ctx := context.Background()

		busy := NewObserver(SSE, 0)
		busyCh, _, err := h.Subscribe(ctx, "busy", busy, nil)
		if err != nil {
			t.Fatal(err)
		}
		idleCh, err := h.Channel(ctx, "idle")
		if err != nil {
			t.Fatal(err)
		}
		mustPublish(t, h, "idle", 2)
		time.Sleep(idle - time.Millisecond)
		synctest.Wait()
		if h.lookup("idle") != idleCh {
			t.Fatal("a channel was evicted before its idle timeout")
		}
		time.Sleep(idle / 2) // past the timeout and the next pass
		synctest.Wait()
		if h.lookup("idle") != nil {
			t.Fatal("the idle channel was not evicted after its idle timeout")
		}
		if h.lookup("busy") != busyCh {
			t.Fatal("a channel with an observer was evicted")
		}
		// Whatever the clock says, a channel with observers stays.
		h.evictIdle(time.Now().Add(time.Hour))
		if h.lookup("busy") != busyCh {
			t.Fatal("a channel with an observer was evicted")
		}

		// Published while evicted, by this hub and by another node: the store has both.
		mustPublish(t, h, "idle", 1)
		appendToStore(t, h.Store(), "idle", 1)
		o := NewObserver(WebSocket, 0)
		c, r, err := h.Subscribe(ctx, "idle", o, ptr(1))
		if err != nil {
			t.Fatal(err)
		}
		if c == idleCh {
			t.Fatal("Subscribe returned the evicted channel")
		}
		wantIDs(t, "replay after reload", r.Messages, 2, 3, 4)
		if cur := c.Current(); cur.ID != 4 || cur.Content != "remote 0" {
			t.Fatalf("Current after reload = %+v, want id 4 from the store", cur.Message)
		}
		e := mustPublish(t, h, "idle", 1)[0]
		wantIDs(t, "live after reload", o.Take(nil), 5)
		if e.ID != 5 {
			t.Fatalf("publish after reload got id %d, want 5", e.ID)
		}
		// The busy one still delivers.
		mustPublish(t, h, "busy", 1)
		wantIDs(t, "busy", busy.Take(nil), 1)
	})
}

// TestChannelTTL: a channel with no publish for the TTL and no observer is
// deleted from the store and the cache; one observed or published more
// recently stays.
func TestChannelTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Hour // the pass runs every minute
		store := NewMemoryStore(0)
		h := newTestHub(t, Config{Store: store, IdleTimeout: 2 * ttl, Limits: Limits{ChannelTTL: ttl}})
		ctx := context.Background()
		current := func(ch string) uint64 {
			m, err := store.Current(ctx, ch)
			if err != nil {
				t.Fatal(err)
			}
			return m.ID
		}
		mustPublish(t, h, "old", 2)
		if _, err := h.Channel(ctx, "old"); err != nil { // cached too
			t.Fatal(err)
		}
		mustPublish(t, h, "watched", 1)
		watcher := NewObserver(SSE, 0)
		if _, _, err := h.Subscribe(ctx, "watched", watcher, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(ttl / 2)
		mustPublish(t, h, "recent", 1)
		time.Sleep(ttl/2 - 2*time.Minute)
		synctest.Wait()
		if current("old") != 2 || h.lookup("old") == nil {
			t.Fatal("a channel was deleted before its TTL")
		}
		time.Sleep(4 * time.Minute)
		synctest.Wait()
		if current("old") != 0 || h.lookup("old") != nil {
			t.Fatalf("a channel idle past its TTL is still there (id %d in the store)", current("old"))
		}
		if current("recent") != 1 || current("watched") != 1 || watcher.Err() != nil {
			t.Fatalf("recent %d, watched %d (observer %v); want both kept", current("recent"), current("watched"), watcher.Err())
		}
	})
}

// TestDeleteClosesObservers: deleting a channel closes its observers with
// ErrDeleted, forgets its idempotency keys, and the channel starts again at 1.
func TestDeleteClosesObservers(t *testing.T) {
	h := newTestHub(t, Config{})
	ctx := context.Background()
	idem := NewMemoryIdempotency(IdempotencyConfig{})
	publish := func(context.Context) (*Envelope, error) { return h.Publish(ctx, "d", "x") }
	if _, _, err := idem.Do(ctx, "d", "key", "x", publish); err != nil {
		t.Fatal(err)
	}
	stream, poll := NewObserver(WebSocket, 0), NewObserver(Poll, 0)
	c, _, err := h.Subscribe(ctx, "d", stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, e, err := h.Wait(ctx, "d", poll, ptr(1)); err != nil || e != nil {
		t.Fatalf("Wait = %v, %v; want to register", e, err)
	}
	if err := h.Delete(ctx, "d", idem); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Observer{stream, poll} {
		if !errors.Is(o.Err(), ErrDeleted) {
			t.Fatalf("%v observer Err = %v, want ErrDeleted", o.Transport(), o.Err())
		}
	}
	if cur := c.Current(); cur.ID != 0 || len(c.History(0, 0)) != 0 {
		t.Fatalf("the deleted channel reads %d with history %v; want never published", cur.ID, envIDs(c.History(0, 0)))
	}
	if e, replayed, err := idem.Do(ctx, "d", "key", "x", publish); err != nil || replayed || e.ID != 1 {
		t.Fatalf("publish after delete = %v replayed %v, %v; want a new id 1", e, replayed, err)
	}
}

// gateStore holds every Since until gate is closed or the caller gives up.
type gateStore struct {
	Store
	gate chan struct{}
}

func (s *gateStore) Since(ctx context.Context, ch string, since uint64, limit int) ([]Message, error) {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.Since(ctx, ch, since, limit)
}

// TestLoadCancelledByOneCaller: the caller that loads a channel may go away;
// the others waiting for the same load must not fail with its cancellation.
func TestLoadCancelledByOneCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &gateStore{Store: NewMemoryStore(0), gate: make(chan struct{})}
		h := newTestHub(t, Config{Store: store})
		loaderCtx, cancel := context.WithCancel(context.Background())
		loaderErr := make(chan error, 1)
		go func() {
			_, err := h.Channel(loaderCtx, "slow")
			loaderErr <- err
		}()
		synctest.Wait() // the first caller is loading, held in the store
		if h.lookup("slow") == nil {
			t.Fatal("the loading channel is not in the hub")
		}
		otherErr := make(chan error, 1)
		go func() {
			_, err := h.Channel(context.Background(), "slow")
			otherErr <- err
		}()
		synctest.Wait() // the second caller waits for the first one's load
		cancel()
		if err := <-loaderErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled loader: %v", err)
		}
		close(store.gate)
		if err := <-otherErr; err != nil {
			t.Fatalf("a caller with a live context failed: %v", err)
		}
	})
}
