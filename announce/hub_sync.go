package announce

import "context"

// The hub's side of delivery across nodes: messages from the broker,
// recovery after the broker missed some, and cursors from clients that
// other nodes served ahead of this one. Putting them in id order is each
// channel's sequencer's work (sequencer.go).

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
		go c.fill()
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
	_ = c.catchUp(ctx)
}
