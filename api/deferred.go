package api

import (
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/conn"
	"github.com/gin-gonic/gin"
)

// A deferredAnswer is a long-poll taken over from net/http while it waits:
// the connection is hijacked and the handler returns, so a waiting poll
// holds no goroutine, no net/http buffers and no gin context. The
// observer, the timeout, the poller (the client leaving or sending its
// next request early) and shutdown kick its session (internal/conn); when
// the answer is due it is written by hand and the connection handed back
// to net/http for the client's next request.
type deferredAnswer struct {
	*conn.Session
	s      *Server
	o      *announce.Observer
	ch     *announce.Channel
	header http.Header // the answer's headers gathered before the hijack (CORS, cookies, ...)
	close  bool        // the client asked to close after the answer
	ahead  []byte      // bytes the client sent ahead: its next request
	answer answerFunc
	done   func(timedOut bool) // presence, metrics
}

// answerFunc renders a poll's answer when it is due, setting headers on h.
type answerFunc func(h http.Header) (contentType string, body []byte)

// maxAhead bounds what a waiting client may send ahead of its answer.
const maxAhead = 64 << 10

// pollObserver returns the observer a poll waits on: for a connection
// that can be taken over, a notifying one and the deferred answer it
// kicks (which the caller defers or abandons); otherwise an ordinary one
// and a nil answer. A poll with a body waits the ordinary way, so that
// net/http reads past the body: taken over, its bytes would be replayed as
// the client's next request.
func (s *Server) pollObserver(c *gin.Context) (*deferredAnswer, *announce.Observer) {
	if !canHijack(c) || c.Request.ContentLength != 0 {
		return nil, announce.NewObserver(announce.Poll, 1)
	}
	d := &deferredAnswer{s: s}
	d.Session = conn.NewSession(&s.conns, d.work)
	d.o = announce.NewNotifyingObserver(announce.Poll, 1, d.Kicker(conn.WakeQueued))
	return d, d.o
}

// deferAnswer takes c's connection over until the answer is due: o (from
// pollObserver, registered on ch) fires, timeout passes or the server
// stops. It reports false, having answered nothing and released the
// session, when the connection could not be taken.
func (d *deferredAnswer) deferAnswer(c *gin.Context, ch *announce.Channel, timeout time.Duration,
	answer answerFunc, done func(timedOut bool)) bool {
	hijacked, ahead, err := conn.TakeOver(c.Writer)
	if err != nil {
		d.Abandon()
		return false
	}
	d.ch, d.answer, d.done, d.ahead = ch, answer, done, ahead
	d.header = c.Writer.Header().Clone()
	d.close = conn.WantsClose(c.Request)
	d.After(timeout, conn.WakeTimeout)
	d.Start(hijacked)
	return true
}

// work answers when the wait is over: the observer fired (WakeQueued), the
// timeout passed, the server is stopping or the connection cannot be
// watched. A client that left is owed nothing.
func (d *deferredAnswer) work(r conn.Wake) {
	if r.Has(conn.WakeReadable) && !d.readAhead() {
		d.finish(false, false)
		return
	}
	if r.Has(conn.WakeQueued | conn.WakeTimeout | conn.WakeShutdown | conn.WakeWatchFailed) {
		d.finish(true, !r.Has(conn.WakeQueued|conn.WakeShutdown|conn.WakeWatchFailed))
	}
}

// readAhead keeps what the client sent while waiting (its next request,
// pipelined); false when it closed the connection or sent too much.
func (d *deferredAnswer) readAhead() bool {
	var b [1024]byte
	n, err := d.Conn().Read(b[:])
	if err != nil || len(d.ahead)+n > maxAhead {
		return false
	}
	d.ahead = append(d.ahead, b[:n]...)
	return d.Rearm() == nil
}

// finish answers (when answer is set) and ends the session: the connection
// goes back to net/http when the whole answer was written, the client did
// not ask to close and the server is not stopping, else it is closed.
func (d *deferredAnswer) finish(answer, timedOut bool) {
	d.ch.Unsubscribe(d.o)
	d.done(timedOut)
	hb := d.s.handback.Load()
	keep := !d.close && hb != nil && !d.s.stopping()
	if !answer || d.write(keep) != nil || !keep {
		d.Close()
		return
	}
	d.HandBack(hb, d.ahead)
}

// write writes the whole HTTP/1.1 answer.
func (d *deferredAnswer) write(keepAlive bool) error {
	h := d.header
	ctype, body := d.answer(h)
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if !keepAlive {
		h.Set("Connection", "close")
	}
	head := conn.AppendHead(make([]byte, 0, 512+len(body)), http.StatusOK, h)
	return d.Write(net.Buffers{append(head, body...)})
}
