package api

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/netpoll"
	"github.com/gin-gonic/gin"
)

// A deferredAnswer is a long-poll taken over from net/http while it waits:
// the connection is hijacked and the handler returns, so a waiting poll
// holds no goroutine, no net/http buffers and no gin context. The
// observer, the timeout, the poller (the client leaving or sending its
// next request early) and shutdown kick a Serial; when the answer is due
// it is written by hand and the connection handed back to net/http for
// the client's next request (handback.go).
type deferredAnswer struct {
	s       *Server
	run     *netpoll.Serial
	o       *announce.Observer
	ch      *announce.Channel
	conn    net.Conn
	fd      int // conn's descriptor for netpoll.WriteNow, or -1
	watch   *netpoll.Watch
	timer   *time.Timer
	header  http.Header // the answer's headers gathered before the hijack (CORS, cookies, ...)
	close   bool        // the client asked to close after the answer
	ahead   []byte      // bytes the client sent ahead: its next request
	answer  func(h http.Header) (contentType string, body []byte)
	done    func(timedOut bool) // presence, metrics
	session uint64
	ended   bool
}

// Why a deferred answer runs.
const (
	deferStart uint32 = 1 << iota
	deferReadable
	deferDue // the observer fired, the timeout passed or the server is stopping
	deferTimeout
)

// maxAhead bounds what a waiting client may send ahead of its answer.
const maxAhead = 64 << 10

// pollObserver returns the observer a poll waits on: for a connection
// that can be taken over, a notifying one and the deferred answer it
// kicks; otherwise an ordinary one and a nil answer. A poll with a body
// waits the ordinary way, so that net/http reads past the body: taken
// over, its bytes would be replayed as the client's next request.
func (s *Server) pollObserver(c *gin.Context) (*deferredAnswer, *announce.Observer) {
	if !canHijack(c) || c.Request.ContentLength != 0 {
		return nil, announce.NewObserver(announce.Poll, 1)
	}
	d := &deferredAnswer{s: s, fd: -1}
	d.run = netpoll.NewHeldSerial(s.pool, d.work)
	d.o = announce.NewNotifyingObserver(announce.Poll, 1, func() { d.run.Kick(deferDue) })
	return d, d.o
}

// deferAnswer takes c's connection over until the answer is due: o (from
// pollObserver, registered on ch) fires, timeout passes or the
// server stops. answer renders the body then (setting headers on h);
// done(timedOut) runs once, answered or not. It reports false, having
// answered nothing, when the connection could not be taken: the caller
// then waits the ordinary way. s.streams counts the wait until it ends.
func (d *deferredAnswer) deferAnswer(c *gin.Context, ch *announce.Channel, timeout time.Duration,
	answer func(h http.Header) (string, []byte), done func(timedOut bool)) bool {
	s := d.s
	// Counted before the hijack: from then on net/http's Shutdown no longer
	// waits for this connection, and Wait must.
	s.streams.Add(1)
	conn, brw, err := http.NewResponseController(c.Writer).Hijack()
	if err != nil {
		s.streams.Done()
		return false
	}
	_ = conn.SetDeadline(time.Time{}) // net/http's request deadlines end with the request
	d.ch, d.conn, d.answer, d.done = ch, conn, answer, done
	d.header = c.Writer.Header().Clone()
	r := c.Request
	d.close = r.Close || r.ProtoMajor == 1 && r.ProtoMinor == 0
	if n := brw.Reader.Buffered(); n > 0 {
		d.ahead, _ = brw.Reader.Peek(n)
		d.ahead = bytes.Clone(d.ahead)
	}
	reasons := deferStart
	if p, err := netpoll.Default(); err != nil {
		reasons |= deferDue
	} else if d.watch, err = p.Watch(conn, func() { d.run.Kick(deferReadable) }); err != nil {
		reasons |= deferDue
	} else {
		d.fd = d.watch.FD()
	}
	if id, ok := s.sessions.add(func() { d.run.Kick(deferDue) }); ok {
		d.session = id
	} else {
		reasons |= deferDue
	}
	d.timer = time.AfterFunc(timeout, func() { d.run.Kick(deferTimeout) })
	d.run.Release(reasons)
	return true
}

func (d *deferredAnswer) work(r uint32) {
	if d.ended {
		return
	}
	if r&deferReadable != 0 && !d.readAhead() {
		d.finish(false, false) // the client left: no answer is owed
		return
	}
	if r&(deferDue|deferTimeout) != 0 {
		d.finish(true, r&deferDue == 0)
	}
}

// readAhead keeps what the client sent while waiting (its next request,
// pipelined); false when it closed the connection or sent too much.
func (d *deferredAnswer) readAhead() bool {
	var b [1024]byte
	n, err := d.watch.Conn().Read(b[:])
	if err != nil || len(d.ahead)+n > maxAhead {
		return false
	}
	d.ahead = append(d.ahead, b[:n]...)
	return d.watch.Rearm() == nil
}

// finish answers (when answer is set) and releases everything.
func (d *deferredAnswer) finish(answer, timedOut bool) {
	s := d.s
	d.ended = true
	if d.watch != nil {
		d.watch.Stop()
	}
	d.timer.Stop()
	if d.session != 0 {
		s.sessions.remove(d.session)
	}
	d.ch.Unsubscribe(d.o)
	d.done(timedOut)
	defer s.streams.Done()
	if !answer || d.write() != nil {
		d.conn.Close()
		return
	}
	hb, _ := s.handback.Load().(*handbackListener)
	if d.close || hb == nil || s.stopping() {
		d.conn.Close()
		return
	}
	var conn net.Conn = d.conn
	if d.watch != nil {
		conn = d.watch.Release() // a TLS connection's watch may have read a byte
	}
	if len(d.ahead) > 0 {
		conn = &prefixConn{Conn: conn, prefix: d.ahead}
	}
	if tc, ok := d.conn.(*tls.Conn); ok && conn != d.conn {
		conn = &tlsStateConn{Conn: conn, tls: tc} // Request.TLS on the next request
	}
	_ = conn.SetDeadline(time.Time{})
	hb.handBack(conn)
}

// write writes the whole HTTP/1.1 answer.
func (d *deferredAnswer) write() error {
	h := d.header
	ctype, body := d.answer(h)
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	hb, _ := d.s.handback.Load().(*handbackListener)
	if d.close || hb == nil || d.s.stopping() {
		h.Set("Connection", "close")
	}
	head := appendHead(make([]byte, 0, 512+len(body)), http.StatusOK, h)
	return writeOut(d.conn, d.fd, d.run, net.Buffers{append(head, body...)}, d.s.cfg.WriteTimeout, &writeClock{})
}

// appendHead appends an HTTP/1.1 status line, Date and h, and the blank line.
func appendHead(b []byte, status int, h http.Header) []byte {
	b = fmt.Appendf(b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\n"...)
	var buf bytes.Buffer
	_ = h.Write(&buf)
	b = append(b, buf.Bytes()...)
	return append(b, "\r\n"...)
}
