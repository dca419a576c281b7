package api

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/netpoll"
)

// Why a stream session runs (bits of netpoll.Serial's reasons).
const (
	wakeStart     uint32 = 1 << iota // first run: write the head and the replay
	wakeReadable                     // the client sent something or left
	wakeQueued                       // the observer queued envelopes or was closed
	wakePresence                     // a presence event is queued
	wakeKeepalive                    // time for a ping or a heartbeat comment
	wakeExpired                      // the token expired
	wakeShutdown                     // the server is shutting down
)

// streamSession is a hijacked WebSocket or SSE connection served without a
// goroutine of its own: the poller reports the client's bytes, the
// observer, the presence listener and the timers kick a Serial, and the
// Serial's short-lived goroutine is the connection's only reader and
// writer. An idle stream is this struct, its observer and its socket.
type streamSession struct {
	s     *Server
	proto streamProtocol
	conn  net.Conn
	fd    int // conn's descriptor for netpoll.WriteNow, or -1
	run   *netpoll.Serial
	watch *netpoll.Watch
	o     *announce.Observer
	ch    *announce.Channel
	pres  *observerPresence

	keepalive time.Duration
	ticker    *time.Timer
	expiry    *time.Timer
	sessionID uint64

	clock writeClock
	bufs  net.Buffers
	batch []*announce.Envelope
	ended bool
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
	// the observer's error, errTokenExpired or announce.ErrClosed.
	end(st *streamSession, reason error)
}

// newStreamSession prepares a session; its observer (which kicks it) is
// made here so that it can be subscribed before the connection is taken.
func (s *Server) newStreamSession(t announce.Transport, proto streamProtocol, keepalive time.Duration) *streamSession {
	st := &streamSession{s: s, proto: proto, keepalive: keepalive, fd: -1}
	st.run = netpoll.NewHeldSerial(s.pool, st.work)
	st.o = announce.NewNotifyingObserver(t, s.hub.QueueLimit(), func() { st.run.Kick(wakeQueued) })
	return st
}

// kicker returns a function that kicks the session for reason.
func (st *streamSession) kicker(reason uint32) func() { return func() { st.run.Kick(reason) } }

// begin serves the session on conn from now on. s.streams must already
// count it; the session's end releases it.
func (st *streamSession) begin(conn net.Conn, ch *announce.Channel, pres *observerPresence, a access) {
	st.conn, st.ch, st.pres = conn, ch, pres
	reasons := wakeStart
	if p, err := netpoll.Default(); err != nil {
		st.s.log.Error("stream: no poller", "err", err)
		reasons |= wakeShutdown
	} else if st.watch, err = p.Watch(conn, st.kicker(wakeReadable)); err != nil {
		reasons |= wakeShutdown
	} else {
		st.fd = st.watch.FD()
	}
	if id, ok := st.s.sessions.add(st.kicker(wakeShutdown)); ok {
		st.sessionID = id
	} else {
		reasons |= wakeShutdown
	}
	if !a.expires.IsZero() {
		st.expiry = time.AfterFunc(time.Until(a.expires), st.kicker(wakeExpired))
	}
	st.ticker = time.AfterFunc(st.keepalive, st.kicker(wakeKeepalive))
	st.run.Release(reasons)
}

// work runs on the Serial: everything the connection does happens here.
func (st *streamSession) work(r uint32) {
	if st.ended {
		return
	}
	if err := st.step(r); err != nil {
		st.finish(err)
	}
}

// errTokenExpired ends a stream whose token expired.
var errTokenExpired = errors.New("token expired")

// errGone ends a stream whose connection failed or whose client left:
// nothing more is written.
var errGone = errorString("connection gone")

type errorString string

func (e errorString) Error() string { return string(e) }

func (st *streamSession) step(r uint32) error {
	switch {
	case r&wakeShutdown != 0:
		return announce.ErrClosed
	case r&wakeExpired != 0:
		return errTokenExpired
	}
	if r&wakeStart != 0 {
		if err := st.proto.start(st); err != nil {
			return errGone
		}
	}
	if r&wakeReadable != 0 {
		st.run.Detach() // a frame that has begun arriving may take a while
		if err := st.proto.readable(st); err != nil {
			return err
		}
		if st.watch.Rearm() != nil {
			return errGone
		}
	}
	if r&wakeQueued != 0 {
		if err := st.flush(); err != nil {
			return err
		}
	}
	if r&wakePresence != 0 {
		if err := st.flushPresence(); err != nil {
			return err
		}
	}
	if r&wakeKeepalive != 0 {
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
	err := writeOut(st.conn, st.fd, st.run, st.bufs, st.s.cfg.WriteTimeout, &st.clock)
	clear(st.bufs[:cap(st.bufs)])
	st.bufs = st.bufs[:0]
	if cap(st.bufs) > 64 {
		st.bufs = nil
	}
	return err
}

// poolWrite is how long a write may wait for a full socket on a pool
// worker before it detaches and waits on its own goroutine.
const poolWrite = 20 * time.Millisecond

// writeClock re-arms a connection's short write deadline lazily: a write
// finds between poolWrite/2 and poolWrite left, and a burst of writes
// shares one re-arm of the runtime timer.
type writeClock struct{ short time.Time }

// writeOut writes bufs, within timeout in all: first straight to the
// socket fd (when >= 0; the caller owns conn, so nothing closes it
// meanwhile), then what a full socket did not take through conn.
func writeOut(conn net.Conn, fd int, run *netpoll.Serial, bufs net.Buffers, timeout time.Duration, wc *writeClock) error {
	if fd >= 0 {
		if err := netpoll.WriteNow(fd, &bufs); err != nil || len(bufs) == 0 {
			return err
		}
	}
	return writeThrough(conn, run, bufs, timeout, wc)
}

// writeThrough writes bufs through conn with one system call (write(2) for
// a lone buffer, which costs less than writev(2) of one). When the socket
// stays full it gives run's pool worker back before waiting on. Apart from
// writeOut, so that only this slower path moves bufs to the heap.
func writeThrough(conn net.Conn, run *netpoll.Serial, bufs net.Buffers, timeout time.Duration, wc *writeClock) error {
	now := time.Now()
	if timeout > poolWrite && wc.short.Sub(now) < poolWrite/2 {
		wc.short = now.Add(poolWrite)
		_ = conn.SetWriteDeadline(wc.short)
	} else if timeout <= poolWrite {
		_ = conn.SetWriteDeadline(now.Add(timeout))
	}
	var err error
	lone := len(bufs) == 1
	if lone {
		var n int
		n, err = conn.Write(bufs[0])
		bufs[0] = bufs[0][n:]
	} else {
		_, err = bufs.WriteTo(conn) // consumes what it wrote
	}
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() || timeout <= poolWrite {
		return err
	}
	run.Detach()
	wc.short = time.Time{} // the next write re-arms the short deadline
	_ = conn.SetWriteDeadline(now.Add(timeout))
	if lone {
		_, err = conn.Write(bufs[0])
	} else {
		_, err = bufs.WriteTo(conn)
	}
	return err
}

// finish says the protocol's last words (unless the connection is gone)
// and releases everything the session holds.
func (st *streamSession) finish(reason error) {
	st.ended = true
	if reason != errGone {
		st.proto.end(st, reason)
	}
	if st.watch != nil {
		st.watch.Stop()
	}
	st.ticker.Stop()
	if st.expiry != nil {
		st.expiry.Stop()
	}
	if st.sessionID != 0 {
		st.s.sessions.remove(st.sessionID)
	}
	st.ch.Unsubscribe(st.o)
	st.pres.detach()
	if errors.As(reason, new(wsClose)) {
		go lingerClose(st.conn)
	} else {
		_ = st.conn.Close()
	}
	st.s.streams.Done()
}

// lingerTimeout bounds how long a connection closed for what its client sent
// is still read from.
const lingerTimeout = 2 * time.Second

// lingerClose half-closes conn and discards what the client still sends
// before closing it: closing a socket with unread bytes resets it, and the
// reset makes the client drop the close frame it has not read yet (it would
// see 1006 instead of, say, 1009 for a frame too large).
func lingerClose(conn net.Conn) {
	defer conn.Close()
	inner := conn
	if u, ok := inner.(interface{ NetConn() net.Conn }); ok {
		inner = u.NetConn()
	}
	if tc, ok := inner.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, conn)
}
