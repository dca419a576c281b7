package api_test

// WebSocket keepalive: pings, pongs and silent peers.

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
)

func TestWebSocketPingsKeepAnsweringPeerAlive(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *api.Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = 300 * time.Millisecond
	})
	conn := dialWS(t, ts, "/channels/wping/ws")
	var pings atomic.Int32
	conn.SetPingHandler(func(data string) error {
		pings.Add(1)
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	frames := pumpWS(conn)
	// 15 pings at 50 ms span more than twice the pong timeout: answering
	// them is what keeps the connection open.
	testenv.WaitFor(t, 10*time.Second, "15 pings", func() bool { return pings.Load() >= 15 })
	m := ts.Publish(t, "wping", "alive")
	select {
	case r := <-frames:
		if r.err != nil {
			t.Fatalf("connection ended: %v", r.err)
		}
		f, err := decodeWS(r.kind, r.data)
		if err != nil || f.ID != m.ID {
			t.Fatalf("frame %s (%v), want message %d", r.data, err, m.ID)
		}
	case <-time.After(wsReadTimeout):
		t.Fatal("no message after the pings")
	}
}

func TestWebSocketPeerIgnoringPingsIsClosed(t *testing.T) {
	t.Parallel()
	const pongTimeout = 300 * time.Millisecond
	ts := newTestServer(t, func(c *api.Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = pongTimeout
	})
	start := time.Now()
	conn := dialWS(t, ts, "/channels/wdead/ws")
	var pings atomic.Int32
	conn.SetPingHandler(func(string) error { pings.Add(1); return nil }) // never answers
	frames := pumpWS(conn)
	var err error
	for r := range frames {
		if r.err != nil {
			err = r.err
			break
		}
		t.Fatalf("unexpected frame %q", r.data)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the client's own read deadline passed (%v): the server never closed the silent peer", err)
	}
	if elapsed := time.Since(start); elapsed < pongTimeout {
		t.Errorf("closed after %v, before the pong timeout %v", elapsed, pongTimeout)
	}
	if pings.Load() == 0 {
		t.Error("the server closed the peer without pinging it")
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
}

// A silent peer is closed when the pong timeout passes, not at the next
// ping after it, and is told why.
func TestWebSocketSilentPeerClosedAtPongTimeout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *api.Config) {
		c.PingInterval = time.Hour
		c.PongTimeout = 300 * time.Millisecond
	})
	conn := dialWS(t, ts, "/channels/wsilent/ws")
	ce := expectWSClose(t, conn, websocket.ClosePolicyViolation)
	if ce.Text != "no pong" {
		t.Errorf("close reason %q, want %q", ce.Text, "no pong")
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
}
