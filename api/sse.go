package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/announce/announce/announce"
	"github.com/gin-gonic/gin"
)

// sseWire is the SSE encoding cached in each envelope.
var sseWire = announce.NewWireFormat(sseFrame)

func sseFrame(e *announce.Envelope) any {
	b := make([]byte, 0, len(e.JSON)+48)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, e.ID, 10)
	b = append(b, "\nevent: message\ndata: "...)
	b = append(b, e.JSON...)
	return append(b, "\n\n"...)
}

// sseBuffers gathers one wake-up's frames into a single write.
var sseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// sseKeepalive is the comment line that keeps proxies from closing an idle stream.
var sseKeepalive = []byte(": keepalive\n\n")

// deadlineWriter sets the connection's write deadline before each write.
type deadlineWriter struct {
	rc      *http.ResponseController
	w       io.Writer
	timeout time.Duration
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.w.Write(p)
}

// replayCursor reads the resume cursor: Last-Event-ID (set by a reconnecting
// EventSource, so newer than the URL's) wins over ?since=.
func replayCursor(c *gin.Context, header bool) (*uint64, bool) {
	v, ok := "", false
	if header {
		v = c.GetHeader("Last-Event-ID")
		ok = v != ""
	}
	if !ok {
		v = c.Query("since")
		ok = v != "" // an empty since= is no cursor
	}
	if !ok {
		return nil, true
	}
	id, valid := parseID(v)
	if !valid {
		badRequest(c, "since / Last-Event-ID must be a message id (a whole number >= 0)")
		return nil, false
	}
	return &id, true
}

// truncatedNotice tells a client that history no longer reaches back to its cursor.
func truncatedNotice(since uint64, first uint64) []byte {
	return fmt.Appendf(nil, `{"event":"truncated","since":%d,"first":%d}`, since, first)
}

// sse streams every change of the channel as Server-Sent Events.
//
// An HTTP/1.1 stream is hijacked once subscribed: the handler writes the
// response head itself (close-delimited, as EventSource expects of a
// stream) and returns, so net/http's per-request buffers, the gin context
// and the handler's stack are freed, and a streamSession serves it with no
// goroutine while idle (sse_session.go). Where hijacking is not possible
// (HTTP/2, HTTP/1.0, a recorder) the handler streams through the
// ResponseWriter.
func (s *Server) sse(c *gin.Context) {
	since, ok := replayCursor(c, true)
	if !ok || s.refuseWhileStopping(c) {
		return
	}
	s.streams.Add(1)
	handedOff := false
	defer func() {
		if !handedOff {
			s.streams.Done()
		}
	}()
	if canHijack(c) {
		handedOff = s.sseSession(c, since)
		return
	}
	ctx := c.Request.Context()
	o := announce.NewObserver(announce.SSE, s.hub.QueueLimit())
	ch, replay, err := s.hub.Subscribe(ctx, channelOf(c), o, since)
	if err != nil {
		fail(c, err)
		return
	}
	setSSEHeaders(c)
	st := &sseStream{s: s, ch: ch, o: o, pres: s.attach(c, announce.SSE, nil), access: accessOf(c)}
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	st.out = &httpStream{rc: rc, w: deadlineWriter{rc: rc, w: c.Writer, timeout: s.cfg.WriteTimeout}}
	st.run(replay, since, ctx.Done())
}

// sseSession subscribes, hijacks and hands the stream to a streamSession;
// it reports whether it did (the session then releases s.streams).
func (s *Server) sseSession(c *gin.Context, since *uint64) bool {
	sse := &sseProtocol{since: since}
	st := s.newStreamSession(announce.SSE, sse, s.cfg.Heartbeat)
	ch, replay, err := s.hub.Subscribe(c.Request.Context(), channelOf(c), st.o, since)
	if err != nil {
		fail(c, err)
		return false
	}
	sse.replay = replay
	setSSEHeaders(c)
	conn := hijackStream(c, http.StatusOK)
	if conn == nil { // the head could not be written: the client is gone
		ch.Unsubscribe(st.o)
		return false
	}
	pres := s.attach(c, announce.SSE, st.kicker(wakePresence))
	st.begin(conn, ch, pres, accessOf(c))
	return true
}

func setSSEHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}

// sseStream is one SSE observer's state, shared by both ways of writing.
type sseStream struct {
	s      *Server
	ch     *announce.Channel
	o      *announce.Observer
	pres   *observerPresence
	access access
	out    frameWriter
}

// frameWriter writes SSE frames to a client in one go, with a fresh write
// deadline, and flushes them.
type frameWriter interface {
	write(frames ...[]byte) error
}

// run writes the replay, then every change, until the client leaves (gone),
// the observer is closed, its token expires or the server shuts down.
func (st *sseStream) run(replay announce.Replay, since *uint64, gone <-chan struct{}) {
	s, o := st.s, st.o
	defer st.ch.Unsubscribe(o)
	defer st.pres.detach()
	write := st.out.write

	head := [][]byte{[]byte("retry: 3000\n\n")}
	if replay.Truncated && len(replay.Messages) > 0 {
		head = append(head, fmt.Appendf(nil, "event: truncated\ndata: %s\n\n", truncatedNotice(*since, replay.Messages[0].ID)))
	}
	for _, e := range replay.Messages {
		head = append(head, e.Wire(sseWire).([]byte))
	}
	if write(head...) != nil {
		return
	}

	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	expired, stopExpiry := tokenExpiry(st.access)
	defer stopExpiry()
	var batch []*announce.Envelope
	var frames [][]byte
	for {
		select {
		case <-o.Ready():
			batch = o.Take(batch[:0])
			frames = frames[:0]
			for _, e := range batch {
				frames = append(frames, e.Wire(sseWire).([]byte))
			}
			err := write(frames...)
			clear(batch)
			clear(frames)
			if cap(batch) > 64 {
				batch, frames = nil, nil // a burst is over: give its memory back
			}
			if err != nil {
				return
			}
		case ev := <-st.pres.presenceEvents():
			if write(presenceFrame(ev)) != nil {
				return
			}
		case <-heartbeat.C:
			if write(sseKeepalive) != nil {
				return
			}
		case <-o.Done():
			if errors.Is(o.Err(), announce.ErrSlowConsumer) {
				// A short retry: the client should resume from history soon.
				_ = write(fmt.Appendf(nil, "retry: 500\nevent: error\ndata: {\"event\":\"error\",\"error\":%q}\n\n", o.Err().Error()))
			}
			return
		case <-expired:
			_ = write([]byte(sseTokenExpired))
			return
		case <-s.shutdown:
			return
		case <-gone:
			return
		}
	}
}

// httpStream writes through the ResponseWriter (net/http buffers it).
type httpStream struct {
	rc *http.ResponseController
	w  deadlineWriter
}

func (h *httpStream) write(frames ...[]byte) error {
	bp := sseBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	for _, f := range frames {
		b = append(b, f...)
	}
	_, err := h.w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		sseBuffers.Put(bp)
	}
	if err != nil {
		return err
	}
	return h.rc.Flush()
}

// canHijack reports whether the request's connection can be taken over
// for a stream: HTTP/1.1 through a writer that can hijack.
func canHijack(c *gin.Context) bool {
	r := c.Request
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return false // HTTP/1.0 and HTTP/2 stream through the ResponseWriter
	}
	_, ok := c.Writer.(http.Hijacker)
	return ok
}

// hijackStream takes over an HTTP/1.1 connection for a streamed answer:
// it writes the status line and the headers gathered so far (CORS and the
// like included), close-delimited, and returns the connection; nil when
// the connection could not be taken or the head not written (the client
// is gone).
func hijackStream(c *gin.Context, status int) net.Conn {
	conn, brw, err := http.NewResponseController(c.Writer).Hijack()
	if err != nil {
		return nil
	}
	_ = brw // a client sends nothing more on an event stream; what it did send is dropped
	h := c.Writer.Header()
	h.Set("Connection", "close")
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	head := appendHead(make([]byte, 0, 512), status, h)
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(head); err != nil {
		conn.Close()
		return nil
	}
	return conn
}
