package conn

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
)

// ErrClosed is returned by Watch after Close.
var ErrClosed = errors.New("conn: poller closed")

// ErrUnsupported is returned by Watch for a connection without a descriptor.
var ErrUnsupported = errors.New("conn: connection has no file descriptor")

// Watch is one connection's registration with a Poller.
type Watch struct {
	p          *Poller
	conn       net.Conn
	fd         int
	key        uint64
	onReadable func()
	peek       *peekConn      // set when watched by a goroutine (blocking.go)
	reading    sync.WaitGroup // that goroutine, while it runs (Add with p.mu held)
	stopped    bool           // guarded by p.mu
}

// Conn is the connection to read from after a callback.
func (w *Watch) Conn() net.Conn { return w.conn }

// FD is the connection's descriptor for WriteNow, or -1 when it has none
// of its own (a TLS connection, or a system without epoll).
func (w *Watch) FD() int { return w.fd }

// Rearm asks for the next callback: after each one, the connection is not
// watched until its handler has read what it wanted and calls Rearm. A
// connection with unread bytes calls back again at once.
func (w *Watch) Rearm() error { return w.p.rearm(w) }

// Stop ends the watch; no callback starts after it returns. Stop before
// closing the connection, so that its descriptor, once reused, is not
// watched under the old key. Safe to call more than once.
func (w *Watch) Stop() { w.p.stop(w) }

var (
	defaultOnce   sync.Once
	defaultPoller *Poller
	defaultErr    error
)

// Default returns the process's shared Poller, started on first use.
func Default() (*Poller, error) {
	defaultOnce.Do(func() { defaultPoller, defaultErr = New() })
	return defaultPoller, defaultErr
}

// fdOf returns the descriptor behind conn without duplicating it, looking
// through wrappers that expose the connection they wrap with NetConn. A
// TLS connection has buffered records its descriptor does not show, and so
// does a wrapper still holding bytes read ahead (Buffered): neither has one
// to watch, as its descriptor may never turn readable for bytes already read.
func fdOf(conn net.Conn) (int, error) {
	for {
		if _, ok := conn.(*tls.Conn); ok {
			return -1, ErrUnsupported
		}
		if b, ok := conn.(interface{ Buffered() int }); ok && b.Buffered() > 0 {
			return -1, ErrUnsupported
		}
		if sc, ok := conn.(syscall.Conn); ok {
			return rawFD(sc)
		}
		u, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return -1, ErrUnsupported
		}
		conn = u.NetConn()
	}
}

func rawFD(sc syscall.Conn) (int, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}
