package conn

import "sync"

// Registry holds the sessions served without a goroutine of their own
// (WebSocket, hijacked SSE and long-poll): nothing waits on a shutdown
// channel for them, so Shutdown tells each one.
type Registry struct {
	mu       sync.Mutex
	next     uint64            // guarded by mu
	live     map[uint64]func() // guarded by mu
	stopping bool              // guarded by mu
}

// add registers onShutdown, called once when the server begins shutting
// down; it reports false (registering nothing) when that already began.
func (r *Registry) add(onShutdown func()) (id uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return 0, false
	}
	if r.live == nil {
		r.live = make(map[uint64]func())
	}
	r.next++
	r.live[r.next] = onShutdown
	return r.next, true
}

func (r *Registry) remove(id uint64) {
	r.mu.Lock()
	delete(r.live, id)
	r.mu.Unlock()
}

// Shutdown calls every registered onShutdown, outside the lock (each kicks
// a Serial, which takes the pool's lock), and refuses registrations from
// then on.
func (r *Registry) Shutdown() {
	r.mu.Lock()
	r.stopping = true
	live := r.live
	r.live = nil
	r.mu.Unlock()
	for _, f := range live {
		f()
	}
}
