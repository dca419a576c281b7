package presence

import (
	"context"
	"time"

	"github.com/announce/announce/announce"
)

// Counts are observers per transport.
type Counts struct {
	Poll int `json:"poll"`
	SSE  int `json:"sse"`
	WS   int `json:"ws"`
}

// Total is the number of observers over every transport.
func (c Counts) Total() int { return c.Poll + c.SSE + c.WS }

// Plus returns the sum of c and o.
func (c Counts) Plus(o Counts) Counts {
	return Counts{Poll: c.Poll + o.Poll, SSE: c.SSE + o.SSE, WS: c.WS + o.WS}
}

func (c *Counts) add(t announce.Transport, d int) {
	switch t {
	case announce.Poll:
		c.Poll += d
	case announce.SSE:
		c.SSE += d
	case announce.WebSocket:
		c.WS += d
	}
}

// MaxNames bounds the names one node reports per channel and the names a
// Snapshot lists, so a channel with a crowd of named observers stays cheap
// to share and to answer. Counts are never truncated.
const MaxNames = 1000

// State is one node's presence on one channel.
type State struct {
	Counts
	// Names are the distinct names of the node's observers, sorted, at
	// most MaxNames of them.
	Names []string `json:"names,omitempty"`
}

// Empty reports whether the node has no observer on the channel.
func (s State) Empty() bool { return s.Total() == 0 }

// Snapshot is a channel's presence over the whole service.
type Snapshot struct {
	Channel   string `json:"channel"`
	Observers Counts `json:"observers"`
	Total     int    `json:"total"`
	// Names are the distinct names observers chose, sorted, at most MaxNames.
	Names []string `json:"names"`
	// Partial reports that other nodes' presence could not be read (the
	// backend is unreachable): the snapshot shows this node only.
	Partial bool `json:"partial,omitempty"`
}

// Event is a join or a leave, as streaming observers receive it. It is not
// a message: it has no id and is not kept in any history.
type Event struct {
	Event     string `json:"event"` // "join" or "leave"
	Channel   string `json:"channel"`
	Name      string `json:"name"`
	Transport string `json:"transport"`
	// Observers and Total are the channel's counts after the event, over
	// the service as the node that saw it knew them (other nodes' counts
	// may be a moment old).
	Observers Counts `json:"observers"`
	Total     int    `json:"total"`
}

// Backend shares presence between the nodes of one service (announce/redis
// implements it). The Tracker calls it only from its own goroutines, with a
// deadline on every call.
type Backend interface {
	// Put replaces this node's entry of each channel in states with its
	// state, or removes the entry when the state is Empty. An entry that is
	// not Put again within ttl is ignored by readers and removed: that is how
	// a crashed node's observers age out.
	Put(ctx context.Context, node string, states map[string]State, ttl time.Duration) error
	// Read returns the live entries of channel, by node.
	Read(ctx context.Context, channel string) (map[string]State, error)
	// Broadcast sends an encoded presence Event of channel to every node's
	// Listen function, this node's included.
	Broadcast(ctx context.Context, node, channel string, event []byte) error
	// Listen starts handing broadcasts to fn (which must not block) until
	// Close; it is called at most once. Broadcasts are best effort: some may
	// be lost while the backend reconnects.
	Listen(fn func(node, channel string, event []byte)) error
	// Close releases the backend.
	Close() error
}

// Stats are the tracker's counters.
type Stats struct {
	Sessions        int    // sessions present on this node
	EventsDropped   uint64 // join and leave events dropped because the emitter was behind
	ListenerDropped uint64 // events not delivered to a listener whose queue was full
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	n := t.live
	t.mu.Unlock()
	return Stats{Sessions: n, EventsDropped: t.eventsDropped.Load(), ListenerDropped: t.listenerDropped.Load()}
}
