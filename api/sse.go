package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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
		v, ok = c.GetQuery("since")
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
func (s *Server) sse(c *gin.Context) {
	since, ok := replayCursor(c, true)
	if !ok || s.refuseWhileStopping(c) {
		return
	}
	s.streams.Add(1)
	defer s.streams.Done()
	ctx := c.Request.Context()
	o := announce.NewObserver(announce.SSE, s.hub.QueueLimit())
	ch, replay, err := s.hub.Subscribe(ctx, channelOf(c), o, since)
	if err != nil {
		fail(c, err)
		return
	}
	defer ch.Unsubscribe(o)
	pres := s.attach(c, announce.SSE)
	defer pres.detach()

	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	// Every write reaching the connection gets a fresh deadline: a frame
	// larger than the buffer goes straight through w, before write() runs,
	// and must neither meet the stale deadline of the last flush (which
	// killed streams idle for longer than WriteTimeout) nor none at all
	// (a replay to a client that stopped reading would block for ever).
	w := bufio.NewWriterSize(deadlineWriter{rc: rc, w: c.Writer, timeout: s.cfg.WriteTimeout}, 4096)
	write := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if err := w.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}

	w.WriteString("retry: 3000\n\n")
	if replay.Truncated && len(replay.Messages) > 0 {
		fmt.Fprintf(w, "event: truncated\ndata: %s\n\n", truncatedNotice(*since, replay.Messages[0].ID))
	}
	for _, e := range replay.Messages {
		w.Write(e.Wire(sseWire).([]byte))
	}
	if write() != nil {
		return
	}

	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	expired, stopExpiry := tokenExpiry(accessOf(c))
	defer stopExpiry()
	var batch []*announce.Envelope
	for {
		select {
		case <-o.Ready():
			batch = o.Take(batch[:0])
			for _, e := range batch {
				w.Write(e.Wire(sseWire).([]byte))
			}
			clear(batch)
			if write() != nil {
				return
			}
		case ev := <-pres.presenceEvents():
			w.Write(presenceFrame(ev))
			if write() != nil {
				return
			}
		case <-heartbeat.C:
			w.WriteString(": keepalive\n\n")
			if write() != nil {
				return
			}
		case <-o.Done():
			if errors.Is(o.Err(), announce.ErrSlowConsumer) {
				// A short retry: the client should resume from history soon.
				fmt.Fprintf(w, "retry: 500\nevent: error\ndata: {\"event\":\"error\",\"error\":%q}\n\n", o.Err().Error())
				_ = write()
			}
			return
		case <-expired:
			w.WriteString(sseTokenExpired)
			_ = write()
			return
		case <-s.shutdown:
			return
		case <-ctx.Done():
			return
		}
	}
}
