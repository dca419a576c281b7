package announce

import (
	"context"
	"sync/atomic"
	"time"
)

// sequencer puts one channel's messages in id order, whatever order they
// arrive in: from this node's publishes, the scheduler, the broker (other
// nodes) and the store after a gap. The store gives each channel the ids
// 1, 2, 3, ...; an id above the channel's current one is, on this node:
//
//	in flight  being published on this node (committed, or about to be)
//	           and not yet delivered here; counted (inFlight), its id unknown
//	pending    arrived while a lower id is missing; held in pending
//	delivered  applied in order: the current id is at or above it, and a
//	           later copy is a duplicate, dropped
//
// A missing id below a pending one is a gap. It usually closes by itself
// (its publisher is about to deliver it), so only when it is still open
// after gapGrace does a fill read the store after the current id and
// deliver what it holds. An id the store no longer has (older than its
// history) is waited for while enough local publishes are in flight, at
// most maxGapWaits fills, then given up: the channel skips to the store's
// oldest message and its history restarts there (skipTo).
//
// Until the channel is loaded there is no current id and every arrival is
// pending; the load installs the current id and delivers what follows it.
// A client's cursor ahead of the current id (a node fed by a broker lags
// its store by a moment) makes the channel catch up from the store before
// the client is answered (catchUp). When the store's sequence goes back
// (it was emptied and its ids started again) the channel is reset to the
// store's state (reset).
//
// Its fields are guarded by its Channel's mu, except inFlight. The Channel
// methods in this file run the protocol; none holds c.mu across a store read.
type sequencer struct {
	current  *Envelope            // the last delivered; nil until loaded; guarded by the channel's mu
	pending  map[uint64]*Envelope // arrived ahead of a gap; guarded by the channel's mu
	filling  bool                 // a gap fill is scheduled; guarded by the channel's mu
	gapWaits int                  // fills that waited for in-flight publishes; guarded by the channel's mu
	inFlight atomic.Int32         // this node's publishes from before their commit to their delivery
}

// offer is what the sequencer does with an arriving message.
type offer uint8

const (
	offerDropped offer = iota // a duplicate: delivered already
	offerHeld                 // pending: the channel is loading, or a gap is open
	offerGap                  // pending, and it opened a gap: schedule a fill
	offerNext                 // the next id: now current, to be applied
)

// maxGapWaits bounds how many fills a gap waits for local publishes (each
// a gap grace apart) before its ids are taken as lost.
const maxGapWaits = 10

// defaultGapGrace is how long a gap may stay open before it is filled from
// the store.
const defaultGapGrace = 200 * time.Millisecond

// lastIDLocked returns the current id, 0 while loading. Requires the channel's mu held.
func (s *sequencer) lastIDLocked() uint64 {
	if s.current == nil {
		return 0
	}
	return s.current.ID
}

// offerLocked takes e and tells the caller what became of it; with
// offerNext, e is current and the caller applies it, then the pending ids
// that follow (nextPendingLocked). Requires the channel's mu held.
func (s *sequencer) offerLocked(e *Envelope) offer {
	if s.current == nil {
		s.holdLocked(e)
		return offerHeld
	}
	switch next := s.current.ID + 1; {
	case e.ID < next:
		return offerDropped
	case e.ID > next:
		s.holdLocked(e)
		if s.filling {
			return offerHeld
		}
		s.filling = true
		return offerGap
	}
	s.current = e
	return offerNext
}

// nextPendingLocked makes the pending id after the current one current and
// returns it; when there is none it drops the pending ids it passed and
// returns nil. Requires the channel's mu held.
func (s *sequencer) nextPendingLocked() *Envelope {
	if n, ok := s.pending[s.current.ID+1]; ok {
		delete(s.pending, n.ID)
		s.current = n
		return n
	}
	if len(s.pending) == 0 {
		s.gapWaits = 0
	}
	for id := range s.pending {
		if id <= s.current.ID {
			delete(s.pending, id)
		}
	}
	return nil
}

func (s *sequencer) holdLocked(e *Envelope) {
	if s.pending == nil {
		s.pending = make(map[uint64]*Envelope)
	}
	s.pending[e.ID] = e
}

// setCurrentLocked makes e current whatever its id: at a skip, a reset or
// a delete. Requires the channel's mu held.
func (s *sequencer) setCurrentLocked(e *Envelope) { s.current = e }

// dropPendingLocked forgets the pending ids: they belong to a sequence the
// store no longer has. Requires the channel's mu held.
func (s *sequencer) dropPendingLocked() {
	s.pending = nil
	s.gapWaits = 0
}

// startLocked installs cur as the current message (at load or reset) and
// returns what was pending, for the caller to offer again. Requires the channel's mu held.
func (s *sequencer) startLocked(cur *Envelope) map[uint64]*Envelope {
	s.current = cur
	held := s.pending
	s.pending = nil
	return held
}

// busyLocked reports whether the sequencer holds ids to deliver or a fill
// is scheduled: the channel must stay cached. Requires the channel's mu held.
func (s *sequencer) busyLocked() bool { return len(s.pending) > 0 || s.filling }

// awaitInFlightLocked reports whether the ids after last and before first,
// which the store no longer holds, may still be brought by this node's
// publishes in flight (a burst of commits can outrun the store's history
// before its publishers run again). Then the fill waits for them instead
// of skipping, a bounded number of times. Requires the channel's mu held.
func (s *sequencer) awaitInFlightLocked(last, first uint64) bool {
	missing := first - last - 1
	for id := range s.pending {
		if id > last && id < first {
			missing-- // arrived, held behind the gap
		}
	}
	if p := s.inFlight.Load(); p > 0 && uint64(p) >= missing && s.gapWaits < maxGapWaits {
		s.gapWaits++
		return true
	}
	s.gapWaits = 0
	return false
}

// startPublish counts a publish of this node on c in flight, from before
// the store's commit until endPublish, after its delivery: a gap may be
// its id, still on its way.
func (c *Channel) startPublish() { c.seq.inFlight.Add(1) }

// endPublish ends what startPublish began.
func (c *Channel) endPublish() { c.seq.inFlight.Add(-1) }

// lastID returns the current id, or 0 while loading.
func (c *Channel) lastID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq.lastIDLocked()
}

// deliver applies e in id order: older ids are duplicates and dropped, ids
// past a gap wait in pending until the gap is filled.
func (c *Channel) deliver(e *Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deliverLocked(e)
}

// deliverLocked is deliver. Requires c.mu held.
func (c *Channel) deliverLocked(e *Envelope) {
	switch c.seq.offerLocked(e) {
	case offerNext:
		c.applyLocked(e)
		c.applyPendingLocked()
	case offerGap:
		c.scheduleFillLocked()
	}
}

// applyPendingLocked applies the pending ids that now follow the current
// one. Requires c.mu held.
func (c *Channel) applyPendingLocked() {
	for e := c.seq.nextPendingLocked(); e != nil; e = c.seq.nextPendingLocked() {
		c.applyLocked(e)
	}
}

// scheduleFillLocked fills the gap from the store once the grace has
// passed; offerLocked has set filling. Requires c.mu held.
func (c *Channel) scheduleFillLocked() {
	c.seq.filling = true
	time.AfterFunc(c.hub.gapGrace, c.fill)
}

// fill reads the messages after the current id from the store and applies
// them, closing any gap; on failure it tries again after the grace while
// something is pending.
func (c *Channel) fill() {
	c.mu.Lock()
	c.seq.filling = false
	c.mu.Unlock()
	h := c.hub
	if h.closed.Load() {
		return // the observers are gone, and the store may be
	}
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if err := c.catchUp(ctx); err != nil && !h.closed.Load() {
		h.log.Warn("gap fill failed; retrying", "channel", c.name, "err", err)
		c.mu.Lock()
		if len(c.seq.pending) > 0 && !c.seq.filling {
			c.scheduleFillLocked()
		}
		c.mu.Unlock()
	}
}

// catchUp applies what the store has after c's current id, and resets c
// when the store's sequence went back.
func (c *Channel) catchUp(ctx context.Context) error {
	h := c.hub
	last := c.lastID()
	msgs, err := h.store.Since(ctx, c.name, last, 0)
	if err != nil {
		return err
	}
	if len(msgs) == 0 && last > 0 {
		return c.resetIfBehind(ctx, last)
	}
	for i, m := range msgs {
		if m.ID <= c.lastID() {
			continue
		}
		h.stats.gapsFilled.Add(1)
		if i == 0 && m.ID > last+1 {
			// Ids last+1 .. m.ID-1 are older than the store's history.
			if c.awaitInFlight(last, m.ID) {
				c.deliver(NewEnvelope(m)) // held; the gap schedules the next fill
				continue
			}
			h.log.Warn("messages lost beyond history", "channel", c.name, "from", last+1, "to", m.ID-1)
			c.skipTo(NewEnvelope(m))
			continue
		}
		c.deliver(NewEnvelope(m))
	}
	return nil
}

func (c *Channel) awaitInFlight(last, first uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq.awaitInFlightLocked(last, first)
}

// skipTo applies e although the ids before it are missing, because the store
// no longer has them: waiting for them would stall the channel for good. The
// history restarts at e, as it must hold consecutive ids.
func (c *Channel) skipTo(e *Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq.current == nil || e.ID <= c.seq.current.ID+1 {
		c.deliverLocked(e)
		return
	}
	clear(c.history)
	c.history = c.history[:0]
	c.seq.setCurrentLocked(e)
	c.applyLocked(e)
	c.applyPendingLocked()
}

// resetIfBehind resets c when the store's sequence is behind what c has
// seen: the store was emptied and its ids started again.
func (c *Channel) resetIfBehind(ctx context.Context, last uint64) error {
	h := c.hub
	cur, err := h.store.Current(ctx, c.name)
	if err != nil || cur.ID >= last {
		return err
	}
	msgs, err := h.store.Since(ctx, c.name, 0, 0)
	if err != nil {
		return err
	}
	h.log.Warn("store sequence went back: channel reset", "channel", c.name, "was", last, "now", cur.ID)
	if !c.reset(last, msgs) {
		return nil // someone else reset it meanwhile
	}
	// Messages of the new sequence committed after the read above were
	// dropped on arrival as old ids; they are in the store now.
	return c.catchUp(ctx)
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
	if c.seq.current == nil || c.seq.current.ID != was {
		return false
	}
	c.seq.dropPendingLocked()
	c.loadLocked(nil)
	for _, m := range msgs[max(0, len(msgs)-c.hub.history):] {
		e := NewEnvelope(m)
		c.seq.setCurrentLocked(e)
		c.applyLocked(e)
	}
	if len(msgs) == 0 {
		c.wakePollsLocked() // the current message changed
	}
	return true
}
