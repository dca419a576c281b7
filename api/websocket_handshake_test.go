package api_test

// The WebSocket handshake: origins, and refusals answered as JSON.

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

func TestWebSocketOriginCheck(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *api.Config) { c.AllowedOrigins = []string{"https://allowed.example"} })
	ts.Publish(t, "worg", "welcome") // what an accepted connection reads first
	for _, c := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + ts.Addr(), true},
		{"https://allowed.example", true},
		{"https://ALLOWED.example", true},
		{"https://evil.example", false},
		{"http://allowed.example", false}, // another scheme is another origin
		{"https://allowed.example.evil.example", false},
		{"null", false},
	} {
		h := http.Header{}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(wsURL(ts, "/channels/worg/ws"), h)
		if c.ok {
			if err != nil {
				t.Errorf("Origin %q: %v, want the upgrade", c.origin, err)
				continue
			}
			readWSMessage(t, conn) // the welcome proves the connection works
			conn.Close()
			continue
		}
		if err == nil {
			conn.Close()
			t.Errorf("Origin %q: upgraded, want 403", c.origin)
			continue
		}
		if resp == nil {
			t.Errorf("Origin %q: %v, want a 403 answer", c.origin, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		assertError(t, resp, b, http.StatusForbidden)
		if bytes.Contains(b, []byte(`\n`)) {
			t.Errorf("Origin %q: error %s spans lines", c.origin, b)
		}
	}
}

// TestWebSocketFailedHandshakeIsJSON: a request that asks for an upgrade but
// that the WebSocket handshake refuses (wrong version, no key) answers 400
// JSON with no-store like every other error, and registers no observer.
func TestWebSocketFailedHandshakeIsJSON(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, c := range []struct {
		name    string
		headers []string
	}{
		{"version 8", []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 8", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}},
		{"no key", []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"}},
	} {
		for _, path := range []string{"/channels/hs/ws", "/channels/hs/status", "/status"} {
			resp, body := ts.raw(t, http.MethodGet, path, c.headers...)
			assertError(t, resp, body, http.StatusBadRequest)
		}
	}
	if n := ts.Hub.Stats().Observers(announce.WebSocket); n != 0 {
		t.Errorf("%d WebSocket observers left by refused handshakes", n)
	}
}
