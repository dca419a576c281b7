package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/announce/announce/announce"
	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

// status serves .../status: a WebSocket upgrade gets a WebSocket, an
// EventSource gets SSE, anything else long-polls.
func (s *Server) status(c *gin.Context) {
	switch {
	case websocket.IsWebSocketUpgrade(c.Request):
		s.websocket(c)
	case strings.Contains(c.GetHeader("Accept"), "text/event-stream"):
		s.sse(c)
	default:
		s.longPoll(c)
	}
}

// pollRequest is a parsed long-poll query.
type pollRequest struct {
	since    *uint64
	timeout  time.Duration
	callback string
}

func (s *Server) parsePoll(c *gin.Context, channel string) (pollRequest, bool) {
	p := pollRequest{timeout: s.cfg.PollTimeout}
	if v := c.Query("since"); v != "" { // an empty since= (jQuery's {since: undefined}) is no cursor
		id, ok := parseID(v)
		if !ok {
			badRequest(c, "since must be a message id (a whole number >= 0)")
			return p, false
		}
		p.since = &id
	} else if id, ok := cookieCursor(c.Request, channel); ok {
		p.since = &id
	}
	if v := c.Query("timeout"); v != "" { // empty: the default, as an empty since= is no cursor
		d, ok := parseSeconds(v, s.cfg.PollTimeout)
		if !ok {
			badRequest(c, "timeout must be a number of seconds >= 0")
			return p, false
		}
		p.timeout = d
	}
	if v, ok := c.GetQuery("callback"); ok {
		if !validCallback(v) {
			badRequest(c, "callback must be a JavaScript identifier (dotted paths allowed), at most 64 characters")
			return p, false
		}
		p.callback = v
	}
	return p, true
}

// longPoll answers the current message once it differs from the client's
// cursor, or when the timeout passes (200 with the message unchanged). An
// HTTP/1.1 poll waits without a goroutine (deferred.go).
func (s *Server) longPoll(c *gin.Context) {
	name := channelOf(c)
	p, ok := s.parsePoll(c, name)
	if !ok {
		return
	}
	p.timeout = s.capToToken(c, p.timeout) // a wait never outlives its token
	d, o := s.pollObserver(c)
	ch, now, err := s.hub.Wait(c.Request.Context(), name, o, p.since)
	if err != nil {
		if d != nil {
			d.Abandon()
		}
		fail(c, err)
		return
	}
	pres := s.attach(c, announce.Poll, nil)
	client := c.GetString(clientCookie)
	if now != nil {
		if d != nil {
			d.Abandon()
		}
		pres.detach()
		respond(c, func(h http.Header) (string, []byte) { return pollAnswer(h, name, now, p.callback, client) })
		return
	}
	s.awaitChange(c, d, ch, o, p.timeout, func(h http.Header) (string, []byte) {
		return pollAnswer(h, name, ch.Current(), p.callback, client)
	}, func(timedOut bool) {
		if timedOut {
			s.metrics.pollTimeouts.Inc()
		}
		pres.detach()
	})
}

// awaitChange answers a poll waiting for o (registered on ch by hub.Wait)
// to fire: deferred where the connection can be taken over (d, from
// pollObserver), else on this goroutine. answer renders the body once o
// fired, timeout passed or the server began stopping; done(timedOut) runs
// once, answered or not. A client that leaves is answered nothing. Both
// long-poll routes (/status and /messages?wait=) wait here.
func (s *Server) awaitChange(c *gin.Context, d *deferredAnswer, ch *announce.Channel, o *announce.Observer,
	timeout time.Duration, answer answerFunc, done func(timedOut bool)) {
	if d != nil {
		if d.deferAnswer(c, ch, timeout, answer, done) {
			return
		}
		// The connection could not be taken over, and a notifying observer
		// cannot be waited on here: answer now, as a timeout would, rather
		// than with an empty 200.
		ch.Unsubscribe(o)
		done(false)
		respond(c, answer)
		return
	}
	ctx := c.Request.Context()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	timedOut := false
	select {
	case <-o.Ready():
	case <-o.Done():
	case <-timer.C:
		timedOut = true
	case <-s.shutdown:
	case <-ctx.Done():
	}
	ch.Unsubscribe(o) // a client that left is forgotten at once
	done(timedOut)
	if ctx.Err() == nil {
		respond(c, answer)
	}
}

// respond writes a poll's answer through gin.
func respond(c *gin.Context, answer answerFunc) {
	ctype, body := answer(c.Writer.Header())
	c.Data(http.StatusOK, ctype, body)
}

// pollAnswer renders a long-poll's answer of e, setting its cookies (the
// cursor, then the client's presence cookie when it is new) on h.
func pollAnswer(h http.Header, channel string, e *announce.Envelope, callback, client string) (string, []byte) {
	setCookieCursor(h, channel, e.ID)
	if client != "" {
		h.Add("Set-Cookie", clientCookie+"="+client+"; Path=/; HttpOnly; SameSite=Lax")
	}
	if callback == "" {
		return "application/json; charset=utf-8", e.JSON
	}
	h.Set("X-Content-Type-Options", "nosniff")
	body := make([]byte, 0, len(e.JSON)+len(callback)+8)
	body = append(body, "/**/"...)
	body = append(body, callback...)
	body = append(body, '(')
	body = append(body, e.JSON...)
	body = append(body, ");"...)
	return "application/javascript; charset=utf-8", body
}
