package announce

import (
	"context"
	"time"
)

var _ ChannelAdmin = (*MemoryStore)(nil)

// Channels implements ChannelAdmin.
func (s *MemoryStore) Channels(context.Context) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.channels), nil
}

// Delete implements ChannelAdmin.
func (s *MemoryStore) Delete(_ context.Context, channel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.channels, channel)
	delete(s.sched, channel)
	return nil
}

// Idle implements ChannelAdmin.
func (s *MemoryStore) Idle(_ context.Context, before time.Time, limit int) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for name, ch := range s.channels {
		if len(out) >= limit {
			break
		}
		if len(ch.history) == 0 || ch.history[len(ch.history)-1].Time.Before(before) {
			out = append(out, name)
		}
	}
	return out, nil
}

// ScheduledTotal implements ChannelAdmin.
func (s *MemoryStore) ScheduledTotal(context.Context) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, ch := range s.sched {
		n += len(ch)
	}
	return n, nil
}
