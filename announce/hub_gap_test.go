package announce

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestSequencerOrders drives the sequencer alone: what is offered before
// the load or past a gap is held, and the next id releases what follows it.
func TestSequencerOrders(t *testing.T) {
	env := func(id uint64) *Envelope { return NewEnvelope(Message{ID: id, Channel: "s"}) }
	release := func(s *sequencer) (ids []uint64) {
		for e := s.nextPendingLocked(); e != nil; e = s.nextPendingLocked() {
			ids = append(ids, e.ID)
		}
		return ids
	}
	var s sequencer
	if got := s.offerLocked(env(2)); got != offerHeld {
		t.Fatalf("offer before the load = %v, want held", got)
	}
	held := s.startLocked(env(0))
	if len(held) != 1 || held[2] == nil || len(s.pending) != 0 {
		t.Fatalf("start returned %v, want the held id 2 back", held)
	}
	if got := s.offerLocked(held[2]); got != offerGap || !s.filling {
		t.Fatalf("offer of 2 after the load at 0 = %v (filling %v), want a gap", got, s.filling)
	}
	if got := s.offerLocked(env(4)); got != offerHeld {
		t.Fatalf("a second offer past the gap = %v, want held (one fill at a time)", got)
	}
	if got := s.offerLocked(env(1)); got != offerNext || s.lastIDLocked() != 1 {
		t.Fatalf("offer of the next id = %v, current %d", got, s.lastIDLocked())
	}
	if ids := release(&s); len(ids) != 1 || ids[0] != 2 || s.lastIDLocked() != 2 {
		t.Fatalf("released %v (current %d), want [2]: 3 is missing", ids, s.lastIDLocked())
	}
	for _, id := range []uint64{1, 2} {
		if got := s.offerLocked(env(id)); got != offerDropped {
			t.Fatalf("offer of delivered id %d = %v, want dropped", id, got)
		}
	}
	if got := s.offerLocked(env(3)); got != offerNext {
		t.Fatalf("offer of 3 = %v, want next", got)
	}
	if ids := release(&s); len(ids) != 1 || ids[0] != 4 || len(s.pending) != 0 {
		t.Fatalf("released %v, pending %d; want [4] and nothing left", ids, len(s.pending))
	}
}

func TestDeliverOutOfOrder(t *testing.T) {
	h := newTestHub(t, Config{})
	h.gapGrace = time.Hour // the reordering alone must restore the order
	ctx := context.Background()
	o := NewObserver(WebSocket, 0)
	c, _, err := h.Subscribe(ctx, "ooo", o, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs := appendToStore(t, h.Store(), "ooo", 5)
	for _, i := range []int{2, 4, 1, 3, 0} {
		h.Deliver(msgs[i])
	}
	wantIDs(t, "delivered", receive(t, o, 5), 1, 2, 3, 4, 5)
	// Duplicates, also of ones that were held back, are dropped.
	for _, i := range []int{0, 3, 4, 4} {
		h.Deliver(msgs[i])
	}
	if more := o.Take(nil); len(more) != 0 {
		t.Fatalf("duplicates delivered: %v", envIDs(more))
	}
	if c.Current().ID != 5 {
		t.Fatalf("Current = %d, want 5", c.Current().ID)
	}
	// Messages of a channel this hub does not hold are ignored.
	h.Deliver(Message{ID: 1, Channel: "elsewhere", Content: "x"})
	if h.lookup("elsewhere") != nil {
		t.Fatal("Deliver created a channel")
	}
}

// TestDeliverFillsGapFromStore: a gap is filled from the store once the
// grace has passed, and not before.
func TestDeliverFillsGapFromStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHub(t, Config{})
		ctx := context.Background()
		o := NewObserver(SSE, 0)
		c, _, err := h.Subscribe(ctx, "gap", o, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs := appendToStore(t, h.Store(), "gap", 4)
		h.Deliver(msgs[0])
		h.Deliver(msgs[2]) // 2 never comes from the broker
		h.Deliver(msgs[3])
		wantIDs(t, "before the gap", o.Take(nil), 1)
		time.Sleep(h.gapGrace - time.Millisecond)
		synctest.Wait()
		if got := o.Take(nil); len(got) != 0 || h.Stats().GapsFilled() != 0 {
			t.Fatalf("within the grace: delivered %v, %d filled; want the gap still open", envIDs(got), h.Stats().GapsFilled())
		}
		// After the grace period, 2 is read from the store and 3, 4 follow.
		time.Sleep(time.Millisecond)
		synctest.Wait()
		wantIDs(t, "after the fill", o.Take(nil), 2, 3, 4)
		if h.Stats().GapsFilled() == 0 {
			t.Fatal("GapsFilled = 0 after recovering a message from the store")
		}
		if c.Current().ID != 4 {
			t.Fatalf("Current = %d, want 4", c.Current().ID)
		}
		h.Deliver(msgs[1]) // the lost one turns up late: a duplicate now
		if more := o.Take(nil); len(more) != 0 {
			t.Fatalf("late duplicate delivered: %v", envIDs(more))
		}
	})
}

func TestResyncRecoversFromStore(t *testing.T) {
	h := newTestHub(t, Config{})
	ctx := context.Background()
	o := NewObserver(WebSocket, 0)
	if _, _, err := h.Subscribe(ctx, "resync", o, nil); err != nil {
		t.Fatal(err)
	}
	appendToStore(t, h.Store(), "resync", 3) // published elsewhere while the broker was down
	h.Resync("resync")
	wantIDs(t, "recovered", receive(t, o, 3), 1, 2, 3)
	h.Resync("not-loaded") // harmless
}

// TestGapOlderThanStoreHistory: when more messages than the store keeps were
// missed, the missing ids are gone for good; the channel must go on with what
// the store still has instead of waiting for them forever.
func TestGapOlderThanStoreHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore(3)
		h := newTestHub(t, Config{Store: store, History: 3})
		ctx := context.Background()
		o := NewObserver(WebSocket, 0)
		c, _, err := h.Subscribe(ctx, "lost", o, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs := appendToStore(t, store, "lost", 10) // the store keeps 8, 9, 10
		h.Deliver(msgs[9])
		time.Sleep(h.gapGrace)
		synctest.Wait()
		wantIDs(t, "resumed", o.Take(nil), 8, 9, 10)
		if c.Current().ID != 10 {
			t.Fatalf("Current = %d, want 10", c.Current().ID)
		}
		// The history restarted at 8: a cursor before it is truncated.
		_, r, err := h.Subscribe(ctx, "lost", NewObserver(SSE, 0), ptr(2))
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "replay", r.Messages, 8, 9, 10)
		if !r.Truncated {
			t.Fatal("replay from before the lost ids is not marked truncated")
		}
		// And the channel keeps working.
		e, err := h.Publish(ctx, "lost", "after")
		if err != nil || e.ID != 11 {
			t.Fatalf("Publish = %v, %v", e, err)
		}
		wantIDs(t, "live", o.Take(nil), 11)
	})
}

// pausingStore holds back the publisher of content "held" between the
// store's commit and its return, as a descheduled goroutine would.
type pausingStore struct {
	*MemoryStore
	committed chan struct{}
	release   chan struct{}
}

func newPausingStore(history int) *pausingStore {
	return &pausingStore{MemoryStore: NewMemoryStore(history), committed: make(chan struct{}), release: make(chan struct{})}
}

func (s *pausingStore) Append(ctx context.Context, channel, content string, at time.Time) (Message, error) {
	m, err := s.MemoryStore.Append(ctx, channel, content, at)
	if content == "held" {
		close(s.committed)
		<-s.release
	}
	return m, err
}

// publishHeldThenBurst starts a publish of "held" on channel "burst" that
// pauses after its commit, then publishes 30 more: more than the store's
// history of 10, so a fill can no longer read the held one. It returns the
// observer and the held publish's result.
func publishHeldThenBurst(t *testing.T) (*Hub, *pausingStore, *Observer, chan error) {
	store := newPausingStore(10)
	h := newTestHub(t, Config{History: 10, Store: store})
	o := NewObserver(WebSocket, 1000)
	ch, _, err := h.Subscribe(context.Background(), "burst", o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Unsubscribe(o) })
	held := make(chan error, 1)
	go func() {
		_, err := h.Publish(context.Background(), "burst", "held")
		held <- err
	}()
	<-store.committed
	mustPublish(t, h, "burst", 30)
	return h, store, o, held
}

// TestGapOfALocalPublishInFlightIsWaitedFor: a gap that a publish of this
// node still has in flight is waited for, fill after fill, although the
// store no longer holds it.
func TestGapOfALocalPublishInFlightIsWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, store, o, held := publishHeldThenBurst(t)
		time.Sleep(5 * h.gapGrace) // five fills run meanwhile
		synctest.Wait()
		if got := o.Take(nil); len(got) != 0 {
			t.Fatalf("delivered %v while id 1 was in flight; want all held", envIDs(got))
		}
		close(store.release)
		if err := <-held; err != nil {
			t.Fatal(err)
		}
		got := o.Take(nil)
		if len(got) != 31 {
			t.Fatalf("observer got %v, want ids 1..31", envIDs(got))
		}
		for i, e := range got {
			if e.ID != uint64(i+1) {
				t.Fatalf("observer got %v, want ids 1..31 in order", envIDs(got))
			}
		}
	})
}

// TestGapGivenUpAfterMaxWaits: an id in flight for longer than maxGapWaits
// fills is given up: the channel goes on from the store's oldest message,
// and the late one is dropped as a duplicate when it comes.
func TestGapGivenUpAfterMaxWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, store, o, held := publishHeldThenBurst(t)
		time.Sleep((maxGapWaits + 2) * h.gapGrace)
		synctest.Wait()
		got := o.Take(nil)
		if len(got) != 10 || got[0].ID != 22 || got[9].ID != 31 {
			t.Fatalf("after %d fills: delivered %v, want 22..31 (what the store holds)", maxGapWaits+2, envIDs(got))
		}
		close(store.release)
		if err := <-held; err != nil {
			t.Fatal(err)
		}
		if more := o.Take(nil); len(more) != 0 {
			t.Fatalf("the given-up id was delivered late: %v", envIDs(more))
		}
	})
}
