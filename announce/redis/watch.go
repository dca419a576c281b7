package redis

import (
	"context"
	"errors"
	"time"

	"github.com/announce/announce/announce"
)

// Subscription bookkeeping. Redis answers SUBSCRIBE and UNSUBSCRIBE on the
// pub/sub connection, in command order, and the reader matches the replies
// to watches by topic. Two rules keep that matching exact:
//
//   - Commands go out under Broker.subMu in the order the maps change, so a
//     late UNSUBSCRIBE can never undo a newer SUBSCRIBE of the same topic.
//   - After an UNSUBSCRIBE the topic is "leaving" until its reply is read; a
//     new Watch of it waits for that first. Otherwise the reply to an older
//     SUBSCRIBE still in flight could confirm the new watch before Redis has
//     processed its SUBSCRIBE, and a message published in between would be
//     lost although Watch had returned. (This happens when a hub drops an
//     idle channel and an observer comes back a moment later.)
//
// A lost connection loses its unread replies: pending watches are then
// confirmed by go-redis's resubscription on the new connection, and leaving
// topics are released.

// errUnwatched ends a Watch that an Unwatch overtook.
var errUnwatched = errors.New("redis: channel unwatched while subscribing")

// watch is one watched channel. Its fields are guarded by Broker.mu.
type watch struct {
	channel   string
	confirmed chan struct{} // closed once confirmed (ok) or failed (err set first)
	ok        bool
	err       error
}

// Watch implements announce.Broker. It returns once Redis confirmed the
// subscription, so a message published after Watch returns reaches the sink.
// It waits at most about OpTimeout (twice that right after an Unwatch of
// the same channel). On error the channel is not watched; the error wraps
// announce.ErrUnavailable when Redis cannot be reached.
func (b *Broker) Watch(ctx context.Context, channel string) error {
	if b.router != nil {
		return b.router.watch(ctx, channel)
	}
	topic := b.keys.topic(channel)
	w, err := b.subscribe(ctx, topic, channel)
	if err != nil {
		return err
	}
	// A concurrent Watch of the same channel waits for the same confirmation.
	timeout := time.NewTimer(b.opTimeout)
	defer timeout.Stop()
	select {
	case <-w.confirmed:
	case <-ctx.Done():
		b.abandon(topic, w, unavailable("subscribe", ctx.Err()))
	case <-timeout.C:
		b.abandon(topic, w, unavailable("subscribe", context.DeadlineExceeded))
	case <-b.quit:
		b.abandon(topic, w, announce.ErrClosed)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return w.err
}

// subscribe returns channel's watch, sending SUBSCRIBE if it is new.
func (b *Broker) subscribe(ctx context.Context, topic, channel string) (*watch, error) {
	for {
		b.subMu.Lock()
		b.mu.Lock()
		gone := b.leaving[topic]
		w, ok := b.watched[topic]
		if gone == nil && !ok {
			w = &watch{channel: channel, confirmed: make(chan struct{})}
			b.watched[topic] = w
		}
		b.mu.Unlock()
		if gone != nil {
			b.subMu.Unlock()
			if err := b.awaitLeft(ctx, topic, gone); err != nil {
				return nil, err
			}
			continue
		}
		if !ok {
			sctx, cancel := context.WithTimeout(ctx, b.opTimeout)
			err := b.subscribeTopic(sctx, topic)
			cancel()
			if err != nil {
				b.failWatch(topic, w, unavailable("subscribe", err))
			}
		}
		b.subMu.Unlock()
		return w, nil
	}
}

// awaitLeft waits until the UNSUBSCRIBE of topic was answered. A reply that
// does not come within OpTimeout went down with its connection (the reader
// may not have noticed yet), so the topic is released anyway.
func (b *Broker) awaitLeft(ctx context.Context, topic string, gone chan struct{}) error {
	timeout := time.NewTimer(b.opTimeout)
	defer timeout.Stop()
	select {
	case <-gone:
	case <-timeout.C:
		b.mu.Lock()
		b.left(topic, gone)
		b.mu.Unlock()
	case <-ctx.Done():
		return unavailable("subscribe", ctx.Err())
	case <-b.quit:
		return announce.ErrClosed
	}
	return nil
}

// abandon fails a pending watch that timed out.
func (b *Broker) abandon(topic string, w *watch, err error) {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.failWatch(topic, w, err)
}

// failWatch ends a pending watch with err and unsubscribes its topic, so a
// late confirmation finds nothing to confirm. A watch confirmed or ended
// meanwhile is left alone. b.subMu must be held.
func (b *Broker) failWatch(topic string, w *watch, err error) {
	b.mu.Lock()
	if w.ok || w.err != nil {
		b.mu.Unlock()
		return
	}
	w.err = err
	close(w.confirmed)
	delete(b.watched, topic) // still w: replacing it needs w ended first
	b.mu.Unlock()
	b.leave(topic)
}

// Unwatch implements announce.Broker. It may wait up to OpTimeout when Redis
// is unreachable; do not call it under a lock.
func (b *Broker) Unwatch(channel string) {
	if b.router != nil {
		b.router.unwatch(channel)
		return
	}
	topic := b.keys.topic(channel)
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	w := b.watched[topic]
	delete(b.watched, topic)
	if w != nil && !w.ok && w.err == nil {
		w.err = errUnwatched
		close(w.confirmed)
	}
	b.mu.Unlock()
	if w != nil {
		b.leave(topic)
	}
}

// leave sends UNSUBSCRIBE for topic and marks it leaving until the reply is
// read. b.subMu must be held.
func (b *Broker) leave(topic string) {
	gone := make(chan struct{})
	b.mu.Lock()
	if old := b.leaving[topic]; old != nil {
		b.left(topic, old) // its reply comes before ours anyway
	}
	b.leaving[topic] = gone
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), b.opTimeout)
	defer cancel()
	// go-redis forgets the topic even when the command cannot be sent, so
	// no reconnect will resubscribe it. Unsent means no reply to wait for.
	if err := b.unsubscribeTopic(ctx, topic); err != nil {
		b.mu.Lock()
		b.left(topic, gone)
		b.mu.Unlock()
	}
}

// left releases a leaving topic and wakes the Watches waiting for it.
// b.mu must be held.
func (b *Broker) left(topic string, gone chan struct{}) {
	if b.leaving[topic] == gone {
		delete(b.leaving, topic)
		close(gone)
	}
}

// subscribed handles Redis's reply to a SUBSCRIBE; it runs on the reader.
func (b *Broker) subscribed(topic string) {
	b.mu.Lock()
	w := b.watched[topic]
	resync := false
	switch {
	case w == nil:
		// Unwatched or failed meanwhile; its UNSUBSCRIBE follows.
	case !w.ok:
		w.ok = true
		close(w.confirmed)
	default:
		// Subscribed again on a new connection: anything published while
		// the old one was failing never reached us, so the sink recovers it
		// from the history now that the new subscription is live.
		resync = true
	}
	b.mu.Unlock()
	if resync {
		b.sink.Resync(w.channel)
	}
}

// unsubscribed handles Redis's reply to an UNSUBSCRIBE; it runs on the reader.
func (b *Broker) unsubscribed(topic string) {
	b.mu.Lock()
	if gone := b.leaving[topic]; gone != nil {
		b.left(topic, gone)
	}
	b.mu.Unlock()
}

// connectionLost releases every leaving topic: their replies went down with
// the connection. It runs on the reader.
func (b *Broker) connectionLost() {
	b.mu.Lock()
	for topic, gone := range b.leaving {
		b.left(topic, gone)
	}
	b.mu.Unlock()
}

// subscribeTopic sends SUBSCRIBE, or SSUBSCRIBE on a Cluster shard.
func (b *Broker) subscribeTopic(ctx context.Context, topic string) error {
	if b.sharded {
		return b.ps.SSubscribe(ctx, topic)
	}
	return b.ps.Subscribe(ctx, topic)
}

// unsubscribeTopic sends UNSUBSCRIBE, or SUNSUBSCRIBE on a Cluster shard.
func (b *Broker) unsubscribeTopic(ctx context.Context, topic string) error {
	if b.sharded {
		return b.ps.SUnsubscribe(ctx, topic)
	}
	return b.ps.Unsubscribe(ctx, topic)
}
