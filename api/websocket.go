package api

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/announce/announce/announce"
	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

// wsWire is the WebSocket frame cached in each envelope: a server's text
// frame (unmasked, FIN) built once and written as is by every connection,
// without gorilla's PreparedMessage (a mutex and a map per message).
var wsWire = announce.NewWireFormat(wsFrame)

func wsFrame(e *announce.Envelope) any { return appendTextFrame(nil, e.JSON) }

// appendTextFrame appends a server-to-client text frame carrying payload (RFC 6455 5.2).
func appendTextFrame(b, payload []byte) []byte {
	n := len(payload)
	b = slices.Grow(b, n+10)
	b = append(b, 0x81) // FIN, opcode text
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// wsWriteBuffers lends a write buffer to a connection only while gorilla
// writes a control or reply frame, so an idle connection holds none.
var wsWriteBuffers sync.Pool

// upgrader checks origins itself before upgrading, so that a refusal is a JSON error.
// The read buffer is small: clients send little (publish frames, pongs), and
// a larger frame is read through it all the same.
var upgrader = websocket.Upgrader{
	ReadBufferSize:    512,
	WriteBufferSize:   1024,
	WriteBufferPool:   &wsWriteBuffers,
	CheckOrigin:       func(*http.Request) bool { return true },
	EnableCompression: false,
	Error:             upgradeError,
}

// upgradeError answers a handshake the upgrader refuses (a wrong
// Sec-WebSocket-Version, no key, ...) like every other error: JSON
// {"error": ...} with no-store, where gorilla's default is a text/plain
// status line without any cache header.
func upgradeError(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	msg := reason.Error()
	if status >= http.StatusInternalServerError {
		msg = "internal error"
	}
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// wsFrameIn is a frame a client may send.
type wsFrameIn struct {
	Type    string  `json:"type"`
	Content *string `json:"content"`
	Key     string  `json:"key"`
}

// websocket registers a persistent observer over a WebSocket. After the
// upgrade the gin handler returns (releasing net/http's per-request buffers,
// the gin context and the deep handler stack) and a write pump goroutine
// takes over as the connection's only writer; a reader goroutine handles
// client frames and hands replies (and pongs, and the close echo) to it.
func (s *Server) websocket(c *gin.Context) {
	if !websocket.IsWebSocketUpgrade(c.Request) {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "this route expects a WebSocket upgrade"})
		return
	}
	if !s.wsOK.allows(c.Request) {
		fail(c, fmt.Errorf("%w: origin %s may not open a WebSocket (see --allowed-origins)", errForbidden, c.GetHeader("Origin")))
		return
	}
	since, ok := replayCursor(c, false)
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
	// Subscribe before upgrading so a store failure is still an HTTP error.
	o := announce.NewObserver(announce.WebSocket, s.hub.QueueLimit())
	ch, replay, err := s.hub.Subscribe(c.Request.Context(), channelOf(c), o, since)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "") // the 101 answer carries no cache header
	conn, err := upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		ch.Unsubscribe(o)
		return // the upgrader answered the client
	}
	pres := s.attach(c, announce.WebSocket, nil)
	a := accessOf(c)
	handedOff = true
	go func() {
		defer s.streams.Done()
		defer ch.Unsubscribe(o)
		defer conn.Close()
		defer pres.detach()
		s.serveWebSocket(conn, ch.Name(), o, replay, since, a, pres.presenceEvents())
	}()
}

// wsControl is a control frame the reader asks the writer to send.
type wsControl struct {
	kind int // websocket.PongMessage or websocket.CloseMessage
	data []byte
}

func (s *Server) serveWebSocket(conn *websocket.Conn, channel string, o *announce.Observer, replay announce.Replay, since *uint64, a access, presenceEvents <-chan []byte) {
	conn.SetReadLimit(int64(s.hub.MaxMessage()) + 1024)
	// Only this goroutine writes: the reader's pongs and close echo come
	// here too, since message frames bypass gorilla's write lock.
	controls := make(chan wsControl, 2)
	conn.SetPingHandler(func(data string) error {
		select {
		case controls <- wsControl{websocket.PongMessage, []byte(data)}:
		default: // a pong is still pending: one answers them all
		}
		return nil
	})
	conn.SetCloseHandler(func(int, string) error { return nil }) // the writer echoes it
	replies := make(chan []byte, 8)
	readerDone := make(chan error, 1)
	quit := make(chan struct{})
	defer close(quit)
	go s.readWebSocket(conn, channel, a, replies, readerDone, quit)
	expired, stopExpiry := tokenExpiry(a)
	defer stopExpiry()

	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	raw := conn.UnderlyingConn()
	deadline := func() time.Time { return time.Now().Add(s.cfg.WriteTimeout) }
	closeWith := func(code int, reason string) {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline())
	}
	// send writes the envelopes' frames with one system call (writev).
	var bufs net.Buffers
	var wd writeDeadline // gorilla's own writes only ever push the deadline later
	send := func(batch []*announce.Envelope) error {
		bufs = bufs[:0]
		for _, e := range batch {
			bufs = append(bufs, e.Wire(wsWire).([]byte))
		}
		wd.extend(raw, s.cfg.WriteTimeout)
		out := bufs // WriteTo consumes its receiver
		_, err := out.WriteTo(raw)
		clear(bufs[:cap(bufs)])
		if cap(bufs) > 64 {
			bufs = nil // a burst is over: give its memory back
		}
		return err
	}

	if replay.Truncated && len(replay.Messages) > 0 {
		_ = conn.SetWriteDeadline(deadline())
		if conn.WriteMessage(websocket.TextMessage, truncatedNotice(*since, replay.Messages[0].ID)) != nil {
			return
		}
	}
	if len(replay.Messages) > 0 && send(replay.Messages) != nil {
		return
	}
	var batch []*announce.Envelope
	for {
		select {
		case <-o.Ready():
			batch = o.Take(batch[:0])
			err := send(batch)
			clear(batch)
			if cap(batch) > 64 {
				batch = nil
			}
			if err != nil {
				return
			}
		case ev := <-presenceEvents:
			_ = conn.SetWriteDeadline(deadline())
			if conn.WriteMessage(websocket.TextMessage, ev) != nil {
				return
			}
		case msg := <-replies:
			_ = conn.SetWriteDeadline(deadline())
			if conn.WriteMessage(websocket.TextMessage, msg) != nil {
				return
			}
		case ctl := <-controls:
			if conn.WriteControl(ctl.kind, ctl.data, deadline()) != nil {
				return
			}
		case <-ping.C:
			if conn.WriteControl(websocket.PingMessage, nil, deadline()) != nil {
				return
			}
		case <-o.Done():
			if errors.Is(o.Err(), announce.ErrSlowConsumer) {
				closeWith(websocket.ClosePolicyViolation, "slow consumer")
			} else {
				closeWith(websocket.CloseGoingAway, "server shutting down")
			}
			return
		case <-expired:
			closeWith(websocket.ClosePolicyViolation, "token expired")
			return
		case <-s.shutdown:
			closeWith(websocket.CloseGoingAway, "server shutting down")
			return
		case err := <-readerDone:
			var ce *websocket.CloseError
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				closeWith(websocket.CloseMessageTooBig, "frame too large")
			case errors.As(err, &ce):
				// Echo the peer's close (RFC 6455 5.5.1), as gorilla's default handler would.
				code := ce.Code
				if code == websocket.CloseNoStatusReceived {
					code = websocket.CloseNormalClosure
				}
				closeWith(code, "")
			}
			return
		}
	}
}

// readWebSocket reads client frames until the connection fails; a peer that
// answers no ping within the pong timeout fails the read deadline.
func (s *Server) readWebSocket(conn *websocket.Conn, channel string, a access, replies chan<- []byte, done chan<- error, quit <-chan struct{}) {
	extend := func() { _ = conn.SetReadDeadline(time.Now().Add(s.cfg.PongTimeout)) }
	extend()
	conn.SetPongHandler(func(string) error { extend(); return nil })
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			done <- err
			return
		}
		extend()
		reply := errorFrame("send text frames of JSON")
		if kind == websocket.TextMessage {
			reply = s.handleFrame(channel, data, a)
		}
		select {
		case replies <- reply:
		case <-quit:
			return
		}
	}
}

func (s *Server) handleFrame(channel string, data []byte, a access) []byte {
	var in wsFrameIn
	if err := json.Unmarshal(data, &in); err != nil {
		return errorFrame("frame is not a JSON object: " + err.Error())
	}
	if in.Type != "publish" {
		return errorFrame(`unknown frame type; send {"type":"publish","content":"..."}`)
	}
	if in.Content == nil {
		return errorFrame(`publish frame has no "content"`)
	}
	if err := s.authorizeFrame(channel, in.Key, a); err != nil {
		return errorFrame(err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	start := time.Now()
	e, err := s.hub.Publish(ctx, channel, *in.Content)
	if err != nil {
		return errorFrame(err.Error())
	}
	s.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	s.pres.events.Published(announce.Publication{Message: e.Message, Via: "ws", Name: a.name})
	b, _ := json.Marshal(struct {
		Event string `json:"event"`
		ID    uint64 `json:"id"`
	}{"ack", e.ID})
	return b
}

func errorFrame(reason string) []byte {
	b, _ := json.Marshal(struct {
		Event string `json:"event"`
		Error string `json:"error"`
	}{"error", reason})
	return b
}
