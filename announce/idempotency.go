package announce

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// ErrIdempotencyKeyReused is a publish whose idempotency key was already used
// on the channel for different content: replaying the first message would
// silently drop the second, publishing it would break the key's promise.
var ErrIdempotencyKeyReused = errors.New("idempotency key was already used on this channel for different content")

// Idempotency remembers publishes by (channel, key), so that a retried
// publish answers the original message instead of publishing a second one.
//
// Guarantees every implementation gives:
//   - Concurrent calls with the same channel and key run publish at most
//     once while it succeeds: the others wait for it (or for their ctx) and
//     get its message with replayed == true.
//   - A failed publish is not remembered: the next call with that key (or a
//     waiter) runs publish again.
//   - A remembered key whose message had other content answers
//     ErrIdempotencyKeyReused.
//   - Keys are remembered for a bounded time and number; what the bound is
//     belongs to the implementation's documentation.
//
// MemoryIdempotency remembers per node. The Redis one (redis.Idempotency:
// SET NX of a pending marker with a TTL, then the message, waiters polling)
// is shared by all nodes, so a retry that lands on another node is still
// recognised.
type Idempotency interface {
	Do(ctx context.Context, channel, key, content string, publish func(context.Context) (*Envelope, error)) (e *Envelope, replayed bool, err error)
}

// Bounds of the in-memory idempotency cache.
const (
	DefaultIdempotencyTTL   = 24 * time.Hour
	DefaultIdempotencyKeys  = 10000
	DefaultIdempotencyBytes = 64 << 20
)

// IdempotencyConfig bounds a MemoryIdempotency. Zero fields take the defaults.
type IdempotencyConfig struct {
	TTL      time.Duration    // how long a key is remembered (24h)
	MaxKeys  int              // most keys remembered, over all channels (10,000)
	MaxBytes int64            // most bytes of remembered messages (64 MiB)
	Now      func() time.Time // the clock (time.Now)
}

// MemoryIdempotency is the per-node Idempotency: a map of keys in the order
// their publish completed, trimmed from the oldest by age, count and bytes.
// It is safe for concurrent use; its lock is never held while publishing.
type MemoryIdempotency struct {
	cfg IdempotencyConfig

	mu      sync.Mutex
	entries map[idemKey]*idemEntry // guarded by mu
	order   list.List              // of *idemEntry, completed ones only, oldest first; guarded by mu
	bytes   int64                  // of the completed entries; guarded by mu
}

type idemKey struct{ channel, key string }

type idemEntry struct {
	key  idemKey
	done chan struct{} // closed when publish returned
	// Set before done is closed, read only after.
	env  *Envelope
	err  error
	at   time.Time
	size int64
	elem *list.Element
}

var _ Idempotency = (*MemoryIdempotency)(nil)

// NewMemoryIdempotency returns an empty cache bounded by cfg.
func NewMemoryIdempotency(cfg IdempotencyConfig) *MemoryIdempotency {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultIdempotencyTTL
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultIdempotencyKeys
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultIdempotencyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryIdempotency{cfg: cfg, entries: make(map[idemKey]*idemEntry)}
}

// Len is the number of keys remembered or in flight.
func (m *MemoryIdempotency) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Do implements Idempotency.
func (m *MemoryIdempotency) Do(ctx context.Context, channel, key, content string, publish func(context.Context) (*Envelope, error)) (*Envelope, bool, error) {
	k := idemKey{channel, key}
	for {
		m.mu.Lock()
		m.expireLocked(m.cfg.Now())
		e, ok := m.entries[k]
		if !ok {
			e = &idemEntry{key: k, done: make(chan struct{})}
			m.entries[k] = e
			m.mu.Unlock()
			env, err := m.lead(ctx, e, publish)
			return env, false, err
		}
		m.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if e.err != nil {
			continue // the first attempt failed and is forgotten: try again
		}
		if e.env.Content != content {
			return nil, false, ErrIdempotencyKeyReused
		}
		return e.env, true, nil
	}
}

// lead runs publish for e, which this caller just put in the map, and
// remembers its message or forgets e on failure.
func (m *MemoryIdempotency) lead(ctx context.Context, e *idemEntry, publish func(context.Context) (*Envelope, error)) (env *Envelope, err error) {
	e.err = errors.New("publish did not return") // until it does (a panic)
	defer func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if e.err != nil {
			delete(m.entries, e.key)
		} else {
			e.at = m.cfg.Now()
			e.size = int64(len(e.env.JSON)+len(e.env.Content)+len(e.key.channel)+len(e.key.key)) + 256
			e.elem = m.order.PushBack(e)
			m.bytes += e.size
			m.trimLocked()
		}
		close(e.done)
	}()
	env, err = publish(ctx)
	if err == nil && env == nil {
		err = errors.New("publish returned no message")
	}
	e.env, e.err = env, err
	return env, err
}

// expireLocked forgets keys older than the TTL. Requires m.mu held.
func (m *MemoryIdempotency) expireLocked(now time.Time) {
	for f := m.order.Front(); f != nil; f = m.order.Front() {
		if now.Sub(f.Value.(*idemEntry).at) < m.cfg.TTL {
			return
		}
		m.removeLocked(f.Value.(*idemEntry))
	}
}

// trimLocked forgets the oldest keys beyond the count and byte bounds.
// Requires m.mu held.
func (m *MemoryIdempotency) trimLocked() {
	for m.order.Len() > 0 && (m.order.Len() > m.cfg.MaxKeys || m.bytes > m.cfg.MaxBytes) {
		m.removeLocked(m.order.Front().Value.(*idemEntry))
	}
}

// removeLocked forgets a completed entry. Requires m.mu held.
func (m *MemoryIdempotency) removeLocked(e *idemEntry) {
	m.order.Remove(e.elem)
	m.bytes -= e.size
	if m.entries[e.key] == e {
		delete(m.entries, e.key)
	}
}

// Forget drops every key of channel (it was deleted): a retry after that
// publishes anew.
func (m *MemoryIdempotency) Forget(channel string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.entries {
		if k.channel == channel && e.elem != nil {
			m.removeLocked(e)
		}
	}
}
