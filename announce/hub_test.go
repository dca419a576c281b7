package announce

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// newTestHub returns a hub over a MemoryStore keeping cfg.History messages,
// closed when the test ends. The gap-fill grace is shortened so gap tests
// run quickly.
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
	t.Cleanup(func() { h.Close(context.Background()) })
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

// eventually polls cond until it holds or 5s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantIDs(t testing.TB, what string, got []*Envelope, want ...uint64) {
	t.Helper()
	if ids := envIDs(got); !slices.Equal(ids, want) {
		t.Fatalf("%s: ids %v, want %v", what, ids, want)
	}
}

func TestNewHubRequiresStore(t *testing.T) {
	if _, err := NewHub(Config{}); err == nil {
		t.Fatal("NewHub without a store succeeded")
	}
}

func TestHubDefaults(t *testing.T) {
	h := newTestHub(t, Config{})
	if h.MaxMessage() != DefaultMaxMessage || h.QueueLimit() != DefaultQueue || h.history != DefaultHistory || h.idle != time.Minute {
		t.Fatalf("defaults: max %d queue %d history %d idle %v", h.MaxMessage(), h.QueueLimit(), h.history, h.idle)
	}
	if h.Store() == nil {
		t.Fatal("Store() is nil")
	}
}

func TestPublishAssignsConsecutiveIDs(t *testing.T) {
	h := newTestHub(t, Config{})
	ctx := context.Background()
	c, err := h.Channel(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if cur := c.Current(); cur.ID != 0 || cur.Channel != "news" || string(cur.JSON) != `{"id":0,"channel":"news","content":""}` {
		t.Fatalf("Current of an empty channel = %+v %s", cur.Message, cur.JSON)
	}
	before := time.Now()
	for i := uint64(1); i <= 5; i++ {
		e, err := h.Publish(ctx, "news", fmt.Sprint("n", i))
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != i || e.Channel != "news" || e.Content != fmt.Sprint("n", i) {
			t.Fatalf("publish %d = %+v", i, e.Message)
		}
		if e.Time.Before(before.Add(-time.Second)) || e.Time.Location() != time.UTC {
			t.Fatalf("publish %d time = %v, want the acceptance time in UTC", i, e.Time)
		}
		if c.Current() != e {
			t.Fatalf("Current after publish %d = %+v", i, c.Current().Message)
		}
	}
	// Ids are per channel.
	if e, err := h.Publish(ctx, "other", "x"); err != nil || e.ID != 1 {
		t.Fatalf("first publish on another channel = %v, %v; want id 1", e, err)
	}
	if got := h.Stats().Published(); got != 6 {
		t.Fatalf("Published = %d, want 6", got)
	}
}

func TestPublishValidates(t *testing.T) {
	h := newTestHub(t, Config{MaxMessage: 8})
	ctx := context.Background()
	for _, c := range []struct {
		ch, content string
		want        error
	}{
		{"a/b", "x", ErrInvalidChannel},
		{"..", "x", ErrInvalidChannel},
		{"ok", "", ErrEmptyContent},
		{"ok", "123456789", ErrMessageTooLarge},
		{"ok", "\xff", ErrInvalidUTF8},
	} {
		if _, err := h.Publish(ctx, c.ch, c.content); !errors.Is(err, c.want) {
			t.Errorf("Publish(%q, %q) = %v, want %v", c.ch, c.content, err, c.want)
		}
	}
	if _, err := h.Publish(ctx, "ok", "12345678"); err != nil {
		t.Fatalf("content of exactly MaxMessage bytes: %v", err)
	}
	if h.Stats().Published() != 1 {
		t.Fatalf("Published = %d, want 1 (rejected publishes do not count)", h.Stats().Published())
	}
	if _, _, err := h.Subscribe(ctx, "a b", NewObserver(SSE, 0), nil); !errors.Is(err, ErrInvalidChannel) {
		t.Fatalf("Subscribe to an invalid name = %v", err)
	}
}

func TestSubscribeReplay(t *testing.T) {
	h := newTestHub(t, Config{History: 5})
	ctx := context.Background()

	// Nothing published: no cursor and cursor 0 both replay nothing.
	for _, since := range []*uint64{nil, ptr(0), ptr(3)} {
		_, r, err := h.Subscribe(ctx, "empty", NewObserver(SSE, 0), since)
		if err != nil || len(r.Messages) != 0 || r.Truncated {
			t.Fatalf("empty channel, since %v: replay %v truncated %v, err %v", since, envIDs(r.Messages), r.Truncated, err)
		}
	}

	for _, c := range []struct {
		name      string
		since     *uint64
		want      []uint64
		truncated bool
	}{
		{"no cursor: current only", nil, []uint64{10}, false},
		{"cursor 0, history trimmed", ptr(0), []uint64{6, 7, 8, 9, 10}, true},
		{"cursor older than history", ptr(2), []uint64{6, 7, 8, 9, 10}, true},
		{"cursor just before history", ptr(4), []uint64{6, 7, 8, 9, 10}, true},
		{"cursor at history start - 1", ptr(5), []uint64{6, 7, 8, 9, 10}, false},
		{"cursor inside history", ptr(7), []uint64{8, 9, 10}, false},
		{"cursor at current", ptr(10), nil, false},
		{"cursor ahead of current (store reset)", ptr(99), []uint64{10}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHub(t, Config{History: 5})
			mustPublish(t, h, "ch", 10) // history holds 6..10
			o := NewObserver(WebSocket, 0)
			ch, r, err := h.Subscribe(ctx, "ch", o, c.since)
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Unsubscribe(o)
			wantIDs(t, "replay", r.Messages, c.want...)
			if r.Truncated != c.truncated {
				t.Fatalf("Truncated = %v, want %v", r.Truncated, c.truncated)
			}
			// Live messages follow the replay.
			e, err := h.Publish(ctx, "ch", "live")
			if err != nil {
				t.Fatal(err)
			}
			wantIDs(t, "live", receive(t, o, 1), e.ID)
		})
	}
}

func TestChannelHistory(t *testing.T) {
	h := newTestHub(t, Config{History: 5})
	ctx := context.Background()
	c, err := h.Channel(ctx, "h")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.History(0, 0); len(got) != 0 {
		t.Fatalf("History of an empty channel = %v", envIDs(got))
	}
	mustPublish(t, h, "h", 8)
	wantIDs(t, "History(0, 0)", c.History(0, 0), 4, 5, 6, 7, 8)
	wantIDs(t, "History(5, 2)", c.History(5, 2), 6, 7)
	wantIDs(t, "History(8, 0)", c.History(8, 0))
	// The result is a copy: the caller may keep it while publishing goes on.
	got := c.History(0, 0)
	mustPublish(t, h, "h", 3)
	wantIDs(t, "kept History", got, 4, 5, 6, 7, 8)
	if c.Name() != "h" {
		t.Fatalf("Name = %q", c.Name())
	}
}

func TestWait(t *testing.T) {
	ctx := context.Background()

	t.Run("no cursor registers until the next publish", func(t *testing.T) {
		h := newTestHub(t, Config{})
		mustPublish(t, h, "w", 2)
		o := NewObserver(Poll, 0)
		c, e, err := h.Wait(ctx, "w", o, nil)
		if err != nil || e != nil {
			t.Fatalf("Wait without cursor = %v, %v; want to register", e, err)
		}
		if n := c.Counts()["poll"]; n != 1 {
			t.Fatalf("poll observers = %d, want 1", n)
		}
		pub := mustPublish(t, h, "w", 1)[0]
		wantIDs(t, "woken with", receive(t, o, 1), pub.ID)
		if n := c.Counts()["poll"]; n != 0 || h.Stats().Observers(Poll) != 0 {
			t.Fatalf("after the wake: %d poll observers on the channel, %d in stats; want 0", n, h.Stats().Observers(Poll))
		}
		// Answered once: a second publish does not reach it.
		mustPublish(t, h, "w", 1)
		if got := o.Take(nil); len(got) != 0 {
			t.Fatalf("a woken long-poll received more: %v", envIDs(got))
		}
	})

	t.Run("no cursor on an empty channel registers", func(t *testing.T) {
		h := newTestHub(t, Config{})
		o := NewObserver(Poll, 0)
		_, e, err := h.Wait(ctx, "w", o, nil)
		if err != nil || e != nil {
			t.Fatalf("Wait = %v, %v; want to register", e, err)
		}
		mustPublish(t, h, "w", 1)
		wantIDs(t, "woken with", receive(t, o, 1), 1)
	})

	t.Run("cursor at current registers", func(t *testing.T) {
		h := newTestHub(t, Config{})
		mustPublish(t, h, "w", 3)
		o := NewObserver(Poll, 0)
		c, e, err := h.Wait(ctx, "w", o, ptr(3))
		if err != nil || e != nil {
			t.Fatalf("Wait(since=current) = %v, %v; want to register", e, err)
		}
		if h.Stats().Observers(Poll) != 1 {
			t.Fatalf("Observers(Poll) = %d, want 1", h.Stats().Observers(Poll))
		}
		// A client that leaves is removed at once.
		c.Unsubscribe(o)
		c.Unsubscribe(o) // twice is harmless
		if h.Stats().Observers(Poll) != 0 || c.Counts()["poll"] != 0 {
			t.Fatalf("after Unsubscribe: %d poll observers", h.Stats().Observers(Poll))
		}
	})

	t.Run("cursor 0 on an empty channel registers", func(t *testing.T) {
		h := newTestHub(t, Config{})
		_, e, err := h.Wait(ctx, "w", NewObserver(Poll, 0), ptr(0))
		if err != nil || e != nil {
			t.Fatalf("Wait = %v, %v; want to register", e, err)
		}
	})

	t.Run("cursor behind or ahead answers at once", func(t *testing.T) {
		h := newTestHub(t, Config{})
		mustPublish(t, h, "w", 3)
		for _, since := range []uint64{0, 1, 2, 4, 1000} {
			o := NewObserver(Poll, 0)
			c, e, err := h.Wait(ctx, "w", o, ptr(since))
			if err != nil || e == nil || e.ID != 3 {
				t.Fatalf("Wait(since=%d) = %v, %v; want the current message 3 at once", since, e, err)
			}
			if n := c.Counts()["poll"]; n != 0 {
				t.Fatalf("Wait(since=%d) registered the observer", since)
			}
		}
		if h.Stats().Observers(Poll) != 0 {
			t.Fatalf("Observers(Poll) = %d, want 0", h.Stats().Observers(Poll))
		}
	})
}

// TestSubscribeReplayIsAtomic subscribes observers at random moments while
// four goroutines publish; every observer must see each id after its cursor
// exactly once and in order, across the replay/live boundary.
func TestSubscribeReplayIsAtomic(t *testing.T) {
	const publishers, perPublisher, observers = 4, 250, 50
	const total = publishers * perPublisher
	h := newTestHub(t, Config{History: 2 * total})
	ctx := context.Background()
	c, err := h.Channel(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			<-start
			for i := range perPublisher {
				if _, err := h.Publish(ctx, "race", fmt.Sprintf("p%d-%d", p, i)); err != nil {
					t.Error(err)
					return
				}
				if i%16 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	for i := range observers {
		wg.Go(func() {
			<-start
			// Subscribe at a random point of the publishing.
			at := rand.Uint64N(total)
			for c.Current().ID < at {
				runtime.Gosched()
			}
			// Streaming transports: a long-poll answers once.
			o := NewObserver(Transports[1+i%2], 4*total)
			var since *uint64
			var first uint64 // the id the observer must see first; 0: whatever the replay starts with
			switch i % 3 {
			case 0:
				since, first = ptr(0), 1
			case 1:
				cur := c.Current().ID // the cursor a reconnecting client would have
				since, first = ptr(cur), cur+1
			case 2: // no cursor: the current message, then live
			}
			_, r, err := h.Subscribe(ctx, "race", o, since)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Unsubscribe(o)
			if r.Truncated {
				t.Errorf("observer %d: replay truncated with a history of %d", i, 2*total)
			}
			if since == nil && len(r.Messages) > 1 {
				t.Errorf("observer %d: no cursor replayed %d messages, want at most the current one", i, len(r.Messages))
			}
			got := r.Messages
			if first > total {
				return // subscribed after the last publish: nothing to see
			}
			deadline := time.After(10 * time.Second)
			for len(got) == 0 || got[len(got)-1].ID < total {
				select {
				case <-o.Ready():
					got = o.Take(got)
				case <-o.Done():
					t.Errorf("observer %d closed: %v", i, o.Err())
					return
				case <-deadline:
					t.Errorf("observer %d: timed out at %v", i, envIDs(got[max(0, len(got)-3):]))
					return
				}
			}
			if first == 0 {
				first = got[0].ID
			}
			for k, e := range got {
				if want := first + uint64(k); e.ID != want {
					cursor := "none"
					if since != nil {
						cursor = fmt.Sprint(*since)
					}
					t.Errorf("observer %d (since %s): position %d has id %d, want %d (gap or duplicate)", i, cursor, k, e.ID, want)
					return
				}
			}
			if last := got[len(got)-1].ID; last != total {
				t.Errorf("observer %d: last id %d, want %d", i, last, total)
			}
		})
	}
	close(start)
	wg.Wait()
	if cur := c.Current().ID; cur != total {
		t.Fatalf("Current = %d, want %d", cur, total)
	}
	if got := h.Stats().Published(); got != total {
		t.Fatalf("Published = %d, want %d", got, total)
	}
	eventually(t, "observers unregistered", func() bool {
		for _, tr := range Transports {
			if h.Stats().Observers(tr) != 0 {
				return false
			}
		}
		return true
	})
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

func TestDeliverFillsGapFromStore(t *testing.T) {
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
	wantIDs(t, "before the gap", receive(t, o, 1), 1)
	// After the grace period, 2 is read from the store and 3, 4 follow.
	wantIDs(t, "after the fill", receive(t, o, 3), 2, 3, 4)
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
	wantIDs(t, "resumed", receive(t, o, 3), 8, 9, 10)
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
	wantIDs(t, "live", receive(t, o, 1), 11)
}

// TestLoadKeepsNewestHistory: a store that keeps more history than the hub
// must still give the channel its newest messages as current and history.
func TestLoadKeepsNewestHistory(t *testing.T) {
	store := NewMemoryStore(10)
	appendToStore(t, store, "deep", 8)
	h := newTestHub(t, Config{Store: store, History: 3})
	ctx := context.Background()
	c, r, err := h.Subscribe(ctx, "deep", NewObserver(SSE, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "replay", r.Messages, 8)
	if c.Current().ID != 8 {
		t.Fatalf("Current = %d, want 8", c.Current().ID)
	}
	wantIDs(t, "history", c.History(0, 0), 6, 7, 8)
	if e, err := h.Publish(ctx, "deep", "next"); err != nil || e.ID != 9 || c.Current() != e {
		t.Fatalf("Publish after load = %v, %v; Current %d", e, err, c.Current().ID)
	}
}

func TestSlowConsumer(t *testing.T) {
	h := newTestHub(t, Config{})
	ctx := context.Background()
	slow := NewObserver(WebSocket, 5)
	fast := NewObserver(WebSocket, 0)
	c, _, err := h.Subscribe(ctx, "slow", slow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Subscribe(ctx, "slow", fast, nil); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, h, "slow", 5)
	if slow.Err() != nil {
		t.Fatalf("closed with a full but not overflowing queue: %v", slow.Err())
	}
	stall(slow)                  // its writer is stuck, not merely late
	mustPublish(t, h, "slow", 1) // the 6th overflows
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow observer not closed after its queue overflowed")
	}
	if !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Fatalf("Err = %v, want ErrSlowConsumer", slow.Err())
	}
	if h.Stats().SlowConsumers() != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", h.Stats().SlowConsumers())
	}
	if n := c.Counts()["ws"]; n != 1 {
		t.Fatalf("ws observers = %d, want 1 (the slow one removed)", n)
	}
	// What it had queued is still there to flush before closing the socket.
	wantIDs(t, "slow queue", slow.Take(nil), 1, 2, 3, 4, 5)
	mustPublish(t, h, "slow", 4)
	wantIDs(t, "fast", receive(t, fast, 10), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	if more := slow.Take(nil); len(more) != 0 {
		t.Fatalf("closed observer still receives: %v", envIDs(more))
	}
	if h.Stats().SlowConsumers() != 1 || h.Stats().Observers(WebSocket) != 1 {
		t.Fatalf("SlowConsumers %d, Observers(ws) %d; want 1, 1", h.Stats().SlowConsumers(), h.Stats().Observers(WebSocket))
	}
}

func TestClose(t *testing.T) {
	h := newTestHub(t, Config{})
	ctx := context.Background()
	var obs []*Observer
	for i, tr := range Transports {
		o := NewObserver(tr, 0)
		ch := fmt.Sprint("c", i%2)
		if tr == Poll {
			if _, e, err := h.Wait(ctx, ch, o, nil); err != nil || e != nil {
				t.Fatalf("Wait = %v, %v", e, err)
			}
		} else if _, _, err := h.Subscribe(ctx, ch, o, nil); err != nil {
			t.Fatal(err)
		}
		obs = append(obs, o)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close = %v", err)
	}
	for _, o := range obs {
		select {
		case <-o.Done():
		default:
			t.Fatalf("%v observer not closed", o.Transport())
		}
		if !errors.Is(o.Err(), ErrShutdown) {
			t.Fatalf("%v observer Err = %v, want ErrShutdown", o.Transport(), o.Err())
		}
	}
	for _, tr := range Transports {
		if n := h.Stats().Observers(tr); n != 0 {
			t.Fatalf("Observers(%v) = %d after Close", tr, n)
		}
	}
	if _, err := h.Publish(ctx, "c0", "late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, _, err := h.Subscribe(ctx, "c0", NewObserver(SSE, 0), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if _, _, err := h.Wait(ctx, "c1", NewObserver(Poll, 0), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close = %v, want ErrClosed", err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// TestCloseRacingSubscribe: an observer whose Subscribe or Wait succeeds
// while the hub is closing must be closed too, or its handler would wait for
// a shutdown signal that never comes.
func TestCloseRacingSubscribe(t *testing.T) {
	ctx := context.Background()
	for iter := range 200 {
		h := newTestHub(t, Config{})
		if _, err := h.Channel(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var registered []*Observer
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range 4 {
			wg.Go(func() {
				<-start
				for range 10000 {
					var err error
					o := NewObserver(Transports[g%3], 0)
					if o.Transport() == Poll {
						_, _, err = h.Wait(ctx, "x", o, nil)
					} else {
						_, _, err = h.Subscribe(ctx, "x", o, nil)
					}
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					registered = append(registered, o)
					mu.Unlock()
				}
			})
		}
		close(start)
		runtime.Gosched()
		h.Close(ctx)
		wg.Wait()
		for _, o := range registered {
			if !errors.Is(o.Err(), ErrShutdown) {
				t.Fatalf("iteration %d: an observer registered during Close is still open (Err %v)", iter, o.Err())
			}
		}
	}
}

func TestIdleEviction(t *testing.T) {
	h := newTestHub(t, Config{IdleTimeout: 20 * time.Millisecond})
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
	eventually(t, "the idle channel to be evicted", func() bool { return h.lookup("idle") == nil })
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
	wantIDs(t, "live after reload", receive(t, o, 1), 5)
	if e.ID != 5 {
		t.Fatalf("publish after reload got id %d, want 5", e.ID)
	}
	// The busy one still delivers.
	mustPublish(t, h, "busy", 1)
	wantIDs(t, "busy", receive(t, busy, 1), 1)
}

func TestTinyIdleTimeout(t *testing.T) {
	h, err := NewHub(Config{Store: NewMemoryStore(0), IdleTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(context.Background(), "x", "y"); err != nil {
		t.Fatal(err)
	}
	h.Close(context.Background())
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
	store := &gateStore{Store: NewMemoryStore(0), gate: make(chan struct{})}
	h := newTestHub(t, Config{Store: store})
	loaderCtx, cancel := context.WithCancel(context.Background())
	loaderErr := make(chan error, 1)
	go func() {
		_, err := h.Channel(loaderCtx, "slow")
		loaderErr <- err
	}()
	eventually(t, "the first caller to start loading", func() bool { return h.lookup("slow") != nil })
	otherErr := make(chan error, 1)
	go func() {
		_, err := h.Channel(context.Background(), "slow")
		otherErr <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the second caller wait for the load
	cancel()
	if err := <-loaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled loader: %v", err)
	}
	close(store.gate)
	if err := <-otherErr; err != nil {
		t.Fatalf("a caller with a live context failed: %v", err)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	baseline := runtime.NumGoroutine()
	ctx := context.Background()
	for range 5 {
		h, err := NewHub(Config{Store: NewMemoryStore(0), IdleTimeout: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		h.gapGrace = 5 * time.Millisecond
		var readers sync.WaitGroup
		for i := range 300 {
			ch := fmt.Sprint("ch", i%3)
			o := NewObserver(Transports[i%3], 0)
			if o.Transport() == Poll {
				if _, _, err := h.Wait(ctx, ch, o, nil); err != nil {
					t.Fatal(err)
				}
			} else if _, _, err := h.Subscribe(ctx, ch, o, nil); err != nil {
				t.Fatal(err)
			}
			readers.Go(func() { // a transport's writer: drains until closed
				for {
					select {
					case <-o.Ready():
						// A woken long-poll is answered, not closed: its
						// handler returns with the message.
						if got := o.Take(nil); len(got) > 0 && o.Transport() == Poll {
							return
						}
					case <-o.Done():
						return
					}
				}
			})
		}
		var pubs sync.WaitGroup
		for p := range 4 {
			pubs.Go(func() {
				for range 50 {
					h.Publish(ctx, fmt.Sprint("ch", p%3), "x")
				}
			})
		}
		pubs.Wait()
		h.Close(ctx)
		done := make(chan struct{})
		go func() { readers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("readers did not stop after Close")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pausingStore holds back the publisher of content "held" between the
// store's commit and its return, as a descheduled goroutine would.
type pausingStore struct {
	*MemoryStore
	committed chan struct{}
	release   chan struct{}
}

func (s *pausingStore) Append(ctx context.Context, channel, content string, at time.Time) (Message, error) {
	m, err := s.MemoryStore.Append(ctx, channel, content, at)
	if content == "held" {
		close(s.committed)
		<-s.release
	}
	return m, err
}

func TestGapOfALocalPublishInFlightIsWaitedFor(t *testing.T) {
	store := &pausingStore{MemoryStore: NewMemoryStore(10), committed: make(chan struct{}), release: make(chan struct{})}
	h := newTestHub(t, Config{History: 10, Store: store})
	o := NewObserver(WebSocket, 1000)
	ch, _, err := h.Subscribe(context.Background(), "burst", o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Unsubscribe(o)

	held := make(chan error, 1)
	go func() {
		_, err := h.Publish(context.Background(), "burst", "held")
		held <- err
	}()
	<-store.committed
	// Thirty more commit and arrive while the first is held: more than the
	// store's history, so a fill can no longer read the first one.
	mustPublish(t, h, "burst", 30)
	time.Sleep(5 * h.gapGrace) // several fills run meanwhile
	close(store.release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	var got []uint64
	deadline := time.After(5 * time.Second)
	for len(got) < 31 {
		select {
		case <-o.Ready():
			for _, e := range o.Take(nil) {
				got = append(got, e.ID)
			}
		case <-deadline:
			t.Fatalf("observer got %v, want ids 1..31", got)
		}
	}
	for i, id := range got {
		if id != uint64(i+1) {
			t.Fatalf("observer got %v, want ids 1..31 in order", got)
		}
	}
}
