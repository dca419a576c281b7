package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// WSSReader is a WebSocket opened with a third-party client (gobwas/ws),
// for tests that check what a server sends over wss:// (or ws://).
type WSSReader struct {
	t    testing.TB
	Conn net.Conn
	rw   io.ReadWriter
}

// DialWSS opens url with gobwas/ws's dialer and tc; it is closed at the end of the test.
func DialWSS(t testing.TB, url string, tc *tls.Config) *WSSReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{TLSConfig: tc}.Dial(ctx, url)
	if err != nil {
		t.Fatalf("testenv: WebSocket %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	var r io.Reader = conn
	if br != nil { // bytes the server sent right after its handshake
		r = io.MultiReader(br, conn)
	}
	return &WSSReader{t: t, Conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{r, conn}}
}

// Expect reads text frames until one contains want, failing after 10s.
func (w *WSSReader) Expect(want string) {
	w.t.Helper()
	_ = w.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		data, op, err := wsutil.ReadServerData(w.rw)
		if err != nil {
			w.t.Fatalf("testenv: reading the WebSocket for %q: %v", want, err)
		}
		if op == ws.OpText && bytes.Contains(data, []byte(want)) {
			return
		}
	}
}
