package api

import (
	"crypto/tls"
	"net"
	"sync"
)

// Listener wraps the server's listener so that a connection taken over for
// a long-poll (deferred.go) is served by net/http again once answered:
// the client's next poll reuses it (keep-alive), as it would had the
// handler answered it. Without it, such answers close the connection.
func (s *Server) Listener(l net.Listener) net.Listener {
	hl := &handbackListener{Listener: l, back: make(chan net.Conn), accepted: make(chan acceptResult), done: make(chan struct{})}
	go hl.acceptLoop()
	s.handback.Store(hl)
	return hl
}

type acceptResult struct {
	conn net.Conn
	err  error
}

type handbackListener struct {
	net.Listener
	back      chan net.Conn
	accepted  chan acceptResult
	done      chan struct{}
	closeOnce sync.Once
}

func (l *handbackListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return // the listener is closed; Accept reports it
		}
	}
}

// Accept returns the next new or handed-back connection.
func (l *handbackListener) Accept() (net.Conn, error) {
	select {
	case r := <-l.accepted:
		return r.conn, r.err
	case c := <-l.back:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections handed back later are closed.
func (l *handbackListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// handBack gives c to net/http for the client's next request, or closes it
// once the listener is closed. It reports whether c was taken.
func (l *handbackListener) handBack(c net.Conn) bool {
	select {
	case l.back <- c:
		return true
	case <-l.done:
		c.Close()
		return false
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

// NetConn returns the connection c wraps, for netpoll.
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
