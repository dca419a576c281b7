package conn

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// A connection without a descriptor of its own (TLS, or any system but
// Linux) is watched by a goroutine blocked in a one-byte read: correct
// everywhere, without the memory saving. The byte it read is handed back
// by the Watch's Conn.

// watchBlockingLocked registers conn for goroutine-driven callbacks.
func (p *Poller) watchBlockingLocked(conn net.Conn, onReadable func()) *Watch {
	w := &Watch{p: p, fd: -1, onReadable: onReadable}
	pc := &peekConn{Conn: conn}
	w.conn, w.peek = pc, pc
	w.reading.Add(1)
	go w.waitBlocking()
	return w
}

func (w *Watch) waitBlocking() {
	defer w.reading.Done()
	pc := w.peek
	_ = pc.Conn.SetReadDeadline(time.Time{}) // a handler's deadline must not end the wait
	var b [1]byte
	n, err := pc.Conn.Read(b[:])
	pc.mu.Lock()
	pc.b, pc.n, pc.err = b[0], n, err
	pc.mu.Unlock()
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if !w.stopped {
		w.onReadable()
	}
}

// Release stops the watch and returns the connection to go on with, with
// no read of the watch's left on it: for a connection served on after the
// watch (a long-poll's, handed back to net/http). A goroutine-driven
// watch's pending read is cut short with a past read deadline and waited
// for; a byte it read first is still returned by the connection.
func (w *Watch) Release() net.Conn {
	w.Stop()
	if w.peek == nil {
		return w.conn
	}
	_ = w.peek.Conn.SetReadDeadline(time.Unix(1, 0))
	w.reading.Wait()
	_ = w.peek.Conn.SetReadDeadline(time.Time{})
	w.peek.mu.Lock()
	if w.peek.n == 0 && errors.Is(w.peek.err, os.ErrDeadlineExceeded) {
		w.peek.err = nil // our deadline, not the connection's failure
	}
	w.peek.mu.Unlock()
	return w.conn
}

// peekConn returns the byte (or the error) its watcher read before
// reading on.
type peekConn struct {
	net.Conn
	mu  sync.Mutex
	b   byte  // guarded by mu
	n   int   // guarded by mu
	err error // guarded by mu
}

func (c *peekConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.n == 0 && c.err == nil {
		c.mu.Unlock()
		return c.Conn.Read(p)
	}
	defer c.mu.Unlock()
	if c.n > 0 && len(p) > 0 {
		p[0], c.n = c.b, 0
		return 1, nil
	}
	if c.err != nil {
		return 0, c.err // sticky, as a failed connection's reads are
	}
	return 0, nil
}

// NetConn returns the connection peekConn wraps.
func (c *peekConn) NetConn() net.Conn { return c.Conn }
