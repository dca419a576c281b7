package announce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ChannelAdmin is implemented by stores that can count, age and delete
// channels (all three of this module's stores do). The hub's channel
// limits need it: without it they are off.
//
// Guarantees every implementation gives:
//   - Channels counts the channels holding a sequence (one Append made it).
//   - Delete removes the channel's sequence, history and schedules (and,
//     in a shared store, its idempotency keys) in one step as far as readers
//     see: after it the channel reads as never published, and the next
//     Append gives id 1. An unknown channel is no error.
//   - Idle returns at most limit channels whose newest message was
//     accepted before `before` (a channel with no message left counts as idle).
//   - ScheduledTotal counts the pending schedules of every channel.
type ChannelAdmin interface {
	Channels(ctx context.Context) (int, error)
	Delete(ctx context.Context, channel string) error
	Idle(ctx context.Context, before time.Time, limit int) ([]string, error)
	ScheduledTotal(ctx context.Context) (int, error)
}

// Errors of the channel limits; the API maps them to status codes.
var (
	ErrTooManyChannels       = errors.New("the store holds the most channels it may (--max-channels)")            // 507
	ErrTooManyScheduledTotal = errors.New("the store holds the most scheduled messages it may (--max-scheduled)") // 429
	// ErrDeleted closes the observers of a deleted channel.
	ErrDeleted = errors.New("channel deleted")
)

// ChannelForgetter is implemented by an Idempotency that can forget the
// keys of one channel (the in-memory one); a shared store's keys go with
// the store's Delete.
type ChannelForgetter interface {
	Forget(channel string)
}

// channelCount is the store's channel count as the hub last read it, plus
// the channels this hub created since: reading the count on every publish
// that creates a channel would cost a scan in some stores.
type channelCount struct {
	mu     sync.Mutex // held across the store's count: one caller reads it
	n      int        // guarded by mu
	readAt time.Time  // guarded by mu
}

// countRefresh is how old the count may be; nodes sharing a store may
// together overshoot the limit by the channels they create in this time.
const countRefresh = time.Second

// admitChannel refuses a publish that would create a channel past
// MaxChannels. A channel that holds a sequence already is always admitted.
func (h *Hub) admitChannel(ctx context.Context, name string) error {
	admin, ok := h.store.(ChannelAdmin)
	if !ok || h.limits.MaxChannels <= 0 {
		return nil
	}
	if c := h.lookup(name); c != nil && c.lastID() > 0 {
		return nil
	}
	cur, err := h.store.Current(ctx, name)
	if err != nil {
		return err
	}
	if cur.ID > 0 {
		return nil
	}
	cc := &h.count
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if time.Since(cc.readAt) >= countRefresh {
		n, err := admin.Channels(ctx)
		if err != nil {
			return err
		}
		cc.n, cc.readAt = n, time.Now()
	}
	if cc.n >= h.limits.MaxChannels {
		return fmt.Errorf("%w: %d", ErrTooManyChannels, h.limits.MaxChannels)
	}
	cc.n++
	return nil
}

// admitSchedule refuses a schedule past MaxScheduledTotal.
func (h *Hub) admitSchedule(ctx context.Context) error {
	admin, ok := h.store.(ChannelAdmin)
	if !ok || h.limits.MaxScheduledTotal <= 0 {
		return nil
	}
	n, err := admin.ScheduledTotal(ctx)
	if err != nil {
		return err
	}
	if n >= h.limits.MaxScheduledTotal {
		return fmt.Errorf("%w: %d", ErrTooManyScheduledTotal, h.limits.MaxScheduledTotal)
	}
	return nil
}

// Delete deletes the channel from the store (messages, schedules) and
// makes idem forget its keys, and closes this node's observers of it with
// ErrDeleted. On a shared store the store tells the other nodes (through
// the broker, BrokerSink.Deleted), which close theirs.
func (h *Hub) Delete(ctx context.Context, name string, idem Idempotency) error {
	if err := ValidateChannel(name); err != nil {
		return err
	}
	admin, ok := h.store.(ChannelAdmin)
	if !ok {
		return errors.New("announce: this server's store cannot delete channels")
	}
	if h.closed.Load() {
		return ErrClosed
	}
	if err := admin.Delete(ctx, name); err != nil {
		return err
	}
	if f, ok := idem.(ChannelForgetter); ok {
		f.Forget(name)
	}
	h.forget(name, ErrDeleted)
	return nil
}

// forget takes the channel out of the cache and closes its observers with reason.
func (h *Hub) forget(name string, reason error) {
	s := h.shard(name)
	s.mu.Lock()
	c := s.channels[name]
	if c != nil {
		s.removeLocked(c)
	}
	s.mu.Unlock()
	if c == nil {
		return
	}
	c.deleted(reason)
	h.unwatchEvicted([]string{name})
}

// expireIdle deletes up to a batch of channels with no publish for the
// channel TTL and no observer on this node nor, as Limits.Observed tells,
// on another.
func (h *Hub) expireIdle(ctx context.Context, now time.Time) {
	admin, ok := h.store.(ChannelAdmin)
	if !ok || h.limits.ChannelTTL <= 0 {
		return
	}
	names, err := admin.Idle(ctx, now.Add(-h.limits.ChannelTTL), ttlBatch)
	if err != nil {
		h.log.Warn("channel ttl: listing idle channels failed", "err", err)
		return
	}
	for _, name := range names {
		if c := h.lookup(name); c != nil && c.observed() {
			continue
		}
		if h.limits.Observed != nil {
			if elsewhere, err := h.limits.Observed(ctx, name); err != nil || elsewhere {
				continue
			}
		}
		if err := admin.Delete(ctx, name); err != nil {
			h.log.Warn("channel ttl: delete failed", "channel", name, "err", err)
			return
		}
		h.forget(name, ErrDeleted)
	}
}

// ttlBatch is how many idle channels one pass of the TTL deletes.
const ttlBatch = 1000

// deleted empties c, which the hub just forgot, and closes its observers
// with reason.
func (c *Channel) deleted(reason error) {
	c.mu.Lock()
	c.evicted = true
	// Waiting long-polls answer the channel as it now reads: never published.
	c.seq.dropPendingLocked()
	c.seq.setCurrentLocked(NewEnvelope(Message{Channel: c.name}))
	c.history = nil
	c.mu.Unlock()
	c.closeAll(reason)
}

// observed reports whether c has observers.
func (c *Channel) observed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.observers) > 0
}
