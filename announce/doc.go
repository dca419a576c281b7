// Package announce is the domain of the announcement server: channels are
// subjects in the observer pattern, holding a current message and a short
// history, and notifying their observers when a new message is published.
//
// Concurrency contract:
//   - A Channel's lock guards its observer registry, current message and
//     history only; no I/O happens under it.
//   - Publishing never waits on an observer: delivery puts a shared,
//     pre-encoded Envelope on each observer's bounded queue, and an observer
//     whose queue is full is closed with ErrSlowConsumer.
//   - Subscribe registers an observer and reads its replay under one lock,
//     so no message falls between replay and live delivery and none comes twice.
//   - The Store assigns ids; a Channel's sequencer applies messages strictly
//     in id order, buffering early arrivals and filling gaps from the Store
//     (sequencer.go).
//
// Locks, in the order they may be taken (never the other way round):
//
//	Hub shard mu  →  Channel.mu  →  Observer.mu
//
// A shard's lock guards its channel map and lru; it is held only to find,
// add, evict or remove a channel. Channel.mu guards the channel's state,
// its sequencer's and its observers' place in its registry. Observer.mu
// guards the observer's queue. None of these is held across a Store or
// Broker call. The hub's channel count lock (limits) is held across the
// store's count, so that one caller reads it; it, MemoryStore.mu and
// MemoryIdempotency.mu take no other lock.
//
// Convention: a function whose name ends in Locked is called with the lock
// its comment names held ("Requires c.mu held."); it never takes that lock
// itself. A field says which lock guards it ("guarded by mu").
package announce
