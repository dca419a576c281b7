package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// wireMessage is a message, or a notice ({"event": "truncated" | "error" | "ack", ...}),
// as the server encodes them in WebSocket frames and SSE data.
type wireMessage struct {
	Event   string    `json:"event"`
	Error   string    `json:"error"`
	ID      uint64    `json:"id"`
	Channel string    `json:"channel"`
	Content string    `json:"content"`
	Time    time.Time `json:"time"`
	Expired uint64    `json:"expired"`
}

func (w *wireMessage) message() Message {
	return Message{ID: w.ID, Channel: w.Channel, Content: w.Content, Time: w.Time, Expired: w.Expired}
}

// wsURL is the channel's WebSocket endpoint with the cursor and presence name.
func (c *Client) wsURL(channel string, cursor *uint64, name string) string {
	q := presenceQuery(name)
	if cursor != nil {
		q.Set("since", strconv.FormatUint(*cursor, 10))
	}
	u, _ := url.Parse(c.endpoint(channelPath(channel, "/ws"), q))
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	return u.String()
}

type wsConn struct {
	c    *websocket.Conn
	idle time.Duration
	stop func() bool // unregisters the close-on-cancel hook
}

func (s *Subscription) dialWebSocket(ctx context.Context, cursor *uint64) (conn, string, error) {
	u := s.client.wsURL(s.channel, cursor, s.opts.Name)
	h := http.Header{}
	setToken(h, s.opts.Token)
	c, resp, err := s.client.ws.DialContext(ctx, u, h)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			defer resp.Body.Close()
			return nil, u, errorFrom(resp)
		}
		return nil, u, err
	}
	c.SetReadLimit(32 << 20)
	w := &wsConn{c: c, idle: s.opts.IdleTimeout}
	// Reading blocks without looking at ctx: closing the socket unblocks it.
	w.stop = context.AfterFunc(ctx, func() { c.Close() })
	c.SetPingHandler(func(data string) error {
		_ = c.SetReadDeadline(time.Now().Add(w.idle))
		err := c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil // the read fails next and says why
		}
		return err
	})
	return w, u, nil
}

func (w *wsConn) next() (frame, error) {
	for {
		_ = w.c.SetReadDeadline(time.Now().Add(w.idle))
		kind, data, err := w.c.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return frame{}, errIdle
			}
			return frame{}, err
		}
		if kind != websocket.TextMessage {
			continue
		}
		var in wireMessage
		if err := json.Unmarshal(data, &in); err != nil {
			return frame{}, fmt.Errorf("unreadable frame from the server: %w", err)
		}
		if in.Event != "" {
			// A notice: "truncated" (the subscription sees the gap in the
			// ids itself), or an answer to a frame it never sends.
			continue
		}
		return frame{msg: in.message()}, nil
	}
}

func (w *wsConn) close() {
	w.stop()
	_ = w.c.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	w.c.Close()
}
