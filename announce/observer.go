package announce

import (
	"sync"
	"time"
)

// Transport names how an observer is attached.
type Transport uint8

// The transports, side by side on every channel.
const (
	Poll Transport = iota
	SSE
	WebSocket
	numTransports
)

// Transports lists every transport, for counting.
var Transports = [numTransports]Transport{Poll, SSE, WebSocket}

func (t Transport) String() string {
	switch t {
	case Poll:
		return "poll"
	case SSE:
		return "sse"
	case WebSocket:
		return "ws"
	}
	return "unknown"
}

// Observer is one registered client of a channel. The channel pushes
// envelopes onto its bounded queue without ever waiting; the transport's
// single writer drains it. Its queue grows on demand, so an idle observer
// costs only the struct.
type Observer struct {
	transport Transport
	limit     int
	ready     chan struct{} // capacity 1: "the queue is not empty"
	done      chan struct{} // closed by close
	notify    func()        // instead of ready and done (NewNotifyingObserver)

	mu     sync.Mutex
	queue  []*Envelope // guarded by mu
	since  time.Time   // when the queue last became non-empty; guarded by mu
	reason error       // why it was closed; guarded by mu

	// The channel it is registered on and its index in the channel's
	// registry; guarded by that channel's mu.
	channel *Channel
	index   int
}

// NewObserver returns an observer whose queue holds at most limit envelopes
// (DefaultQueue when limit <= 0) before it is closed as a slow consumer.
func NewObserver(t Transport, limit int) *Observer {
	if limit <= 0 {
		limit = DefaultQueue
	}
	return &Observer{transport: t, limit: limit, ready: make(chan struct{}, 1), done: make(chan struct{}), index: -1}
}

// NewNotifyingObserver returns an observer that calls notify, instead of
// signalling Ready or closing Done, each time it queues an envelope and
// once when it is closed, so that no goroutine need wait on it. notify is
// called without the observer's lock held, but possibly with the channel's:
// it must return at once and not call back into the channel.
func NewNotifyingObserver(t Transport, limit int, notify func()) *Observer {
	if limit <= 0 {
		limit = DefaultQueue
	}
	return &Observer{transport: t, limit: limit, notify: notify, index: -1}
}

// Transport reports how the observer is attached.
func (o *Observer) Transport() Transport { return o.transport }

// Ready is signalled when envelopes are queued; call Take after it fires.
// It is nil (never ready) for a notifying observer.
func (o *Observer) Ready() <-chan struct{} { return o.ready }

// Done is closed when the observer is closed; Err then tells why.
// It is nil (never done) for a notifying observer.
func (o *Observer) Done() <-chan struct{} { return o.done }

// Err returns the reason the observer was closed, or nil while it is open.
func (o *Observer) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reason
}

// Take removes and returns every queued envelope, appending to buf.
func (o *Observer) Take(buf []*Envelope) []*Envelope {
	o.mu.Lock()
	buf = append(buf, o.queue...)
	clear(o.queue)
	o.queue = o.queue[:0]
	if cap(o.queue) > 64 {
		o.queue = nil // a burst is over: give its memory back
	}
	o.mu.Unlock()
	return buf
}

// slowGrace and burstFactor tell a slow consumer from a burst: a queue
// past its limit overflows only once its oldest envelope has waited
// slowGrace (the writer is stuck, not merely not yet scheduled after a
// group commit woke hundreds of publishers at once), or at burstFactor
// times the limit whatever the time.
const (
	slowGrace   = 500 * time.Millisecond
	burstFactor = 4
)

// push queues e; it reports false when the queue overflows or the observer closed.
func (o *Observer) push(e *Envelope) bool {
	o.mu.Lock()
	n := len(o.queue)
	if o.reason != nil || n >= o.limit && (n >= burstFactor*o.limit || time.Since(o.since) >= slowGrace) {
		o.mu.Unlock()
		return false
	}
	if n == 0 {
		o.since = time.Now()
	}
	o.queue = append(o.queue, e)
	o.mu.Unlock()
	if o.notify != nil {
		o.notify()
		return true
	}
	select {
	case o.ready <- struct{}{}:
	default:
	}
	return true
}

// close marks the observer closed with reason, once.
func (o *Observer) close(reason error) {
	o.mu.Lock()
	if o.reason != nil {
		o.mu.Unlock()
		return
	}
	o.reason = reason
	o.mu.Unlock()
	if o.notify != nil {
		o.notify()
		return
	}
	close(o.done)
}
