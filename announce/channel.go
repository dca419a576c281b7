package announce

import (
	"context"
	"sync"
	"time"
)

// Channel is the subject: it holds the current message and a short history
// and notifies its observers, in id order, of every new message. Its
// sequencer (sequencer.go) decides that order.
type Channel struct {
	name  string
	hub   *Hub
	ready chan struct{} // closed once the state is loaded (or failed)
	err   error         // load error; written before ready is closed, read after

	mu        sync.Mutex
	seq       sequencer          // current id, pending ids, fills; guarded by mu
	history   []*Envelope        // oldest first, consecutive ids; guarded by mu
	observers []*Observer        // guarded by mu
	counts    [numTransports]int // observers per transport; guarded by mu
	idleSince time.Time          // when the last observer left; guarded by mu
	evicted   bool               // out of the hub's cache for good; guarded by mu
	lruPrev   *Channel           // neighbours in the shard's lru; guarded by the shard's mu
	lruNext   *Channel
}

func newChannel(h *Hub, name string) *Channel {
	return &Channel{name: name, hub: h, ready: make(chan struct{})}
}

// loaded ends the load begun by the caller that created c: err is what it
// failed with, if it did.
func (c *Channel) loaded(err error) {
	c.err = err
	close(c.ready)
}

// isLoaded reports whether the load ended (successfully or not).
func (c *Channel) isLoaded() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// awaitLoad waits for the load to end and returns its error, or ctx's.
func (c *Channel) awaitLoad(ctx context.Context) error {
	select {
	case <-c.ready:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Replay is what a new observer receives before live messages.
type Replay struct {
	Messages []*Envelope
	// Truncated reports that the cursor is older than the history, so
	// messages between it and Messages[0] are gone.
	Truncated bool
}

// Name returns the channel's name.
func (c *Channel) Name() string { return c.name }

// Current returns the current message; its ID is 0 when nothing was published.
func (c *Channel) Current() *Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq.current
}

// Counts returns the number of observers per transport.
func (c *Channel) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, numTransports)
	for _, t := range Transports {
		out[t.String()] = c.counts[t]
	}
	return out
}

// History returns the cached messages with id > since, oldest first, at most limit (0: all).
func (c *Channel) History(since uint64, limit int) []*Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	msgs, _ := c.afterLocked(since)
	if limit > 0 && len(msgs) > limit {
		msgs = msgs[:limit]
	}
	return msgs
}

// afterLocked returns a copy of the history with id > since and whether
// the cursor is older than the history. Requires c.mu held.
func (c *Channel) afterLocked(since uint64) ([]*Envelope, bool) {
	h := c.history
	if len(h) == 0 || since >= h[len(h)-1].ID {
		return nil, false
	}
	start := 0
	truncated := since+1 < h[0].ID
	if since >= h[0].ID {
		start = int(since - h[0].ID + 1)
	}
	return append([]*Envelope(nil), h[start:]...), truncated
}

// subscribe registers o and returns its replay under the same lock: with no
// cursor the current message (if any); with one, the history after it, or
// the current message when the cursor is ahead of it (the store was reset).
func (c *Channel) subscribe(o *Observer, since *uint64) (Replay, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted || c.hub.closed.Load() { // closed: the caller's retry gets ErrClosed
		return Replay{}, false
	}
	var r Replay
	switch cur := c.seq.current; {
	case since == nil || *since > cur.ID:
		if cur.ID > 0 {
			r.Messages = []*Envelope{cur}
		}
	default:
		r.Messages, r.Truncated = c.afterLocked(*since)
	}
	c.registerLocked(o)
	return r, true
}

// wait is the long-poll rule: with a cursor that differs from the current id
// it returns the current message at once; otherwise it registers o, which is
// removed again when the next message wakes it.
func (c *Channel) wait(o *Observer, since *uint64) (*Envelope, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted || c.hub.closed.Load() {
		return nil, false
	}
	if since != nil && *since != c.seq.current.ID {
		return c.seq.current, true
	}
	c.registerLocked(o)
	return nil, true
}

// Unsubscribe removes o from the channel; it is safe to call more than once.
func (c *Channel) Unsubscribe(o *Observer) {
	c.mu.Lock()
	c.unregisterLocked(o)
	unused := c.unusedLocked() && c.seq.current.ID == 0
	c.mu.Unlock()
	if unused {
		c.hub.dropEmpty(c) // a channel nobody published on is not worth its memory
	}
}

// registerLocked adds o to the observers. Requires c.mu held.
func (c *Channel) registerLocked(o *Observer) {
	o.channel = c
	o.index = len(c.observers)
	c.observers = append(c.observers, o)
	c.counts[o.transport]++
	c.hub.stats.observers[o.transport].Add(1)
}

// unregisterLocked removes o from the observers, if it is one. Requires
// c.mu held.
func (c *Channel) unregisterLocked(o *Observer) {
	i := o.index
	if i < 0 || i >= len(c.observers) || c.observers[i] != o {
		return
	}
	last := len(c.observers) - 1
	c.observers[i] = c.observers[last]
	c.observers[i].index = i
	c.observers[last] = nil
	c.observers = c.observers[:last]
	o.index = -1
	c.counts[o.transport]--
	c.hub.stats.observers[o.transport].Add(-1)
	if len(c.observers) == 0 {
		c.idleSince = time.Now()
		if cap(c.observers) > 1024 {
			c.observers = nil
		}
	}
}

// applyLocked adds e, which the sequencer has just made current, to the
// history and notifies every observer. Requires c.mu held.
func (c *Channel) applyLocked(e *Envelope) {
	if max := c.hub.history; len(c.history) >= max {
		n := copy(c.history, c.history[len(c.history)-max+1:])
		clear(c.history[n:])
		c.history = c.history[:n]
	}
	c.history = append(c.history, e)

	var delivered [numTransports]uint64
	// Backwards, so removing by swapping with the last never skips one.
	for i := len(c.observers) - 1; i >= 0; i-- {
		o := c.observers[i]
		if !o.push(e) {
			c.unregisterLocked(o)
			o.close(ErrSlowConsumer)
			c.hub.stats.slowConsumers.Add(1)
			continue
		}
		delivered[o.transport]++
		if o.transport == Poll { // a long-poll answers once, like the seed's callbacks
			c.unregisterLocked(o)
		}
	}
	for t, n := range delivered {
		if n > 0 {
			c.hub.stats.delivered[t].Add(n)
		}
	}
}

// load installs the state read from the store, then applies what arrived meanwhile.
func (c *Channel) load(msgs []Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadLocked(msgs)
}

// loadLocked is load. Requires c.mu held.
func (c *Channel) loadLocked(msgs []Message) {
	msgs = msgs[max(0, len(msgs)-c.hub.history):]
	c.history = make([]*Envelope, 0, len(msgs))
	for _, m := range msgs {
		c.history = append(c.history, NewEnvelope(m))
	}
	cur := NewEnvelope(Message{Channel: c.name})
	if len(c.history) > 0 {
		cur = c.history[len(c.history)-1]
	}
	c.idleSince = time.Now()
	for _, e := range c.seq.startLocked(cur) {
		c.deliverLocked(e)
	}
}

// wakePollsLocked answers every waiting long-poll with the current
// message. Requires c.mu held.
func (c *Channel) wakePollsLocked() {
	for i := len(c.observers) - 1; i >= 0; i-- {
		if o := c.observers[i]; o.transport == Poll {
			c.unregisterLocked(o)
			o.push(c.seq.current)
		}
	}
}

// closeAll closes every observer with reason.
func (c *Channel) closeAll(reason error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.observers) > 0 {
		o := c.observers[len(c.observers)-1]
		c.unregisterLocked(o)
		o.close(reason)
	}
}
