package announce

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func subscribeNew(t *testing.T, h *Hub, ch string) *Observer {
	t.Helper()
	o := NewObserver(SSE, 0)
	if _, _, err := h.Subscribe(context.Background(), ch, o, nil); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestScheduleFiresAtItsTime: a schedule fires at its time exactly (the
// bubble's clock is fake), not before.
func TestScheduleFiresAtItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHub(t, Config{})
		o := subscribeNew(t, h, "s")
		reported := make(chan Message, 4)
		h.Scheduler().OnFire(func(m Message) { reported <- m })
		at := time.Now().Add(300 * time.Millisecond)
		sc, err := h.Scheduler().Schedule(t.Context(), "s", "later", at, 0)
		if err != nil {
			t.Fatal(err)
		}
		if sc.ID == "" || sc.Channel != "s" || sc.Content != "later" || !sc.At.Equal(at) {
			t.Fatalf("Schedule = %+v, want at %v", sc, at)
		}
		if p, _ := h.Scheduler().Pending(t.Context(), "s", 0); len(p) != 1 || p[0] != sc {
			t.Fatalf("Pending = %+v", p)
		}
		time.Sleep(time.Until(sc.At) - time.Millisecond)
		synctest.Wait()
		if got := o.Take(nil); len(got) != 0 {
			t.Fatalf("fired %v before its time", envIDs(got))
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		got := o.Take(nil)
		wantIDs(t, "fired", got, 1)
		if m := got[0].Message; m.Content != "later" || !m.Time.Equal(sc.At) {
			t.Fatalf("fired %+v, want at its time %v", m, sc.At)
		}
		if p, _ := h.Scheduler().Pending(t.Context(), "s", 0); len(p) != 0 {
			t.Fatalf("Pending after firing = %+v", p)
		}
		if m := <-reported; m != got[0].Message || len(reported) != 0 {
			t.Fatalf("OnFire got %+v (and %d more), want %+v once", m, len(reported), got[0].Message)
		}
		if n := h.Stats().Published(); n != 1 {
			t.Fatalf("published %d, want 1", n)
		}
	})
}

// TestScheduleRoundsUp: a time between milliseconds is rounded up, so a
// schedule never fires early.
func TestScheduleRoundsUp(t *testing.T) {
	h := newTestHub(t, Config{})
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond).Add(time.Microsecond)
	sc, err := h.Scheduler().Schedule(t.Context(), "r", "x", at, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Truncate(time.Millisecond).Add(time.Millisecond).UTC(); !sc.At.Equal(want) || sc.At.Location() != time.UTC {
		t.Fatalf("At = %v, want %v", sc.At, want)
	}
}

func TestScheduleValidates(t *testing.T) {
	h := newTestHub(t, Config{MaxMessage: 10})
	s := h.Scheduler()
	now := time.Now()
	for name, c := range map[string]struct {
		channel, content string
		at               time.Time
		ttl              time.Duration
		want             error
	}{
		"Past":         {"v", "x", now.Add(-time.Second), 0, ErrBadSchedule},
		"NoTime":       {"v", "x", time.Time{}, 0, ErrBadSchedule},
		"TooFar":       {"v", "x", now.Add(MaxScheduleAhead + time.Minute), 0, ErrBadSchedule},
		"NegativeTTL":  {"v", "x", now.Add(time.Minute), -time.Second, ErrBadSchedule},
		"TTLTooLong":   {"v", "x", now.Add(time.Minute), MaxScheduleAhead + time.Second, ErrBadSchedule},
		"EmptyContent": {"v", "", now.Add(time.Minute), 0, ErrEmptyContent},
		"TooLarge":     {"v", "0123456789a", now.Add(time.Minute), 0, ErrMessageTooLarge},
		"BadChannel":   {"a/b", "x", now.Add(time.Minute), 0, ErrInvalidChannel},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Schedule(t.Context(), c.channel, c.content, c.at, c.ttl); !errors.Is(err, c.want) {
				t.Fatalf("Schedule = %v, want %v", err, c.want)
			}
		})
	}
	for _, ttl := range []time.Duration{0, -1} {
		if _, err := s.PublishTTL(t.Context(), "v", "x", ttl); !errors.Is(err, ErrBadSchedule) {
			t.Fatalf("PublishTTL(ttl %v) = %v, want ErrBadSchedule", ttl, err)
		}
	}
	if _, err := s.PublishTTL(t.Context(), "v", "", time.Second); !errors.Is(err, ErrEmptyContent) {
		t.Fatalf("PublishTTL of empty content = %v, want ErrEmptyContent: only expiries store it", err)
	}
	if _, err := h.Publish(t.Context(), "v", ""); !errors.Is(err, ErrEmptyContent) {
		t.Fatalf("Publish of empty content = %v", err)
	}
	if _, err := s.Cancel(t.Context(), "v", "nope"); !errors.Is(err, ErrScheduleNotFound) {
		t.Fatalf("Cancel of nothing = %v", err)
	}
}

func TestPublishTTLExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 200 * time.Millisecond
		h := newTestHub(t, Config{})
		o := subscribeNew(t, h, "ttl")
		e, err := h.Scheduler().PublishTTL(t.Context(), "ttl", "brief", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != 1 || e.Content != "brief" || e.Expired != 0 || strings.Contains(string(e.JSON), "expired") {
			t.Fatalf("PublishTTL = %+v %s", e.Message, e.JSON)
		}
		time.Sleep(ttl - time.Millisecond)
		synctest.Wait()
		wantIDs(t, "before the TTL", o.Take(nil), 1)
		time.Sleep(time.Millisecond)
		synctest.Wait()
		got := o.Take(nil)
		wantIDs(t, "expiry", got, 2)
		x := got[0].Message
		if x.Content != "" || x.Expired != 1 || !x.Time.Equal(e.Time.Add(ttl)) {
			t.Fatalf("expiry %+v, want content \"\", expired 1, at %v", x, e.Time.Add(ttl))
		}
		if want := `,"content":"","time":"`; !strings.Contains(string(got[0].JSON), want) || !strings.HasSuffix(string(got[0].JSON), `,"expired":1}`) {
			t.Fatalf("expiry JSON %s", got[0].JSON)
		}
		c, _ := h.Channel(t.Context(), "ttl")
		if cur := c.Current(); cur.ID != 2 || cur.Content != "" {
			t.Fatalf("current after expiry = %+v", cur.Message)
		}
	})
}

func TestExpirySupersededDoesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHub(t, Config{})
		o := subscribeNew(t, h, "sup")
		if _, err := h.Scheduler().PublishTTL(t.Context(), "sup", "brief", 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		mustPublish(t, h, "sup", 1)
		time.Sleep(time.Second) // well past the expiry's time
		synctest.Wait()
		if p, _ := h.Scheduler().Pending(t.Context(), "sup", 0); len(p) != 0 {
			t.Fatalf("the expiry is still pending: %+v", p)
		}
		wantIDs(t, "no expiry message", o.Take(nil), 1, 2)
		if n := h.Stats().Published(); n != 2 {
			t.Fatalf("published %d, want 2", n)
		}
	})
}

func TestCancelSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHub(t, Config{})
		s := h.Scheduler()
		sc, err := s.Schedule(t.Context(), "c", "never", time.Now().Add(200*time.Millisecond), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Cancel(t.Context(), "other", sc.ID); !errors.Is(err, ErrScheduleNotFound) {
			t.Fatalf("Cancel on another channel = %v", err)
		}
		got, err := s.Cancel(t.Context(), "c", sc.ID)
		if err != nil || got != sc {
			t.Fatalf("Cancel = %+v, %v; want %+v", got, err, sc)
		}
		if _, err := s.Cancel(t.Context(), "c", sc.ID); !errors.Is(err, ErrScheduleNotFound) {
			t.Fatalf("second Cancel = %v", err)
		}
		time.Sleep(time.Second) // well past its time
		synctest.Wait()
		if n := h.Stats().Published(); n != 0 {
			t.Fatalf("a cancelled schedule fired (%d published)", n)
		}
	})
}

// A schedule whose time passed while no hub ran fires when one starts.
func TestMissedScheduleFiresAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore(0)
		at := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
		if err := store.Schedule(t.Context(), Scheduled{ID: "missed", Channel: "m", Content: "late", At: at}, 0); err != nil {
			t.Fatal(err)
		}
		h := newTestHub(t, Config{Store: store})
		synctest.Wait() // the scheduler's first pass, at its start
		m, _ := store.Current(t.Context(), "m")
		if m.ID != 1 || m.Content != "late" || !m.Time.Equal(at.Add(time.Minute)) {
			t.Fatalf("fired %+v; want it fired at the start, with that late time", m)
		}
		if n := h.Stats().Published(); n != 1 {
			t.Fatalf("published %d", n)
		}
	})
}

func TestScheduleLimitPerChannel(t *testing.T) {
	h := newTestHub(t, Config{MaxScheduled: 2})
	s := h.Scheduler()
	at := time.Now().Add(time.Hour)
	for range 2 {
		if _, err := s.Schedule(t.Context(), "l", "x", at, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Schedule(t.Context(), "l", "x", at, 0); !errors.Is(err, ErrTooManyScheduled) {
		t.Fatalf("third Schedule = %v, want ErrTooManyScheduled", err)
	}
}

// plainStore hides MemoryStore's ScheduleStore methods.
type plainStore struct{ Store }

func TestNoSchedulerWithoutScheduleStore(t *testing.T) {
	h := newTestHub(t, Config{Store: plainStore{NewMemoryStore(0)}})
	if h.Scheduler() != nil {
		t.Fatal("a hub over a store that cannot schedule has a Scheduler")
	}
}

func TestSchedulerClosedWithHub(t *testing.T) {
	h, err := NewHub(Config{Store: NewMemoryStore(0)})
	if err != nil {
		t.Fatal(err)
	}
	s := h.Scheduler()
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Schedule(t.Context(), "x", "y", time.Now().Add(time.Minute), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Schedule after Shutdown = %v, want ErrClosed", err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("the scheduler loop still runs after Shutdown")
	}
}
