package announce

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/internal/testenv"
)

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
	testenv.WaitFor(t, 10*time.Second, "observers unregistered", func() bool {
		for _, tr := range Transports {
			if h.Stats().Observers(tr) != 0 {
				return false
			}
		}
		return true
	})
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
