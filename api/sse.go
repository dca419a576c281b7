package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/conn"
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

// sseKeepalive is the comment line that keeps proxies from closing an idle stream.
var sseKeepalive = []byte(": keepalive\n\n")

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
// (HTTP/2, HTTP/1.0, a recorder) the same session writes through the
// ResponseWriter while the handler waits for it to end.
func (s *Server) sse(c *gin.Context) {
	since, ok := replayCursor(c, true)
	if !ok || s.refuseWhileStopping(c) {
		return
	}
	sse := &sseProtocol{since: since}
	st := s.newStreamSession(announce.SSE, sse, s.cfg.Heartbeat)
	ch, replay, err := s.hub.Subscribe(c.Request.Context(), channelOf(c), st.o, since)
	if err != nil {
		st.Abandon()
		fail(c, err)
		return
	}
	sse.replay = replay
	setSSEHeaders(c)
	if !canHijack(c) {
		c.Status(http.StatusOK)
		st.serve(c, ch, s.attach(c, announce.SSE, st.Kicker(conn.WakePresence)), accessOf(c))
		return
	}
	hijacked := conn.HijackStream(c.Writer, http.StatusOK)
	if hijacked == nil { // the head could not be written: the client is gone
		ch.Unsubscribe(st.o)
		st.Abandon()
		return
	}
	pres := s.attach(c, announce.SSE, st.Kicker(conn.WakePresence))
	st.begin(hijacked, ch, pres, accessOf(c))
}

func setSSEHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}

// canHijack reports whether the request's connection can be taken over
// (conn.CanHijack).
func canHijack(c *gin.Context) bool { return conn.CanHijack(c.Writer, c.Request) }
