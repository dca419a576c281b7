package presence

import (
	"context"
	"encoding/json"
	"time"

	"github.com/announce/announce/announce"
)

// Listener receives a channel's join and leave events, each encoded once as
// JSON and shared by every listener. Close it when the observer leaves.
type Listener struct {
	t       *Tracker
	channel string
	c       chan []byte
	notify  func() // called after each event queued on c; may be nil
}

// Listen returns a listener of channel's presence events, or nil when
// events are off. A listener registered before its own session's
// Connected receives its own join.
func (t *Tracker) Listen(channel string) *Listener { return t.ListenNotify(channel, nil) }

// ListenNotify is Listen, calling notify (when not nil) after each event it
// queues, so that no goroutine need wait on C. notify runs with the
// tracker locked: it must return at once.
func (t *Tracker) ListenNotify(channel string, notify func()) *Listener {
	if !t.events {
		return nil
	}
	l := &Listener{t: t, channel: channel, c: make(chan []byte, listenerQueue), notify: notify}
	t.mu.Lock()
	set := t.listeners[channel]
	if set == nil {
		set = make(map[*Listener]struct{})
		t.listeners[channel] = set
	}
	set[l] = struct{}{}
	t.mu.Unlock()
	return l
}

// C delivers the events' JSON; nil (never ready) on a nil listener.
func (l *Listener) C() <-chan []byte {
	if l == nil {
		return nil
	}
	return l.c
}

// Close stops delivery; safe on a nil listener and more than once.
func (l *Listener) Close() {
	if l == nil {
		return
	}
	t := l.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if set := t.listeners[l.channel]; set != nil {
		delete(set, l)
		if len(set) == 0 {
			delete(t.listeners, l.channel)
		}
	}
}

// emitLocked queues a join or leave for the emitter, dropping it when the
// emitter is behind. Requires t.mu held.
func (t *Tracker) emitLocked(kind string, s announce.Session, local Counts) {
	if !t.events {
		return
	}
	e := emission{Event: Event{Event: kind, Channel: s.Channel, Name: s.Name, Transport: s.Transport.String()}, local: local}
	select {
	case t.emitQ <- e:
	default:
		t.eventsDropped.Add(1)
	}
}

// emitter completes each event with the other nodes' counts, delivers it to
// this node's listeners and broadcasts it to the other nodes.
func (t *Tracker) emitter() {
	defer t.wg.Done()
	for {
		select {
		case <-t.quit:
			for { // what was queued before the stop, the last leaves among it
				select {
				case e := <-t.emitQ:
					t.send(e)
				default:
					return
				}
			}
		case e := <-t.emitQ:
			t.send(e)
		}
	}
}

func (t *Tracker) send(e emission) {
	e.Observers = e.local.Plus(t.othersOf(e.Channel))
	e.Total = e.Observers.Total()
	b, _ := json.Marshal(e.Event) // an Event always encodes
	t.deliver(e.Channel, b)
	if t.backend == nil {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	defer cancel()
	if err := t.backend.Broadcast(ctx, t.node, e.Channel, b); err != nil {
		t.log.Debug("presence: broadcasting an event failed", "channel", e.Channel, "err", err)
	}
}

// othersOf returns the other nodes' counts of channel, read from the
// backend at most once per othersFresh. It runs on the emitter only.
func (t *Tracker) othersOf(channel string) Counts {
	if t.backend == nil {
		return Counts{}
	}
	now := time.Now()
	if c, ok := t.others[channel]; ok && now.Sub(c.at) < othersFresh {
		return c.counts
	}
	if len(t.others) > 1024 { // forget stale entries so the cache follows the busy channels
		for ch, c := range t.others {
			if now.Sub(c.at) >= othersFresh {
				delete(t.others, ch)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.ctx, time.Second)
	states, err := t.backend.Read(ctx, channel)
	cancel()
	var sum Counts
	for node, s := range states {
		if node != t.node {
			sum = sum.Plus(s.Counts)
		}
	}
	if err == nil {
		t.others[channel] = cachedCounts{counts: sum, at: now}
	}
	return sum
}

// remote delivers another node's broadcast to this node's listeners.
func (t *Tracker) remote(node, channel string, event []byte) {
	if node == t.node {
		return // delivered here when it happened
	}
	t.deliver(channel, event)
}

// deliver hands event to every listener of channel without waiting.
func (t *Tracker) deliver(channel string, event []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for l := range t.listeners[channel] {
		select {
		case l.c <- event:
			if l.notify != nil {
				l.notify()
			}
		default:
			t.listenerDropped.Add(1)
		}
	}
}
