package announce

import (
	"context"
	"errors"
	"strings"
	"testing"
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

func TestScheduleFiresAtItsTime(t *testing.T) {
	h := newTestHub(t, Config{})
	o := subscribeNew(t, h, "s")
	reported := make(chan Message, 4)
	h.Scheduler().OnFire(func(m Message) { reported <- m })
	at := time.Now().Add(300 * time.Millisecond)
	sc, err := h.Scheduler().Schedule(t.Context(), "s", "later", at, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sc.ID == "" || sc.Channel != "s" || sc.Content != "later" || sc.At.Before(at) || sc.At.Sub(at) >= time.Millisecond {
		t.Fatalf("Schedule = %+v, want at %v rounded up to the millisecond", sc, at)
	}
	if p, _ := h.Scheduler().Pending(t.Context(), "s", 0); len(p) != 1 || p[0] != sc {
		t.Fatalf("Pending = %+v", p)
	}
	got := receive(t, o, 1)
	wantIDs(t, "fired", got, 1)
	if m := got[0].Message; m.Content != "later" || m.Time.Before(sc.At) {
		t.Fatalf("fired %+v before its time %v", m, sc.At)
	}
	if late := got[0].Time.Sub(sc.At); late > 2*time.Second {
		t.Fatalf("fired %v late", late)
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
	h := newTestHub(t, Config{})
	o := subscribeNew(t, h, "ttl")
	e, err := h.Scheduler().PublishTTL(t.Context(), "ttl", "brief", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != 1 || e.Content != "brief" || e.Expired != 0 || strings.Contains(string(e.JSON), "expired") {
		t.Fatalf("PublishTTL = %+v %s", e.Message, e.JSON)
	}
	got := receive(t, o, 2)
	wantIDs(t, "message then expiry", got, 1, 2)
	x := got[1].Message
	if x.Content != "" || x.Expired != 1 || x.Time.Before(e.Time.Add(200*time.Millisecond)) {
		t.Fatalf("expiry %+v, want content \"\", expired 1, not before %v", x, e.Time.Add(200*time.Millisecond))
	}
	if want := `,"content":"","time":"`; !strings.Contains(string(got[1].JSON), want) || !strings.HasSuffix(string(got[1].JSON), `,"expired":1}`) {
		t.Fatalf("expiry JSON %s", got[1].JSON)
	}
	c, _ := h.Channel(t.Context(), "ttl")
	if cur := c.Current(); cur.ID != 2 || cur.Content != "" {
		t.Fatalf("current after expiry = %+v", cur.Message)
	}
}

func TestExpirySupersededDoesNothing(t *testing.T) {
	h := newTestHub(t, Config{})
	o := subscribeNew(t, h, "sup")
	if _, err := h.Scheduler().PublishTTL(t.Context(), "sup", "brief", 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, h, "sup", 1)
	eventually(t, "the expiry to be taken", func() bool {
		p, _ := h.Scheduler().Pending(t.Context(), "sup", 0)
		return len(p) == 0
	})
	time.Sleep(50 * time.Millisecond) // a delivery would be immediate
	wantIDs(t, "no expiry message", o.Take(nil), 1, 2)
	if n := h.Stats().Published(); n != 2 {
		t.Fatalf("published %d, want 2", n)
	}
}

func TestCancelSchedule(t *testing.T) {
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
	time.Sleep(400 * time.Millisecond)
	if n := h.Stats().Published(); n != 0 {
		t.Fatalf("a cancelled schedule fired (%d published)", n)
	}
}

// A schedule whose time passed while no hub ran fires when one starts.
func TestMissedScheduleFiresAtStart(t *testing.T) {
	store := NewMemoryStore(0)
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	if err := store.Schedule(t.Context(), Scheduled{ID: "missed", Channel: "m", Content: "late", At: at}, 0); err != nil {
		t.Fatal(err)
	}
	h := newTestHub(t, Config{Store: store})
	eventually(t, "the missed schedule to fire", func() bool {
		m, _ := store.Current(t.Context(), "m")
		return m.ID == 1
	})
	m, _ := store.Current(t.Context(), "m")
	if m.Content != "late" || m.Time.Before(at.Add(time.Minute)) {
		t.Fatalf("fired %+v; its time should be the late firing time", m)
	}
	if n := h.Stats().Published(); n != 1 {
		t.Fatalf("published %d", n)
	}
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
	if err := h.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Schedule(t.Context(), "x", "y", time.Now().Add(time.Minute), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Schedule after Close = %v, want ErrClosed", err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("the scheduler loop still runs after Close")
	}
}
