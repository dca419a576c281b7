package conn

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// Wake is why a session's work runs: bits of its Serial's reasons. A run
// receives every reason kicked since the last one, ORed together.
type Wake uint32

const (
	WakeStart       Wake = 1 << iota // the first run
	WakeReadable                     // the client sent something or left (a watched connection)
	WakeGone                         // the request ended (a ResponseWriter session): the client left
	WakeQueued                       // the observer queued envelopes or was closed
	WakePresence                     // a presence event is queued
	WakeKeepalive                    // time for a ping or a heartbeat comment
	WakeExpired                      // the token expired
	WakeTimeout                      // a deferred answer's wait is over
	WakeShutdown                     // the server is shutting down
	WakeWatchFailed                  // the connection could not be watched: the session cannot go on
)

// Has reports whether w includes any of r.
func (w Wake) Has(r Wake) bool { return w&r != 0 }

// Env is what the sessions of one server share.
type Env struct {
	Pool     *Pool           // runs the sessions' work
	Registry *Registry       // tells them of the shutdown
	Streams  *sync.WaitGroup // counts them until they end: the server's Wait
	// WriteTimeout bounds every write to a client.
	WriteTimeout time.Duration
	// Poller watches hijacked connections; nil: Default.
	Poller func() (*Poller, error)
}

// Session is the lifecycle every connection served by hand shares (a
// WebSocket, an event stream, a deferred long-poll answer): NewSession
// counts it in Env.Streams; Start (a hijacked connection) or Serve (a
// ResponseWriter) begins it; its work runs on a Serial, one run at a time,
// for the reasons kicked; Close, Linger or HandBack ends it, or Abandon
// when it never began. Those are the only places the count moves.
type Session struct {
	env  *Env
	run  *Serial
	work func(Wake)

	conn  net.Conn // hijacked; nil for a ResponseWriter session
	fd    int      // conn's descriptor for WriteNow, or -1
	watch *Watch
	out   *responseOut  // a ResponseWriter session's writer
	done  chan struct{} // closed when a ResponseWriter session ends

	id     uint64        // in the registry; 0 when not registered
	timers []*time.Timer // stopped when the session ends
	clock  writeClock
	// ended is set when the session ends; only its work touches it.
	ended bool
}

// NewSession returns a session, counted in env.Streams from now on, whose
// work runs for the reasons kicked once it has begun.
func NewSession(env *Env, work func(Wake)) *Session {
	env.Streams.Add(1)
	s := &Session{env: env, work: work, fd: -1}
	s.run = NewHeldSerial(env.Pool, s.serial)
	return s
}

func (s *Session) serial(r uint32) {
	if !s.ended {
		s.work(Wake(r))
	}
}

// Kick makes work run for r soon.
func (s *Session) Kick(r Wake) { s.run.Kick(uint32(r)) }

// Kicker returns a function that kicks the session for r.
func (s *Session) Kicker(r Wake) func() { return func() { s.run.Kick(uint32(r)) } }

// After kicks the session for r after d, unless it ended first.
func (s *Session) After(d time.Duration, r Wake) *time.Timer {
	t := time.AfterFunc(d, s.Kicker(r))
	s.timers = append(s.timers, t)
	return t
}

// Start serves the session on conn, hijacked, from now on; the first run
// is for WakeStart, with WakeWatchFailed when conn cannot be watched and
// WakeShutdown when the server is already stopping. Call After before Start
// (or from work): the timers are the session's own.
func (s *Session) Start(conn net.Conn) {
	s.conn = conn
	r := WakeStart | s.register()
	poller := s.env.Poller
	if poller == nil {
		poller = Default
	}
	if p, err := poller(); err != nil {
		r |= WakeWatchFailed
	} else if s.watch, err = p.Watch(conn, s.Kicker(WakeReadable)); err != nil {
		r |= WakeWatchFailed
	} else {
		s.fd = s.watch.FD()
	}
	s.run.Release(uint32(r))
}

// Serve serves the session through w until it ends, on the handler's
// goroutine: for a connection that cannot be hijacked (HTTP/2, HTTP/1.0).
// The request's end kicks WakeGone.
func (s *Session) Serve(w http.ResponseWriter, r *http.Request) {
	s.out = &responseOut{w: w, rc: http.NewResponseController(w)}
	s.done = make(chan struct{})
	stop := context.AfterFunc(r.Context(), s.Kicker(WakeGone))
	defer stop()
	s.run.Release(uint32(WakeStart | s.register()))
	<-s.done
}

func (s *Session) register() Wake {
	id, ok := s.env.Registry.add(s.Kicker(WakeShutdown))
	if !ok {
		return WakeShutdown
	}
	s.id = id
	return 0
}

// Abandon releases a session that never began.
func (s *Session) Abandon() { s.countOut() }

// countOut is the one place a session leaves Env.Streams (NewSession is
// the one it enters): at its end, or abandoned.
func (s *Session) countOut() { s.env.Streams.Done() }

// Conn is the connection to read the client's bytes from after WakeReadable.
func (s *Session) Conn() net.Conn {
	if s.watch != nil {
		return s.watch.Conn()
	}
	return s.conn
}

// Rearm asks for the next WakeReadable, after reading.
func (s *Session) Rearm() error { return s.watch.Rearm() }

// Detach, from work that may block for long, lets the pool run others.
func (s *Session) Detach() { s.run.Detach() }

// Write writes bufs, within the write timeout, from work: straight to a
// hijacked connection's socket, or through the ResponseWriter, flushed.
func (s *Session) Write(bufs net.Buffers) error {
	if s.out != nil {
		s.run.Detach() // a ResponseWriter write may wait on flow control
		return s.out.write(bufs, s.env.WriteTimeout)
	}
	return writeOut(s.conn, s.fd, s.run, bufs, s.env.WriteTimeout, &s.clock)
}

// Close ends the session and closes its connection.
func (s *Session) Close() {
	s.end(func() {
		if s.conn != nil {
			_ = s.conn.Close()
		}
	})
}

// Linger ends the session and closes its connection once the client has
// read the last words (lingerClose), for a close the client caused.
func (s *Session) Linger() {
	s.end(func() {
		if s.conn != nil {
			go lingerClose(s.conn)
		}
	})
}

// HandBack ends the session and gives its connection back to net/http
// through l for the client's next request, replaying ahead (what the client
// sent meanwhile) first. Only for an answer written whole, to a client that
// did not ask to close, while the server is not stopping (doc.go).
func (s *Session) HandBack(l *Listener, ahead []byte) {
	s.end(func() {
		c := s.conn
		if s.watch != nil {
			c = s.watch.Release() // a TLS connection's watch may have read a byte
		}
		if len(ahead) > 0 {
			c = &prefixConn{Conn: c, prefix: ahead}
		}
		if tc, ok := s.conn.(*tls.Conn); ok && c != s.conn {
			c = &tlsStateConn{Conn: c, tls: tc} // Request.TLS on the next request
		}
		_ = c.SetDeadline(time.Time{})
		l.handBack(c)
	})
}

// end releases what the session holds, disposes of its connection and
// counts it out of Env.Streams.
func (s *Session) end(dispose func()) {
	s.ended = true
	if s.watch != nil {
		s.watch.Stop()
	}
	for _, t := range s.timers {
		t.Stop()
	}
	if s.id != 0 {
		s.env.Registry.remove(s.id)
	}
	dispose()
	if s.done != nil {
		close(s.done)
	}
	s.countOut()
}
