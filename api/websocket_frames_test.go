package api_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/testenv"
	"github.com/gorilla/websocket"
)

// rawWS is a WebSocket spoken by hand over TCP, for frames a well-behaved
// client library would never send.
type rawWS struct{ *rawHTTP }

func dialRawWS(t *testing.T, ts *testServer, path string) *rawWS {
	t.Helper()
	h := dialRaw(t, ts)
	resp := h.request(t, path, "Upgrade: websocket", "Connection: Upgrade",
		"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	return &rawWS{h}
}

// frame builds a client frame; masked as clients must unless told otherwise.
func frame(fin bool, opcode byte, payload []byte, masked bool) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	default:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := [4]byte{1, 2, 3, 4}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

func (w *rawWS) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	var all []byte
	for _, f := range frames {
		all = append(all, f...)
	}
	if _, err := w.conn.Write(all); err != nil {
		t.Fatal(err)
	}
}

// read returns the next server frame's opcode and payload.
func (w *rawWS) read(t *testing.T) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(w.r, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		t.Fatal("the server masked a frame")
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, _ = io.ReadFull(w.r, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, _ = io.ReadFull(w.r, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.r, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0f, p
}

// expectEvent skips message frames until a text frame with "event": want.
func (w *rawWS) expectEvent(t *testing.T, want string) map[string]any {
	t.Helper()
	for {
		op, p := w.read(t)
		var m map[string]any
		if op == 0x1 && json.Unmarshal(p, &m) == nil && m["event"] == want {
			return m
		}
	}
}

// expectClose skips frames until the server's close frame and checks its code.
func (w *rawWS) expectClose(t *testing.T, code uint16) {
	t.Helper()
	for {
		op, p := w.read(t)
		if op != 0x8 {
			continue
		}
		if len(p) < 2 || binary.BigEndian.Uint16(p) != code {
			t.Fatalf("close %v, want code %d", p, code)
		}
		return
	}
}

func TestWebSocketFragmentedAndPipelinedPublishFrames(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	w := dialRawWS(t, ts, "/channels/frag/ws")
	// A message in three fragments with a ping between them, then a
	// second whole message in the same write.
	w.send(t,
		frame(false, 0x1, []byte(`{"type":"pub`), true),
		frame(true, 0x9, []byte("hi"), true),
		frame(false, 0x0, []byte(`lish","conte`), true),
		frame(true, 0x0, []byte(`nt":"one"}`), true),
		frame(true, 0x1, []byte(`{"type":"publish","content":"two"}`), true),
	)
	var pong []byte
	var acks []float64
	for len(acks) < 2 {
		op, p := w.read(t)
		var m map[string]any
		switch {
		case op == 0xA:
			pong = p
		case op == 0x1 && json.Unmarshal(p, &m) == nil && m["event"] == "ack":
			acks = append(acks, m["id"].(float64))
		case op == 0x1 && m["event"] == "error":
			t.Fatalf("error frame %s", p)
		}
	}
	if string(pong) != "hi" {
		t.Errorf("pong %q, want the ping's payload", pong)
	}
	if acks[0] != 1 || acks[1] != 2 {
		t.Fatalf("acks %v, want 1 then 2", acks)
	}
	if c := currentID(t, ts, "frag"); c != 2 {
		t.Fatalf("current id %d, want 2", c)
	}
}

func TestWebSocketProtocolErrorsClose1002(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for name, f := range map[string][]byte{
		"unmasked":              frame(true, 0x1, []byte(`{}`), false),
		"continuation first":    frame(true, 0x0, []byte(`{}`), true),
		"reserved opcode":       frame(true, 0x3, nil, true),
		"fragmented control":    frame(false, 0x9, nil, true),
		"text inside a message": append(frame(false, 0x1, []byte(`{`), true), frame(true, 0x1, []byte(`}`), true)...),
		"close with one byte":   frame(true, 0x8, []byte{0x03}, true),
		"close code 1005":       frame(true, 0x8, []byte{0x03, 0xed}, true),
		"close code 999":        frame(true, 0x8, []byte{0x03, 0xe7}, true),
		"close code 5000":       frame(true, 0x8, []byte{0x13, 0x88}, true),
		"close code 65535":      frame(true, 0x8, []byte{0xff, 0xff}, true),
		"close reason not utf8": frame(true, 0x8, []byte{0x03, 0xe8, 0xff, 0xfe}, true),
	} {
		t.Run(name, func(t *testing.T) {
			w := dialRawWS(t, ts, "/channels/proto/ws")
			w.send(t, f)
			w.expectClose(t, 1002)
		})
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
}

// A text message that is not UTF-8, whole or gathered from fragments
// split inside a character, fails the connection with 1007 (RFC 6455 8.1)
// and publishes nothing; a valid close is echoed with its code.
func TestWebSocketInvalidUTF8Closes1007ValidCloseEchoed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	publish := []byte("{\"type\":\"publish\",\"content\":\"caf\xc3\xa9\"}")
	mid := bytes.IndexByte(publish, 0xc3) + 1 // inside "é"
	for name, frames := range map[string][][]byte{
		"whole":     {frame(true, 0x1, []byte("{\"type\":\"publish\",\"content\":\"\xff\"}"), true)},
		"truncated": {frame(false, 0x1, publish[:mid], true), frame(true, 0x0, []byte(`"}`), true)},
	} {
		t.Run(name, func(t *testing.T) {
			w := dialRawWS(t, ts, "/channels/utf8/ws")
			w.send(t, frames...)
			w.expectClose(t, 1007)
		})
	}
	// Split inside "é" across two fragments: valid once gathered.
	w := dialRawWS(t, ts, "/channels/utf8/ws")
	w.send(t, frame(false, 0x1, publish[:mid], true), frame(true, 0x0, publish[mid:], true))
	w.expectEvent(t, "ack")
	w.send(t, frame(true, 0x8, []byte{0x0f, 0xa0, 'b', 'y', 'e'}, true)) // 4000, an application's code
	w.expectClose(t, 4000)                                               // echoed
	if c := ts.Hub.Stats().Published(); c != 1 {
		t.Fatalf("published %d messages; want only the valid one", c)
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
}

func TestIdleWebSocketsAndSSEHoldNoGoroutine(t *testing.T) {
	ts := newTestServer(t)
	const n = 200
	before := runtime.NumGoroutine()
	conns := make([]*websocket.Conn, 0, n)
	for range n {
		conns = append(conns, dialWS(t, ts, "/channels/idle/ws"))
	}
	waitObservers(t, ts.Hub, announce.WebSocket, n)
	// The handshakes' goroutines end; the client side holds no goroutine
	// per connection either (nobody reads).
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d idle WebSockets to hold fewer than %d goroutines", n, n/10), func() bool {
		return runtime.NumGoroutine()-before <= n/10
	})
	streams := make([]*rawSSE, 0, n)
	for range n {
		streams = append(streams, dialRawSSE(t, ts, "/channels/idle/events"))
	}
	waitObservers(t, ts.Hub, announce.SSE, n)
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d idle WebSockets and %d SSE streams to hold fewer than %d goroutines", n, n, n/5), func() bool {
		return runtime.NumGoroutine()-before <= n/5
	})
	// Idle, then woken: every one still gets the message.
	m := ts.Publish(t, "idle", "wake")
	for _, c := range conns {
		expectWSIDs(t, c, m.ID)
	}
	for _, c := range streams {
		c.expectID(t, m.ID)
	}
	for _, c := range conns {
		c.Close()
	}
	for _, c := range streams {
		c.conn.Close()
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
	waitObservers(t, ts.Hub, announce.SSE, 0)
}

// rawSSE is an event stream read by hand, with no goroutine of its own.
type rawSSE struct{ *rawHTTP }

func dialRawSSE(t *testing.T, ts *testServer, path string) *rawSSE {
	t.Helper()
	h := dialRaw(t, ts)
	if resp := h.request(t, path, "Accept: text/event-stream"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v", path, resp.Status)
	}
	return &rawSSE{h}
}

// expectID reads lines until the event with id.
func (s *rawSSE) expectID(t *testing.T, id uint64) {
	t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	want := fmt.Sprintf("id: %d\n", id)
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading for %q: %v", want, err)
		}
		if line == want {
			return
		}
	}
}

// A frame far over the limit is still arriving when the server closes the
// connection: the client must be able to finish its write and read the
// close frame (a socket closed with unread bytes is reset; a browser whose
// write fails reports 1006, never the 1009 it was sent).
func TestWebSocketFrameFarOverLimitGetsItsClose(t *testing.T) {
	t.Parallel()
	ts := newTestServerHub(t, func(c *announce.Config) { c.MaxMessage = 1024 })
	for range 3 {
		w := dialRawWS(t, ts, "/channels/whuge/ws")
		const size = 8 << 20
		head := []byte{0x81, 0x80 | 127}
		head = binary.BigEndian.AppendUint64(head, size)
		head = append(head, 1, 2, 3, 4) // the mask key
		sent := make(chan error, 1)
		go func() {
			_ = w.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, err := w.conn.Write(append(head, make([]byte, size)...))
			sent <- err
		}()
		_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		w.expectClose(t, 1009)
		if err := <-sent; err != nil {
			t.Errorf("writing the frame: %v, want the server to read it to the end", err)
		}
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
}
