package announce

import (
	"context"
	"time"
)

// The MemoryStore's schedules live in its map under the same lock as the
// messages, which makes Fire atomic; like everything else in it they do not
// survive a restart. Due scans every schedule: fine for one process's
// memory, which the per-channel cap bounds.

var _ ScheduleStore = (*MemoryStore)(nil)

// Schedule implements ScheduleStore.
func (s *MemoryStore) Schedule(_ context.Context, sc Scheduled, max int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max > 0 && len(s.sched[sc.Channel]) >= max {
		return ErrTooManyScheduled
	}
	s.putScheduleLocked(sc)
	return nil
}

// putScheduleLocked stores sc, replacing a schedule with its id. Requires
// s.mu held.
func (s *MemoryStore) putScheduleLocked(sc Scheduled) {
	if s.sched == nil {
		s.sched = make(map[string]map[string]Scheduled)
	}
	ch := s.sched[sc.Channel]
	if ch == nil {
		ch = make(map[string]Scheduled)
		s.sched[sc.Channel] = ch
	}
	ch[sc.ID] = sc
}

// takeLocked removes and returns the channel's schedule id. Requires s.mu
// held.
func (s *MemoryStore) takeLocked(channel, id string) (Scheduled, bool) {
	ch := s.sched[channel]
	sc, ok := ch[id]
	if !ok {
		return Scheduled{}, false
	}
	delete(ch, id)
	if len(ch) == 0 {
		delete(s.sched, channel)
	}
	return sc, true
}

// Cancel implements ScheduleStore.
func (s *MemoryStore) Cancel(_ context.Context, channel, id string) (Scheduled, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.takeLocked(channel, id)
	return sc, ok, nil
}

// Pending implements ScheduleStore.
func (s *MemoryStore) Pending(_ context.Context, channel string, limit int) ([]Scheduled, error) {
	s.mu.RLock()
	out := make([]Scheduled, 0, len(s.sched[channel]))
	for _, sc := range s.sched[channel] {
		out = append(out, sc)
	}
	s.mu.RUnlock()
	SortScheduled(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Due implements ScheduleStore.
func (s *MemoryStore) Due(_ context.Context, now time.Time, limit int) ([]Scheduled, time.Time, error) {
	s.mu.RLock()
	var due []Scheduled
	var next time.Time
	for _, ch := range s.sched {
		for _, sc := range ch {
			switch {
			case !sc.At.After(now):
				due = append(due, sc)
			case next.IsZero() || sc.At.Before(next):
				next = sc.At
			}
		}
	}
	s.mu.RUnlock()
	SortScheduled(due)
	if limit > 0 && len(due) > limit {
		if n := due[limit].At; next.IsZero() || n.Before(next) {
			next = n
		}
		due = due[:limit]
	}
	return due, next, nil
}

// Fire implements ScheduleStore.
func (s *MemoryStore) Fire(_ context.Context, f Firing) (Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Claim {
		// The very schedule: the channel's expiry id may hold a newer expiry by now.
		if cur, ok := s.sched[f.Channel][f.ID]; !ok || cur != f.Scheduled {
			return Message{}, false, nil
		}
		s.takeLocked(f.Channel, f.ID)
	}
	if f.Expire != 0 {
		if ch := s.channels[f.Channel]; ch == nil || ch.last != f.Expire {
			return Message{}, false, nil // superseded: nothing to expire
		}
	}
	m := s.appendLocked(Message{Channel: f.Channel, Content: f.Content, Time: f.Time.UTC(), Expired: f.Expire})
	if f.TTL > 0 {
		s.putScheduleLocked(f.Expiry(m))
	}
	return m, true, nil
}
