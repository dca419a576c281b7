package announce

import (
	"context"
	"time"
)

// The hub's side of delivery across nodes: messages from the broker, gaps
// in the id sequence recovered from the store, and cursors from clients
// that other nodes served ahead of this one.

// Deliver implements BrokerSink: a message from any node reaches this node's observers.
func (h *Hub) Deliver(m Message) {
	c := h.lookup(m.Channel)
	if c == nil || m.ID <= c.lastID() {
		return // not watched here, or already delivered
	}
	c.deliver(NewEnvelope(m))
}

// Deleted implements BrokerSink: a channel deleted on another node closes
// its observers here too. Not on the broker's goroutine: forgetting a
// channel unwatches it, which waits on the broker.
func (h *Hub) Deleted(channel string) {
	go h.forget(channel, ErrDeleted)
}

// Resync implements BrokerSink: recover what the channel may have missed.
func (h *Hub) Resync(channel string) {
	if c := h.lookup(channel); c != nil {
		go h.fill(c)
	}
}

// CatchUp brings c up to a client's cursor that is ahead of it; call it
// before answering the client (Subscribe and Wait do). A client moving from
// another node may carry an id this node has not received yet (pub/sub lags
// the store by a moment); answering it as "ahead, so the store was reset"
// would hand it an older message and make it start over. The store tells
// the two cases apart. When the store cannot be read, c stays as it is.
func (h *Hub) CatchUp(ctx context.Context, c *Channel, since uint64) {
	if since <= c.lastID() || h.broker == nil {
		return // only a node fed by a broker can lag behind its store
	}
	_ = h.catchUpFromStore(ctx, c)
}

// fill reads the messages after the channel's current id from the store and
// applies them, closing any gap.
func (h *Hub) fill(c *Channel) {
	c.mu.Lock()
	c.filling = false
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.catchUpFromStore(ctx, c); err != nil {
		h.log.Warn("gap fill failed; retrying", "channel", c.name, "err", err)
		c.mu.Lock()
		if len(c.pending) > 0 {
			c.scheduleFill()
		}
		c.mu.Unlock()
	}
}

// catchUpFromStore applies what the store has after c's current id, and
// resets c when the store's sequence went back.
func (h *Hub) catchUpFromStore(ctx context.Context, c *Channel) error {
	last := c.lastID()
	msgs, err := h.store.Since(ctx, c.name, last, 0)
	if err != nil {
		return err
	}
	if len(msgs) == 0 && last > 0 {
		return h.resetIfBehind(ctx, c, last)
	}
	for i, m := range msgs {
		if m.ID <= c.lastID() {
			continue
		}
		h.stats.gapsFilled.Add(1)
		if i == 0 && m.ID > last+1 && c.awaitLocal(last, m.ID) {
			c.deliver(NewEnvelope(m)) // held; the gap schedules the next fill
			continue
		}
		if i == 0 && m.ID > last+1 {
			// Ids last+1 .. m.ID-1 are older than the store's history: gone.
			h.log.Warn("messages lost beyond history", "channel", c.name, "from", last+1, "to", m.ID-1)
			c.skipTo(NewEnvelope(m))
			continue
		}
		c.deliver(NewEnvelope(m))
	}
	return nil
}

// resetIfBehind resets c when the store's sequence is behind what c has
// seen: the store was emptied and its ids started again.
func (h *Hub) resetIfBehind(ctx context.Context, c *Channel, last uint64) error {
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
	return h.catchUpFromStore(ctx, c)
}
