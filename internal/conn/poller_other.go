//go:build !linux

package conn

import (
	"net"
	"sync"
)

// Poller, where there is no epoll, watches each connection with a
// goroutine (blocking.go).
type Poller struct {
	mu     sync.Mutex
	closed bool // guarded by mu
}

// New returns a Poller.
func New() (*Poller, error) { return &Poller{}, nil }

// Watch calls onReadable once conn has bytes to read, has been closed by
// its peer or has failed. onReadable runs with the poller locked: it must
// not block nor call Rearm or Stop. Read from w.Conn() afterwards.
func (p *Poller) Watch(conn net.Conn, onReadable func()) (*Watch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	return p.watchBlockingLocked(conn, onReadable), nil
}

func (p *Poller) rearm(w *Watch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.stopped || p.closed {
		return ErrClosed
	}
	w.reading.Add(1)
	go w.waitBlocking()
	return nil
}

func (p *Poller) stop(w *Watch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.stopped = true
}

// Close stops the poller.
func (p *Poller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}
