package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/google/uuid"
)

// RunSchedule checks every guarantee of announce.ScheduleStore. open must
// return a fresh, empty store keeping history messages per channel that
// implements it; RunSchedule closes it.
func RunSchedule(t *testing.T, open func(t *testing.T, history int) announce.Store) {
	t.Helper()
	fresh := func(t *testing.T) (announce.Store, announce.ScheduleStore) {
		s := open(t, 100)
		t.Cleanup(func() { _ = s.Close() })
		ss, ok := s.(announce.ScheduleStore)
		if !ok {
			t.Fatalf("%T does not implement announce.ScheduleStore", s)
		}
		return s, ss
	}
	base := time.Now().UTC().Truncate(time.Millisecond)

	t.Run("DuePendingAndNext", func(t *testing.T) {
		_, ss := fresh(t)
		past2 := sched("a", "past2", base.Add(-time.Second))
		past1 := sched("a", "past1", base.Add(-2*time.Second))
		other := sched("b", "other", base.Add(-time.Second))
		soon := sched("a", "soon", base.Add(time.Minute))
		later := sched("a", "later", base.Add(time.Hour))
		for _, sc := range []announce.Scheduled{past2, later, past1, soon, other} {
			mustSchedule(t, ss, sc)
		}
		due, next, err := ss.Due(t.Context(), base, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := contents(due); got != "[past1 past2 other]" && got != "[past1 other past2]" {
			t.Fatalf("Due = %s, want past1 then past2 and other (same time), earliest first", got)
		}
		if !next.Equal(soon.At) {
			t.Fatalf("Due's next = %v, want %v", next, soon.At)
		}
		if due, _, _ := ss.Due(t.Context(), base, 1); contents(due) != "[past1]" {
			t.Fatalf("Due(limit 1) = %s, want [past1]", contents(due))
		}
		if due[0] != past1 {
			t.Fatalf("Due returned %+v, want what was scheduled: %+v", due[0], past1)
		}
		pending, err := ss.Pending(t.Context(), "a", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := contents(pending); got != "[past1 past2 soon later]" {
			t.Fatalf("Pending(a) = %s", got)
		}
		if pending, _ := ss.Pending(t.Context(), "a", 2); contents(pending) != "[past1 past2]" {
			t.Fatalf("Pending(a, limit 2) = %s", contents(pending))
		}
		if pending, _ := ss.Pending(t.Context(), "nobody", 0); len(pending) != 0 {
			t.Fatalf("Pending(nobody) = %s", contents(pending))
		}
	})

	t.Run("EmptyStore", func(t *testing.T) {
		_, ss := fresh(t)
		due, next, err := ss.Due(t.Context(), base, 10)
		if err != nil || len(due) != 0 || !next.IsZero() {
			t.Fatalf("Due on an empty store = %v, %v, %v", due, next, err)
		}
	})

	t.Run("FireOnce", func(t *testing.T) {
		s, ss := fresh(t)
		mustAppend(t, s, "f", "before")
		sc := sched("f", "scheduled", base.Add(-time.Millisecond))
		mustSchedule(t, ss, sc)
		at := base.Add(time.Second)
		m, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: sc, Claim: true, Time: at})
		if err != nil || !ok {
			t.Fatalf("Fire = %v, %v", ok, err)
		}
		want := announce.Message{ID: 2, Channel: "f", Content: "scheduled", Time: at}
		if m != want {
			t.Fatalf("Fire = %+v, want %+v", m, want)
		}
		checkCurrent(t, s, "f", 2, "scheduled")
		if got, _ := s.Since(t.Context(), "f", 1, 0); len(got) != 1 || got[0] != want {
			t.Fatalf("Since after Fire = %+v, want [%+v]", got, want)
		}
		if _, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: sc, Claim: true, Time: at}); ok || err != nil {
			t.Fatalf("second Fire = %v, %v; want false: it fired already", ok, err)
		}
		if due, _, _ := ss.Due(t.Context(), at, 0); len(due) != 0 {
			t.Fatalf("Due after Fire = %s", contents(due))
		}
		if p, _ := ss.Pending(t.Context(), "f", 0); len(p) != 0 {
			t.Fatalf("Pending after Fire = %s", contents(p))
		}
		checkCurrent(t, s, "f", 2, "scheduled")
	})

	t.Run("ConcurrentFiresFireOnce", func(t *testing.T) {
		s, ss := fresh(t)
		sc := sched("race", "once", base)
		mustSchedule(t, ss, sc)
		var wg sync.WaitGroup
		var mu sync.Mutex
		fired := 0
		for range 16 {
			wg.Go(func() {
				_, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: sc, Claim: true, Time: base})
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					fired++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if fired != 1 {
			t.Fatalf("%d of 16 concurrent Fires fired, want 1", fired)
		}
		checkCurrent(t, s, "race", 1, "once")
	})

	t.Run("Cancel", func(t *testing.T) {
		s, ss := fresh(t)
		sc := sched("c", "cancel me", base.Add(time.Hour))
		keep := sched("c", "keep me", base.Add(time.Hour))
		mustSchedule(t, ss, sc)
		mustSchedule(t, ss, keep)
		if _, ok, err := ss.Cancel(t.Context(), "other", sc.ID); ok || err != nil {
			t.Fatalf("Cancel on another channel = %v, %v; want false", ok, err)
		}
		got, ok, err := ss.Cancel(t.Context(), "c", sc.ID)
		if err != nil || !ok || got != sc {
			t.Fatalf("Cancel = %+v, %v, %v; want %+v", got, ok, err, sc)
		}
		if _, ok, _ := ss.Cancel(t.Context(), "c", sc.ID); ok {
			t.Fatal("second Cancel found it again")
		}
		if _, ok, _ := ss.Fire(t.Context(), announce.Firing{Scheduled: sc, Claim: true, Time: base}); ok {
			t.Fatal("a cancelled schedule fired")
		}
		if p, _ := ss.Pending(t.Context(), "c", 0); contents(p) != "[keep me]" {
			t.Fatalf("Pending after Cancel = %s", contents(p))
		}
		checkCurrent(t, s, "c", 0, "")
	})

	t.Run("TTLAndExpiry", func(t *testing.T) {
		s, ss := fresh(t)
		sc := sched("t", "short-lived", base)
		sc.TTL = 90 * time.Second
		mustSchedule(t, ss, sc)
		m, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: sc, Claim: true, Time: base})
		if err != nil || !ok || m.ID != 1 || m.Expired != 0 {
			t.Fatalf("Fire = %+v, %v, %v", m, ok, err)
		}
		pending, err := ss.Pending(t.Context(), "t", 0)
		if err != nil {
			t.Fatal(err)
		}
		wantExp := announce.Scheduled{ID: announce.ExpiryID("t"), Channel: "t", At: base.Add(90 * time.Second), Expire: 1}
		if len(pending) != 1 || pending[0] != wantExp {
			t.Fatalf("Pending after a TTL fire = %+v, want [%+v]", pending, wantExp)
		}
		due, _, _ := ss.Due(t.Context(), wantExp.At, 0)
		if len(due) != 1 || due[0] != wantExp {
			t.Fatalf("Due at the expiry = %+v, want [%+v]", due, wantExp)
		}
		at := wantExp.At.Add(time.Millisecond)
		e, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: due[0], Claim: true, Time: at})
		want := announce.Message{ID: 2, Channel: "t", Content: "", Time: at, Expired: 1}
		if err != nil || !ok || e != want {
			t.Fatalf("Fire(expiry) = %+v, %v, %v; want %+v", e, ok, err, want)
		}
		if cur, _ := s.Current(t.Context(), "t"); cur != want {
			t.Fatalf("Current after expiry = %+v, want %+v", cur, want)
		}
		if got, _ := s.Since(t.Context(), "t", 0, 0); len(got) != 2 || got[1] != want {
			t.Fatalf("Since after expiry = %+v", got)
		}
		if p, _ := ss.Pending(t.Context(), "t", 0); len(p) != 0 {
			t.Fatalf("Pending after the expiry fired = %s", contents(p))
		}
	})

	t.Run("ExpirySupersededDoesNothing", func(t *testing.T) {
		s, ss := fresh(t)
		m, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: announce.Scheduled{Channel: "s", Content: "ttl", TTL: time.Minute}, Time: base})
		if err != nil || !ok || m.ID != 1 {
			t.Fatalf("immediate Fire = %+v, %v, %v", m, ok, err)
		}
		mustAppend(t, s, "s", "newer")
		pending, _ := ss.Pending(t.Context(), "s", 0)
		if len(pending) != 1 || pending[0].Expire != 1 {
			t.Fatalf("Pending = %+v, want the expiry of 1", pending)
		}
		if _, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: pending[0], Claim: true, Time: base.Add(time.Minute)}); ok || err != nil {
			t.Fatalf("Fire of a superseded expiry = %v, %v; want false", ok, err)
		}
		checkCurrent(t, s, "s", 2, "newer")
		if p, _ := ss.Pending(t.Context(), "s", 0); len(p) != 0 {
			t.Fatalf("a superseded expiry stays after firing: %s", contents(p))
		}
	})

	t.Run("NewerExpiryReplacesOlder", func(t *testing.T) {
		s, ss := fresh(t)
		fire := func(content string, ttl time.Duration) announce.Message {
			m, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: announce.Scheduled{Channel: "r", Content: content, TTL: ttl}, Time: base})
			if err != nil || !ok {
				t.Fatalf("Fire %q = %v, %v", content, ok, err)
			}
			return m
		}
		fire("first", time.Hour)
		old, _ := ss.Pending(t.Context(), "r", 0)
		second := fire("second", time.Minute)
		pending, _ := ss.Pending(t.Context(), "r", 0)
		if len(old) != 1 || len(pending) != 1 || pending[0].Expire != second.ID || !pending[0].At.Equal(base.Add(time.Minute)) {
			t.Fatalf("expiries: before %+v, after %+v; want one, for id %d", old, pending, second.ID)
		}
		// A node that read the old expiry before it was replaced fires it:
		// that must neither expire the new message nor take its expiry.
		if _, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: old[0], Claim: true, Time: base.Add(time.Hour)}); ok || err != nil {
			t.Fatalf("Fire of the replaced expiry = %v, %v; want false", ok, err)
		}
		if p, _ := ss.Pending(t.Context(), "r", 0); len(p) != 1 || p[0] != pending[0] {
			t.Fatalf("the new expiry is gone after firing the replaced one: %+v", p)
		}
		checkCurrent(t, s, "r", 2, "second")
	})

	t.Run("LimitPerChannel", func(t *testing.T) {
		_, ss := fresh(t)
		for i := range 3 {
			mustScheduleMax(t, ss, sched("l", fmt.Sprint(i), base.Add(time.Hour)), 3)
		}
		err := ss.Schedule(t.Context(), sched("l", "over", base.Add(time.Hour)), 3)
		if !errors.Is(err, announce.ErrTooManyScheduled) {
			t.Fatalf("Schedule over the limit = %v, want ErrTooManyScheduled", err)
		}
		mustScheduleMax(t, ss, sched("l2", "other channel", base.Add(time.Hour)), 3)
		mustScheduleMax(t, ss, sched("l", "no limit", base.Add(time.Hour)), 0)
	})
}

// RunScheduleDurable checks that schedules survive Close and reopen.
func RunScheduleDurable(t *testing.T, open func(t *testing.T, dir string, history int) announce.Store) {
	t.Helper()
	dir := t.TempDir()
	base := time.Now().UTC().Truncate(time.Millisecond)
	s := open(t, dir, 10)
	ss := s.(announce.ScheduleStore)
	sc := sched("d", "durable", base.Add(time.Second))
	sc.TTL = time.Minute
	mustSchedule(t, ss, sc)
	if _, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: announce.Scheduled{Channel: "e", Content: "expiring", TTL: time.Hour}, Time: base}); !ok || err != nil {
		t.Fatalf("Fire = %v, %v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 10)
	t.Cleanup(func() { _ = s.Close() })
	ss = s.(announce.ScheduleStore)
	due, _, err := ss.Due(t.Context(), base.Add(2*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || due[0] != sc || due[1].Expire != 1 || due[1].Channel != "e" {
		t.Fatalf("Due after reopen = %+v, want %+v and the expiry of e/1", due, sc)
	}
	m, ok, err := ss.Fire(t.Context(), announce.Firing{Scheduled: due[1], Claim: true, Time: base.Add(2 * time.Hour)})
	if err != nil || !ok || m.Expired != 1 || m.Content != "" {
		t.Fatalf("Fire(expiry) after reopen = %+v, %v, %v", m, ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 10)
	t.Cleanup(func() { _ = s.Close() })
	if cur, err := s.Current(t.Context(), "e"); err != nil || cur != m {
		t.Fatalf("the expiry message after reopen = %+v, %v; want %+v", cur, err, m)
	}
}

func sched(channel, content string, at time.Time) announce.Scheduled {
	return announce.Scheduled{ID: uuid.NewString(), Channel: channel, Content: content, At: at.UTC()}
}

func mustSchedule(t *testing.T, ss announce.ScheduleStore, sc announce.Scheduled) {
	t.Helper()
	mustScheduleMax(t, ss, sc, 0)
}

func mustScheduleMax(t *testing.T, ss announce.ScheduleStore, sc announce.Scheduled, max int) {
	t.Helper()
	if err := ss.Schedule(t.Context(), sc, max); err != nil {
		t.Fatalf("Schedule(%+v): %v", sc, err)
	}
}

func contents(ss []announce.Scheduled) string {
	out := make([]string, len(ss))
	for i, sc := range ss {
		out[i] = sc.Content
	}
	return fmt.Sprint(out)
}
