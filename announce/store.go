package announce

import (
	"context"
	"time"
)

// Store keeps every channel's id sequence, current message and history.
//
// Guarantees every implementation gives:
//   - Append assigns the channel's next id (last id + 1, starting at 1), makes
//     the message the channel's current message and adds it to the history,
//     trimmed to the store's history limit, all in one atomic step.
//   - When Append returns nil the message is committed (durably, for durable
//     stores), and so is every lower id of that channel: concurrent Appends on
//     one channel get distinct consecutive ids.
//   - On failure nothing is stored and the error wraps ErrUnavailable when the
//     backend cannot be reached.
//   - Reads see every committed Append.
type Store interface {
	// Append stores content as the channel's next message, accepted at the given time.
	Append(ctx context.Context, channel, content string, at time.Time) (Message, error)
	// Current returns the channel's current message; ID 0 (with Channel set) when none.
	Current(ctx context.Context, channel string) (Message, error)
	// Since returns at most limit messages with id > since still in history, oldest first.
	Since(ctx context.Context, channel string, since uint64, limit int) ([]Message, error)
	// Close flushes and releases the store.
	Close() error
}

// Pinger is implemented by stores that can report whether their backend is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// BrokerSink receives what a Broker carries from other nodes. Hub implements it.
type BrokerSink interface {
	// Deliver hands over a message published on any node. It never blocks on observers.
	Deliver(m Message)
	// Resync tells the sink that messages of channel may have been missed
	// (for example after a reconnect) and should be recovered from the Store.
	Resync(channel string)
	// Deleted tells the sink that a node deleted channel from the shared
	// Store: its observers here are closed as they are on that node.
	Deleted(channel string)
}

// Broker carries published messages between nodes sharing one Store.
//
// Watch is called before a channel's state is loaded from the Store, so no
// message is lost between load and live delivery; duplicates are dropped by id.
type Broker interface {
	// Watch starts delivering channel's messages to the sink; idempotent.
	Watch(ctx context.Context, channel string) error
	// Unwatch stops delivering channel's messages.
	Unwatch(channel string)
	// Close stops the broker.
	Close() error
}
