package api

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/conn"
	"github.com/gin-gonic/gin"
	gobwas "github.com/gobwas/ws"
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

// upgradeError answers a handshake that cannot be upgraded (a wrong
// Sec-WebSocket-Version, no key, ...) like every other error: JSON
// {"error": ...} with no-store.
func upgradeError(c *gin.Context, status int, reason string) {
	if status == http.StatusBadRequest && c.GetHeader("Sec-WebSocket-Version") != "13" {
		c.Header("Sec-WebSocket-Version", "13")
	}
	c.AbortWithStatusJSON(status, gin.H{"error": reason})
}

// checkHandshake returns why r cannot be upgraded, or "" (RFC 6455 4.2.1).
func checkHandshake(r *http.Request) string {
	switch {
	case r.ProtoMajor != 1 || r.ProtoMinor < 1:
		return "a WebSocket handshake needs HTTP/1.1"
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "websocket: unsupported version: Sec-WebSocket-Version must be 13"
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
	if err != nil || len(key) != 16 {
		return "websocket: Sec-WebSocket-Key must be 16 bytes in base64"
	}
	return ""
}

// wsFrameIn is a frame a client may send.
type wsFrameIn struct {
	Type    string  `json:"type"`
	Content *string `json:"content"`
	Key     string  `json:"key"`
}

// websocket registers a persistent observer over a WebSocket. After the
// upgrade the gin handler returns, releasing net/http's per-request state
// and the handler's stack, and the connection is served by a
// streamSession (session.go, websocket_session.go): no goroutine waits on
// an idle WebSocket.
func (s *Server) websocket(c *gin.Context) {
	if c.Request.ProtoMajor == 2 { // no Upgrade on HTTP/2, and RFC 8441 is off
		upgradeError(c, http.StatusBadRequest, "a WebSocket handshake needs HTTP/1.1: this request came over HTTP/2")
		return
	}
	if !websocket.IsWebSocketUpgrade(c.Request) {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "this route expects a WebSocket upgrade"})
		return
	}
	if !s.wsOK.allows(c.Request) {
		fail(c, fmt.Errorf("%w: origin %s may not open a WebSocket (see --allowed-origins)", errForbidden, c.GetHeader("Origin")))
		return
	}
	if reason := checkHandshake(c.Request); reason != "" {
		upgradeError(c, http.StatusBadRequest, reason)
		return
	}
	since, ok := replayCursor(c, false)
	if !ok || s.refuseWhileStopping(c) {
		return
	}
	ws := &wsSession{s: s, channel: channelOf(c), access: accessOf(c), since: since, client: s.limits.proxies.clientIP(c.Request)}
	st := s.newStreamSession(announce.WebSocket, ws, min(s.cfg.PingInterval, s.cfg.PongTimeout))
	// Subscribe before upgrading so a store failure is still an HTTP error.
	ch, replay, err := s.hub.Subscribe(c.Request.Context(), ws.channel, st.o, since)
	if err != nil {
		st.Abandon()
		fail(c, err)
		return
	}
	ws.replay = replay
	upgraded, rw, _, err := gobwas.HTTPUpgrader{}.Upgrade(c.Request, c.Writer)
	if err == nil && rw.Reader.Buffered() > 0 {
		err = errors.New("client sent frames before the handshake ended") // RFC 6455 4.1
	}
	if err != nil {
		ch.Unsubscribe(st.o)
		st.Abandon()
		if upgraded != nil {
			upgraded.Close()
		}
		return
	}
	pres := s.attach(c, announce.WebSocket, st.Kicker(conn.WakePresence))
	st.begin(upgraded, ch, pres, ws.access)
}

func (s *Server) handleFrame(channel string, data []byte, a access, client netip.Addr) []byte {
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
	if reply, ok := s.framePublishAllowed(in.Key, a, client); !ok {
		return reply
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
