package api

import (
	"errors"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/announce/announce/announce"
	gobwas "github.com/gobwas/ws"
)

// wsSession is the WebSocket protocol of a streamSession: client frames
// are read straight from the socket (no buffer held between them, so the
// poller sees every unread byte), and frames are written by hand.
type wsSession struct {
	s       *Server
	channel string
	access  access
	since   *uint64
	replay  announce.Replay

	lastRead time.Time // when the client last sent a frame (or connected)
	lastPing time.Time // when the server last pinged (or the client connected)
	state    gobwas.State
	message  []byte // a fragmented message being gathered
	partial  []byte // the received bytes of a frame not yet complete
	client   netip.Addr
	opcode   gobwas.OpCode
}

// wsClose ends a stream with a close frame of code and reason.
type wsClose struct {
	code   gobwas.StatusCode
	reason string
}

func (c wsClose) Error() string { return c.reason }

var pingFrame = []byte{0x89, 0x00} // FIN, ping, no payload

func (w *wsSession) start(st *streamSession) error {
	w.lastRead = time.Now()
	w.lastPing = w.lastRead
	w.state = gobwas.StateServerSide
	r := w.replay
	w.replay = announce.Replay{}
	if r.Truncated && len(r.Messages) > 0 {
		if err := st.send(appendTextFrame(nil, truncatedNotice(*w.since, r.Messages[0].ID))); err != nil {
			return err
		}
	}
	for _, e := range r.Messages {
		st.bufs = append(st.bufs, w.wire(e))
	}
	return st.write()
}

func (w *wsSession) wire(e *announce.Envelope) []byte { return e.Wire(wsWire).([]byte) }

func (w *wsSession) presence(event []byte) []byte { return appendTextFrame(nil, event) }

// keepalive pings every ping interval, and ends a client that has sent
// nothing (not even a pong) for the pong timeout, on time: it wakes for
// whichever of the two comes first.
func (w *wsSession) keepalive(st *streamSession) (time.Duration, error) {
	now := time.Now()
	silentUntil := w.lastRead.Add(w.s.cfg.PongTimeout)
	if !now.Before(silentUntil) {
		return 0, wsClose{gobwas.StatusPolicyViolation, "no pong"}
	}
	if !now.Before(w.lastPing.Add(w.s.cfg.PingInterval)) {
		if err := st.send(pingFrame); err != nil {
			return 0, err
		}
		w.lastPing = now
	}
	next := w.lastPing.Add(w.s.cfg.PingInterval)
	if silentUntil.Before(next) {
		next = silentUntil
	}
	return next.Sub(now), nil
}

func (w *wsSession) end(st *streamSession, reason error) {
	c := wsClose{gobwas.StatusGoingAway, "server shutting down"}
	switch {
	case errors.As(reason, &c):
	case errors.Is(reason, errWatchFailed):
		c = wsClose{gobwas.StatusInternalServerError, "internal error"}
	case errors.Is(reason, announce.ErrSlowConsumer):
		c = wsClose{gobwas.StatusPolicyViolation, "slow consumer"}
	case errors.Is(reason, errTokenExpired):
		c = wsClose{gobwas.StatusPolicyViolation, "token expired"}
	case errors.Is(reason, announce.ErrDeleted):
		_ = st.send(appendTextFrame(nil, []byte(deletedEvent)))
		c = wsClose{gobwas.StatusNormalClosure, "channel deleted"}
	}
	_ = st.send(closeFrame(c.code, c.reason))
}

func closeFrame(code gobwas.StatusCode, reason string) []byte {
	b, _ := gobwas.CompileFrame(gobwas.NewCloseFrame(gobwas.NewCloseFrameBody(code, reason)))
	return b
}

// readable reads what the client sent, at most one buffer, without waiting
// for more, and handles every frame that is complete; the poller calls back
// again while more wait. The bytes of an unfinished frame are kept until the
// rest arrives (websocket_read.go), so a frame reserves only what came of it.
func (w *wsSession) readable(st *streamSession) error {
	return w.readFrames(st.Conn(), func(h gobwas.Header, payload []byte) error {
		return w.frame(st, h, payload)
	})
}

// frame handles one complete frame; payload is unmasked and is the caller's
// buffer, so nothing here keeps it.
func (w *wsSession) frame(st *streamSession, h gobwas.Header, payload []byte) error {
	w.lastRead = time.Now()

	switch h.OpCode {
	case gobwas.OpPing:
		b, _ := gobwas.CompileFrame(gobwas.NewPongFrame(payload))
		return st.send(b)
	case gobwas.OpPong:
		return nil
	case gobwas.OpClose:
		// Echo the peer's close (RFC 6455 5.5.1), then hang up; a close
		// whose code or reason no endpoint may send is a protocol error.
		code, reason := gobwas.ParseCloseFrameData(payload)
		switch {
		case len(payload) == 1:
			return wsClose{gobwas.StatusProtocolError, "close frame with a one-byte body"}
		case len(payload) == 0:
			code = gobwas.StatusNormalClosure
		default:
			if err := gobwas.CheckCloseFrameData(code, reason); err != nil {
				return wsClose{gobwas.StatusProtocolError, err.Error()}
			}
			if code >= 5000 { // RFC 6455 7.4.2: no code above 4999 exists
				return wsClose{gobwas.StatusProtocolError, "close code out of range"}
			}
		}
		_ = st.send(closeFrame(code, ""))
		return errGone
	}
	if h.OpCode != gobwas.OpContinuation {
		w.opcode = h.OpCode
	}
	if !h.Fin {
		w.state = w.state.Set(gobwas.StateFragmented)
		w.message = append(w.message, payload...)
		return nil
	}
	if w.state.Fragmented() {
		payload = append(w.message, payload...)
		w.message = nil
		w.state = w.state.Clear(gobwas.StateFragmented)
	}
	reply := errorFrame("send text frames of JSON")
	if w.opcode == gobwas.OpText {
		if !utf8.Valid(payload) { // RFC 6455 8.1: fail the connection
			return wsClose{gobwas.StatusInvalidFramePayloadData, "invalid UTF-8 in a text message"}
		}
		reply = w.s.handleFrame(w.channel, payload, w.access, w.client)
	}
	return st.send(appendTextFrame(nil, reply))
}
