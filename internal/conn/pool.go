package conn

import (
	"runtime"
	"sync"
)

// Pool runs Serials on a bounded number of goroutines, in the order they
// were kicked. A fan-out kicks thousands of connections at once: as
// goroutines, they would all be runnable together, and a publisher's next
// request would wait behind every one of them. A Serial about to block (a
// read, a write to a full socket) calls Detach and finishes on its
// goroutine alone while the pool starts another worker.
type Pool struct {
	max int

	mu      sync.Mutex
	queue   []*Serial // FIFO: queue[head:]; guarded by mu
	head    int       // guarded by mu
	running int       // workers; guarded by mu
}

// NewPool returns a pool of at most workers goroutines (2 per CPU when <=
// 0: more only add contention and take from the coalescing of writes).
func NewPool(workers int) *Pool {
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	return &Pool{max: workers}
}

// submit runs s on a worker, now or when one is free.
func (p *Pool) submit(s *Serial) {
	p.mu.Lock()
	if p.running < p.max {
		p.running++
		p.mu.Unlock()
		go p.worker(s)
		return
	}
	p.queue = append(p.queue, s)
	p.mu.Unlock()
}

func (p *Pool) worker(s *Serial) {
	for s != nil {
		if s.loop() {
			return // detached: the pool already counts this goroutine out
		}
		s = p.next()
	}
}

// popLocked removes the oldest queued Serial, or returns nil.
func (p *Pool) popLocked() *Serial {
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
		return nil
	}
	s := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	return s
}

// next returns the next queued Serial for a worker that is done with its
// last, or nil after counting the worker out.
func (p *Pool) next() *Serial {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.popLocked()
	if s == nil {
		p.running--
	}
	return s
}

// detach counts the calling worker out and starts another for the queue.
func (p *Pool) detach() {
	p.mu.Lock()
	p.running--
	var s *Serial
	if p.running < p.max {
		if s = p.popLocked(); s != nil {
			p.running++
		}
	}
	p.mu.Unlock()
	if s != nil {
		go p.worker(s)
	}
}
