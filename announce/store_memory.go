package announce

import (
	"context"
	"sync"
	"time"
)

// MemoryStore keeps everything in process memory (--memory); nothing survives a restart.
type MemoryStore struct {
	history  int
	mu       sync.RWMutex
	channels map[string]*memoryChannel       // guarded by mu
	sched    map[string]map[string]Scheduled // channel -> id -> schedule (store_memory_schedule.go); guarded by mu
}

type memoryChannel struct {
	last    uint64
	history []Message // oldest first, at most history long
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns a store keeping the last history messages per channel.
func NewMemoryStore(history int) *MemoryStore {
	if history <= 0 {
		history = DefaultHistory
	}
	return &MemoryStore{history: history, channels: make(map[string]*memoryChannel)}
}

// Append implements Store.
func (s *MemoryStore) Append(_ context.Context, channel, content string, at time.Time) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appendLocked(Message{Channel: channel, Content: content, Time: at.UTC()}), nil
}

// appendLocked gives m the channel's next id and stores it. Requires s.mu held.
func (s *MemoryStore) appendLocked(m Message) Message {
	ch := s.channels[m.Channel]
	if ch == nil {
		ch = &memoryChannel{}
		s.channels[m.Channel] = ch
	}
	ch.last++
	m.ID = ch.last
	if len(ch.history) >= s.history {
		n := copy(ch.history, ch.history[len(ch.history)-s.history+1:])
		ch.history = ch.history[:n]
	}
	ch.history = append(ch.history, m)
	return m
}

// Current implements Store.
func (s *MemoryStore) Current(_ context.Context, channel string) (Message, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ch := s.channels[channel]
	if ch == nil || len(ch.history) == 0 {
		return Message{Channel: channel}, nil
	}
	return ch.history[len(ch.history)-1], nil
}

// Since implements Store.
func (s *MemoryStore) Since(_ context.Context, channel string, since uint64, limit int) ([]Message, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ch := s.channels[channel]
	if ch == nil {
		return nil, nil
	}
	return sliceSince(ch.history, since, limit), nil
}

// Close implements Store.
func (s *MemoryStore) Close() error { return nil }

// sliceSince returns a copy of the messages of h (consecutive ids, oldest
// first) with id > since, at most limit of them.
func sliceSince(h []Message, since uint64, limit int) []Message {
	if len(h) == 0 || since >= h[len(h)-1].ID {
		return nil
	}
	start := 0
	if since >= h[0].ID {
		start = int(since - h[0].ID + 1)
	}
	end := len(h)
	if limit > 0 && end-start > limit {
		end = start + limit
	}
	return append([]Message(nil), h[start:end]...)
}
