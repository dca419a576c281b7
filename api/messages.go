package api

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/announce/announce/announce"
	"github.com/gin-gonic/gin"
)

// messages serves the log: GET .../messages?since=ID&limit=N&wait=S.
func (s *Server) messages(c *gin.Context) {
	var since uint64
	if v := c.Query("since"); v != "" { // an empty since= (jQuery's {since: undefined}) is no cursor
		id, ok := parseID(v)
		if !ok {
			badRequest(c, "since must be a message id (a whole number >= 0)")
			return
		}
		since = id
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		// No page is larger than the history, so a larger limit asks for all.
		n, err := strconv.ParseUint(v, 10, 31)
		if errors.Is(err, strconv.ErrRange) && strings.Trim(v, "0123456789") == "" {
			n, err = math.MaxInt32, nil
		}
		if err != nil || n < 1 {
			badRequest(c, "limit must be a whole number >= 1")
			return
		}
		limit = int(n)
	}
	callback, ok := logCallback(c)
	if !ok {
		return
	}
	var wait time.Duration
	if v := c.Query("wait"); v != "" && c.Request.Method == http.MethodGet { // empty: no wait, as an empty since= is no cursor
		d, ok := parseSeconds(v, s.cfg.PollTimeout)
		if !ok {
			badRequest(c, "wait must be a number of seconds >= 0")
			return
		}
		wait = s.capToToken(c, d) // a wait never outlives its token
	}
	ctx := c.Request.Context()
	ch, err := s.hub.Read(ctx, channelOf(c))
	if err != nil {
		fail(c, err)
		return
	}
	s.hub.CatchUp(ctx, ch, since) // a cursor from another node may be ahead of this one
	msgs := logAfter(ch, since, limit)
	if len(msgs) == 0 && wait > 0 {
		// Nothing after the cursor, so the cursor is the current id: wait,
		// as a long-poll does, for the next change; without a goroutine
		// over HTTP/1.1 (deferred.go).
		cur := ch.Current().ID
		d, o := s.pollObserver(c)
		ch, now, err := s.hub.Wait(ctx, ch.Name(), o, &cur)
		if err == nil && now == nil {
			s.awaitChange(c, d, ch, o, wait, func(h http.Header) (string, []byte) {
				return logAnswer(h, callback, logAfter(ch, since, limit))
			}, func(bool) {})
			return
		}
		if d != nil {
			d.Abandon()
		}
		if err != nil {
			fail(c, err)
			return
		}
		msgs = logAfter(ch, since, limit)
	}
	ctype, body := logAnswer(c.Writer.Header(), callback, msgs)
	c.Data(http.StatusOK, ctype, body)
}

// logAfter is the log's answer: the messages after since, oldest first; or,
// for a cursor ahead of the channel (the store was reset), the current
// message, as long-poll answers, so a cursor client resynchronises instead of
// waiting for ids it will never see.
func logAfter(ch *announce.Channel, since uint64, limit int) []*announce.Envelope {
	if cur := ch.Current(); since > cur.ID && cur.ID > 0 {
		return []*announce.Envelope{cur}
	}
	return ch.History(since, limit)
}

// jsonArray joins the envelopes' encodings into a JSON array.
func jsonArray(msgs []*announce.Envelope) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e.JSON)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// logCallback reads the log's optional ?callback= (JSONP, for announce.js on
// a cross-origin page whose browser lacks CORS); false after answering 400.
func logCallback(c *gin.Context) (string, bool) {
	v, ok := c.GetQuery("callback")
	if ok && !validCallback(v) {
		badRequest(c, "callback must be a JavaScript identifier (dotted paths allowed), at most 64 characters")
		return "", false
	}
	return v, true
}

// logAnswer renders the log's answer of msgs: a JSON array, or with a
// callback the JSONP call of it.
func logAnswer(h http.Header, callback string, msgs []*announce.Envelope) (string, []byte) {
	if callback == "" {
		return "application/json; charset=utf-8", jsonArray(msgs)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	return "application/javascript; charset=utf-8", fmt.Appendf(nil, "/**/%s(%s);", callback, jsonArray(msgs))
}
