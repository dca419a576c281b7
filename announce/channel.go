package announce

import (
	"sync"
	"sync/atomic"
	"time"
)

// Channel is the subject: it holds the current message and a short history
// and notifies its observers, in id order, of every new message.
type Channel struct {
	name  string
	hub   *Hub
	ready chan struct{} // closed once the state is loaded (or failed)
	err   error         // load error; set before ready is closed

	mu        sync.Mutex
	current   *Envelope
	history   []*Envelope // oldest first, consecutive ids
	observers []*Observer
	counts    [numTransports]int
	pending   map[uint64]*Envelope // arrived ahead of a gap
	filling   bool                 // a gap fill is scheduled
	gapWaits  int                  // fills that waited for local publishes to close the gap
	// publishing counts this node's publishes between the store's commit
	// and their delivery here: a gap may be theirs, still on its way.
	publishing atomic.Int32
	idleSince  time.Time
	evicted    bool
	lruPrev    *Channel // neighbours in the shard's lru; guarded by the shard's mu
	lruNext    *Channel
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
	return c.current
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
	msgs, _ := c.after(since)
	if limit > 0 && len(msgs) > limit {
		msgs = msgs[:limit]
	}
	return msgs
}

// after returns a copy of the history with id > since and whether the
// cursor is older than the history. Requires c.mu.
func (c *Channel) after(since uint64) ([]*Envelope, bool) {
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
	switch {
	case since == nil || *since > c.current.ID:
		if c.current.ID > 0 {
			r.Messages = []*Envelope{c.current}
		}
	default:
		r.Messages, r.Truncated = c.after(*since)
	}
	c.register(o)
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
	if since != nil && *since != c.current.ID {
		return c.current, true
	}
	c.register(o)
	return nil, true
}

// Unsubscribe removes o from the channel; it is safe to call more than once.
func (c *Channel) Unsubscribe(o *Observer) {
	c.mu.Lock()
	c.unregister(o)
	unused := c.unusedLocked() && c.current.ID == 0
	c.mu.Unlock()
	if unused {
		c.hub.dropEmpty(c) // a channel nobody published on is not worth its memory
	}
}

// register requires c.mu.
func (c *Channel) register(o *Observer) {
	o.channel = c
	o.index = len(c.observers)
	c.observers = append(c.observers, o)
	c.counts[o.transport]++
	c.hub.stats.observers[o.transport].Add(1)
}

// unregister requires c.mu.
func (c *Channel) unregister(o *Observer) {
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

// deliver applies e in id order: older ids are duplicates and dropped, ids
// past a gap wait in pending until the gap is filled.
func (c *Channel) deliver(e *Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deliverLocked(e)
}

func (c *Channel) deliverLocked(e *Envelope) {
	if c.current == nil { // still loading: keep for after the load
		c.hold(e)
		return
	}
	switch next := c.current.ID + 1; {
	case e.ID < next:
		return
	case e.ID > next:
		c.hold(e)
		c.scheduleFill()
		return
	}
	c.apply(e)
	c.applyPending()
}

// applyPending applies the held messages that now follow the current one
// and drops those it passed. Requires c.mu.
func (c *Channel) applyPending() {
	for len(c.pending) > 0 {
		n, ok := c.pending[c.current.ID+1]
		if !ok {
			break
		}
		delete(c.pending, n.ID)
		c.apply(n)
	}
	if len(c.pending) == 0 {
		c.gapWaits = 0
	}
	for id := range c.pending {
		if id <= c.current.ID {
			delete(c.pending, id)
		}
	}
}

// skipTo applies e although the ids before it are missing, because the store
// no longer has them: waiting for them would stall the channel for good. The
// history restarts at e, as it must hold consecutive ids.
func (c *Channel) skipTo(e *Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil || e.ID <= c.current.ID+1 {
		c.deliverLocked(e)
		return
	}
	clear(c.history)
	c.history = c.history[:0]
	c.apply(e)
	c.applyPending()
}

func (c *Channel) hold(e *Envelope) {
	if c.pending == nil {
		c.pending = make(map[uint64]*Envelope)
	}
	c.pending[e.ID] = e
}

// scheduleFill recovers a gap from the store if it is still open after a
// short grace period (a concurrent publisher is usually about to deliver it).
// Requires c.mu.
func (c *Channel) scheduleFill() {
	if c.filling {
		return
	}
	c.filling = true
	time.AfterFunc(c.hub.gapGrace, func() { c.hub.fill(c) })
}

// maxGapWaits bounds how many fills a gap waits for local publishes (each
// a gap grace apart) before its ids are taken as lost.
const maxGapWaits = 10

// awaitLocal reports whether the ids after last and before first, which
// the store no longer holds, may still be brought by this node's
// publishes in flight (committed, not yet delivered: a burst of commits
// can outrun the store's history before its publishers run again). Then
// the fill waits for them instead of skipping, a bounded number of times.
func (c *Channel) awaitLocal(last, first uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	missing := first - last - 1
	for id := range c.pending {
		if id > last && id < first {
			missing-- // arrived, held behind the gap
		}
	}
	if p := c.publishing.Load(); p > 0 && uint64(p) >= missing && c.gapWaits < maxGapWaits {
		c.gapWaits++
		return true
	}
	c.gapWaits = 0
	return false
}

// apply makes e current and notifies every observer. Requires c.mu.
func (c *Channel) apply(e *Envelope) {
	c.current = e
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
			c.unregister(o)
			o.close(ErrSlowConsumer)
			c.hub.stats.slowConsumers.Add(1)
			continue
		}
		delivered[o.transport]++
		if o.transport == Poll { // a long-poll answers once, like the seed's callbacks
			c.unregister(o)
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

// reset replaces the state with the store's after the store lost messages
// this node had seen (a Redis restarted without persistence): ids restart,
// and waiting for the old sequence would stall the channel for good. The
// new sequence's messages (ids from 1) are delivered to the observers like
// any new message: they were dropped as old ids when they arrived, and an
// observer must not miss them. It reports false, changing nothing, when c
// is no longer at id was (another reset or a new message got there first).
func (c *Channel) reset(was uint64, msgs []Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil || c.current.ID != was {
		return false
	}
	c.pending = nil
	c.loadLocked(nil)
	for _, m := range msgs[max(0, len(msgs)-c.hub.history):] {
		c.apply(NewEnvelope(m))
	}
	if len(msgs) == 0 {
		for i := len(c.observers) - 1; i >= 0; i-- {
			if o := c.observers[i]; o.transport == Poll {
				c.unregister(o)
				o.push(c.current) // wake it: the current message changed
			}
		}
	}
	return true
}

func (c *Channel) loadLocked(msgs []Message) {
	msgs = msgs[max(0, len(msgs)-c.hub.history):]
	c.history = make([]*Envelope, 0, len(msgs))
	for _, m := range msgs {
		c.history = append(c.history, NewEnvelope(m))
	}
	if len(c.history) > 0 {
		c.current = c.history[len(c.history)-1]
	} else {
		c.current = NewEnvelope(Message{Channel: c.name})
	}
	c.idleSince = time.Now()
	pending := c.pending
	c.pending = nil
	for _, e := range pending {
		c.deliverLocked(e)
	}
}

// lastID returns the current id, or 0 while loading.
func (c *Channel) lastID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		return 0
	}
	return c.current.ID
}

// closeAll closes every observer with reason.
func (c *Channel) closeAll(reason error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.observers) > 0 {
		o := c.observers[len(c.observers)-1]
		c.unregister(o)
		o.close(reason)
	}
}
