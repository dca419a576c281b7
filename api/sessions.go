package api

import "sync"

// sessions are the connections served without a goroutine of their own
// (WebSocket, hijacked SSE and long-poll): nothing waits on s.shutdown for
// them, so Shutdown tells each one.
type sessions struct {
	mu       sync.Mutex
	next     uint64
	live     map[uint64]func()
	stopping bool
}

// add registers onShutdown, called once when the server begins shutting
// down; it reports false (registering nothing) when that already began.
func (ss *sessions) add(onShutdown func()) (id uint64, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.stopping {
		return 0, false
	}
	if ss.live == nil {
		ss.live = make(map[uint64]func())
	}
	ss.next++
	ss.live[ss.next] = onShutdown
	return ss.next, true
}

func (ss *sessions) remove(id uint64) {
	ss.mu.Lock()
	delete(ss.live, id)
	ss.mu.Unlock()
}

// shutdown calls every registered onShutdown, outside the lock.
func (ss *sessions) shutdown() {
	ss.mu.Lock()
	ss.stopping = true
	live := ss.live
	ss.live = nil
	ss.mu.Unlock()
	for _, f := range live {
		f()
	}
}
