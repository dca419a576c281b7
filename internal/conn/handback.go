package conn

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// Listener wraps a server's listener so that a connection taken over for
// a long-poll is served by net/http again once answered (Session.HandBack):
// the client's next poll reuses it (keep-alive), as it would had the
// handler answered it.
type Listener struct {
	net.Listener
	back      chan net.Conn
	accepted  chan acceptResult
	done      chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex // orders handBack with Close, so none is left queued
	closed bool       // guarded by mu

	// acceptFailed is told of each accept error the loop backs off from.
	acceptFailed func(err error, retry time.Duration)
}

// NewListener wraps l. acceptFailed (the caller's metric and log) is told
// of each accept error the listener waits out before trying again.
func NewListener(l net.Listener, acceptFailed func(err error, retry time.Duration)) *Listener {
	hl := &Listener{
		Listener: l, back: make(chan net.Conn, handbackQueue), accepted: make(chan acceptResult), done: make(chan struct{}),
		acceptFailed: acceptFailed,
	}
	go hl.acceptLoop()
	return hl
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// Accept errors other than a closed listener (EMFILE, ENFILE, ENOBUFS) pass
// once descriptors or memory are freed: the loop waits and tries again, as
// net/http does, instead of ending and leaving the server deaf for good.
const (
	acceptRetryFirst = 5 * time.Millisecond
	acceptRetryMax   = time.Second
)

// acceptLoop feeds Accept with new connections until the listener closes.
// It owns the wait between failed accepts, so net/http never sees them.
func (l *Listener) acceptLoop() {
	var retry time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			retry = min(max(2*retry, acceptRetryFirst), acceptRetryMax)
			l.acceptFailed(err, retry)
			select {
			case <-time.After(retry):
				continue
			case <-l.done:
				return
			}
		}
		retry = 0
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			return // the listener is closed; Accept reports it
		}
	}
}

// Accept returns the next new or handed-back connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case r := <-l.accepted:
		return r.conn, r.err
	case c := <-l.back:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections handed back and not yet accepted, or
// handed back later, are closed.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.closed = true
		close(l.done)
		for {
			select {
			case c := <-l.back:
				c.Close()
			default:
				return
			}
		}
	})
	return l.Listener.Close()
}

// handbackQueue is how many answered long-polls' connections may wait for
// net/http's accept loop; past it a connection is closed (its answer is
// written: the client's next poll opens a new one).
const handbackQueue = 8192

// handBack gives c to net/http for the client's next request, or closes it
// once the listener is closed. It never waits on the accept loop: it runs
// on a pool worker, and a fan-out answers thousands of polls at once.
func (l *Listener) handBack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return
	}
	select {
	case l.back <- c:
	default:
		c.Close()
	}
}

// prefixConn replays bytes the client sent ahead (a pipelined request)
// before reading on from the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Buffered is how many replayed bytes are left: while there are some, the
// socket does not show them, so Watch watches c with a goroutine.
func (c *prefixConn) Buffered() int { return len(c.prefix) }

// NetConn returns the connection c wraps, for fdOf.
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

// tlsStateConn is a wrapped TLS connection handed back: net/http reads
// its ConnectionState for Request.TLS.
type tlsStateConn struct {
	net.Conn
	tls *tls.Conn
}

func (c *tlsStateConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// NetConn returns the connection c wraps.
func (c *tlsStateConn) NetConn() net.Conn { return c.Conn }
