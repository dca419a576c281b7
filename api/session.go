package api

import (
	"errors"
	"net"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/conn"
	"github.com/gin-gonic/gin"
)

// streamSession is a WebSocket or SSE stream on the session core
// (internal/conn): the poller reports the client's bytes, the observer,
// the presence listener and the timers kick its Serial, and the Serial's
// short-lived goroutine is the connection's only reader and writer. A
// hijacked idle stream is this struct, its observer and its socket; an
// SSE stream that cannot be hijacked (HTTP/2, HTTP/1.0) runs the same
// protocol through the ResponseWriter while its handler waits.
type streamSession struct {
	*conn.Session
	s     *Server
	proto streamProtocol
	o     *announce.Observer
	ch    *announce.Channel
	pres  *observerPresence

	keepalive time.Duration
	ticker    *time.Timer

	bufs  net.Buffers
	batch []*announce.Envelope
}

// streamProtocol is what differs between WebSocket and SSE.
type streamProtocol interface {
	// start writes what comes before the first change (the replay).
	start(st *streamSession) error
	// readable handles the client's bytes; an error ends the stream.
	readable(st *streamSession) error
	// wire is an envelope's frame.
	wire(e *announce.Envelope) []byte
	// presence is a presence event's frame.
	presence(event []byte) []byte
	// keepalive runs when the previous call asked (first after the
	// keepalive interval) and says when to run next; an error ends the stream.
	keepalive(st *streamSession) (time.Duration, error)
	// end writes the last words before the connection closes; reason is
	// the observer's error, errTokenExpired, errWatchFailed or announce.ErrClosed.
	end(st *streamSession, reason error)
}

// newStreamSession prepares a session; its observer (which kicks it) is
// made here so that it can be subscribed before the connection is taken.
// Unless begun, it must be abandoned.
func (s *Server) newStreamSession(t announce.Transport, proto streamProtocol, keepalive time.Duration) *streamSession {
	st := &streamSession{s: s, proto: proto, keepalive: keepalive}
	st.Session = conn.NewSession(&s.conns, st.work)
	st.o = announce.NewNotifyingObserver(t, s.hub.QueueLimit(), st.Kicker(conn.WakeQueued))
	return st
}

// prepare sets what the session serves and its timers, before it begins.
func (st *streamSession) prepare(ch *announce.Channel, pres *observerPresence, a access) {
	st.ch, st.pres = ch, pres
	if !a.expires.IsZero() {
		st.After(time.Until(a.expires), conn.WakeExpired)
	}
	st.ticker = st.After(st.keepalive, conn.WakeKeepalive)
}

// begin serves the session on the hijacked c from now on.
func (st *streamSession) begin(c net.Conn, ch *announce.Channel, pres *observerPresence, a access) {
	st.prepare(ch, pres, a)
	st.Start(c)
}

// serve serves the session through c's ResponseWriter until it ends.
func (st *streamSession) serve(c *gin.Context, ch *announce.Channel, pres *observerPresence, a access) {
	st.prepare(ch, pres, a)
	st.Serve(c.Writer, c.Request)
}

// work runs on the Serial: everything the connection does happens here.
func (st *streamSession) work(r conn.Wake) {
	if err := st.step(r); err != nil {
		st.finish(err)
	}
}

// errTokenExpired ends a stream whose token expired.
var errTokenExpired = errors.New("token expired")

// errWatchFailed ends a stream whose connection could not be watched: a
// fault of the server's, not its shutdown.
var errWatchFailed = errors.New("internal error: the connection cannot be watched")

// errGone ends a stream whose connection failed or whose client left:
// nothing more is written.
var errGone = errorString("connection gone")

type errorString string

func (e errorString) Error() string { return string(e) }

func (st *streamSession) step(r conn.Wake) error {
	switch {
	case r.Has(conn.WakeGone):
		return errGone
	case r.Has(conn.WakeWatchFailed):
		return errWatchFailed
	case r.Has(conn.WakeShutdown):
		return announce.ErrClosed
	case r.Has(conn.WakeExpired):
		return errTokenExpired
	}
	if r.Has(conn.WakeStart) {
		if err := st.proto.start(st); err != nil {
			return errGone
		}
	}
	if r.Has(conn.WakeReadable) {
		st.Detach() // a frame that has begun arriving may take a while
		if err := st.proto.readable(st); err != nil {
			return err
		}
		if st.Rearm() != nil {
			return errGone
		}
	}
	if r.Has(conn.WakeQueued) {
		if err := st.flush(); err != nil {
			return err
		}
	}
	if r.Has(conn.WakePresence) {
		if err := st.flushPresence(); err != nil {
			return err
		}
	}
	if r.Has(conn.WakeKeepalive) {
		next, err := st.proto.keepalive(st)
		if err != nil {
			return err
		}
		st.ticker.Reset(next)
	}
	return nil
}

// flush writes every queued envelope in one writev, or reports why the
// observer was closed.
func (st *streamSession) flush() error {
	st.batch = st.o.Take(st.batch[:0])
	if len(st.batch) == 0 {
		return st.o.Err()
	}
	frames := st.bufs[:0]
	for _, e := range st.batch {
		frames = append(frames, st.proto.wire(e))
	}
	st.bufs = frames
	err := st.write()
	clear(st.batch)
	if cap(st.batch) > 64 {
		st.batch = nil // a burst is over: give its memory back
	}
	if err != nil {
		return errGone
	}
	return st.o.Err()
}

func (st *streamSession) flushPresence() error {
	st.bufs = st.bufs[:0]
drain:
	for {
		select {
		case ev := <-st.pres.presenceEvents():
			st.bufs = append(st.bufs, st.proto.presence(ev))
		default:
			break drain
		}
	}
	if st.write() != nil {
		return errGone
	}
	return nil
}

// send writes frames at once (a reply, a control frame, a comment).
func (st *streamSession) send(frames ...[]byte) error {
	st.bufs = append(st.bufs[:0], frames...)
	if st.write() != nil {
		return errGone
	}
	return nil
}

// write writes st.bufs with one system call and forgets them.
func (st *streamSession) write() error {
	if len(st.bufs) == 0 {
		return nil
	}
	err := st.Write(st.bufs)
	clear(st.bufs[:cap(st.bufs)])
	st.bufs = st.bufs[:0]
	if cap(st.bufs) > 64 {
		st.bufs = nil
	}
	return err
}

// finish says the protocol's last words (unless the connection is gone)
// and releases everything the session holds.
func (st *streamSession) finish(reason error) {
	if reason != errGone {
		st.proto.end(st, reason)
	}
	st.ch.Unsubscribe(st.o)
	st.pres.detach()
	if errors.As(reason, new(wsClose)) {
		st.Linger()
	} else {
		st.Close()
	}
}
