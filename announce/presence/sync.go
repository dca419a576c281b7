package presence

import (
	"context"
	"time"
)

// markDirtyLocked notes that channel's backend entry must be rewritten.
// Requires t.mu held.
func (t *Tracker) markDirtyLocked(channel string) {
	if t.backend == nil {
		return
	}
	t.dirty[channel] = struct{}{}
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// sync is the syncer: it writes changed channels as soon as they change
// (one backend round trip carries every change since the last one), and
// every heartbeat rewrites all of this node's entries so they stay live.
func (t *Tracker) sync() {
	defer t.wg.Done()
	tick := time.NewTicker(t.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-t.quit:
			return
		case <-t.kick:
			t.flush(false)
		case <-tick.C:
			t.flush(true)
		}
	}
}

// flush writes the dirty channels' states, and with all every channel this
// node has observers on. A failed write leaves them dirty for the next try.
func (t *Tracker) flush(all bool) {
	t.mu.Lock()
	states := make(map[string]State, len(t.dirty))
	for ch := range t.dirty {
		states[ch] = t.stateLocked(ch)
	}
	clear(t.dirty)
	if all {
		for ch := range t.local {
			if _, ok := states[ch]; !ok {
				states[ch] = t.stateLocked(ch)
			}
		}
	}
	t.mu.Unlock()
	for ch, st := range states {
		if st.Empty() && !t.written[ch] {
			delete(states, ch) // nothing to remove
		}
	}
	if len(states) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.heartbeat)
	err := t.backend.Put(ctx, t.node, states, 3*t.heartbeat)
	cancel()
	if err != nil {
		if !t.putFailing.Swap(true) {
			t.log.Warn("presence: writing this node's presence failed; retrying", "err", err)
		}
		t.mu.Lock()
		for ch := range states {
			t.dirty[ch] = struct{}{}
		}
		t.mu.Unlock()
		return
	}
	if t.putFailing.Swap(false) {
		t.log.Info("presence: writing this node's presence works again")
	}
	for ch, st := range states {
		if st.Empty() {
			delete(t.written, ch)
		} else {
			t.written[ch] = true
		}
	}
}
