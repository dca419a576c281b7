package api_test

// Helpers of the WebSocket tests: dialling, reading frames, expecting closes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsReadTimeout bounds every WebSocket read a test makes.
const wsReadTimeout = 10 * time.Second

// wsURL is the ws:// address of path on the test server.
func wsURL(ts *testServer, path string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + path
}

// dialWS opens a WebSocket on path with the default dialer, failing the test
// if the upgrade is refused. header is name, value pairs. The connection is
// closed when the test ends.
func dialWS(t testing.TB, ts *testServer, path string, header ...string) *websocket.Conn {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL(ts, path), h)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("dial %s: %v (status %d: %s)", path, err, resp.StatusCode, b)
		}
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// wsIn is any frame the server sends: a message, or an event frame (ack,
// error, truncated).
type wsIn struct {
	Event   string  `json:"event"`
	Error   string  `json:"error"`
	ID      uint64  `json:"id"`
	Channel string  `json:"channel"`
	Content *string `json:"content"`
	Since   uint64  `json:"since"`
	First   uint64  `json:"first"`
	Raw     string  `json:"-"`
}

// isMessage reports whether the frame is a message (not an event frame).
func (f wsIn) isMessage() bool { return f.Event == "" }

func decodeWS(kind int, data []byte) (wsIn, error) {
	var f wsIn
	if kind != websocket.TextMessage {
		return f, fmt.Errorf("frame of type %d, want a text frame: %q", kind, data)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("frame %q is not JSON: %v", data, err)
	}
	f.Raw = string(data)
	if f.isMessage() && (f.ID == 0 || f.Content == nil) {
		return f, fmt.Errorf("frame %s is neither a message with id and content nor an event", data)
	}
	return f, nil
}

// readWS reads the next frame, failing the test on anything but a JSON text frame.
func readWS(t testing.TB, conn *websocket.Conn) wsIn {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wsReadTimeout))
	kind, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("reading the WebSocket: %v", err)
	}
	f, err := decodeWS(kind, data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readWSMessage reads the next frame and checks it is a message.
func readWSMessage(t testing.TB, conn *websocket.Conn) wsIn {
	t.Helper()
	f := readWS(t, conn)
	if !f.isMessage() {
		t.Fatalf("frame %s, want a message", f.Raw)
	}
	return f
}

// expectWSIDs reads messages and checks that they carry exactly ids, in order.
func expectWSIDs(t testing.TB, conn *websocket.Conn, ids ...uint64) {
	t.Helper()
	for _, want := range ids {
		if f := readWSMessage(t, conn); f.ID != want {
			t.Fatalf("WebSocket message id %d, want %d: %s", f.ID, want, f.Raw)
		}
	}
}

// expectWSClose reads (skipping data frames) until the server closes the
// connection and checks the close code; it returns the close error.
func expectWSClose(t testing.TB, conn *websocket.Conn, code int) *websocket.CloseError {
	t.Helper()
	for skipped := 0; ; skipped++ {
		_ = conn.SetReadDeadline(time.Now().Add(wsReadTimeout))
		if _, _, err := conn.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != code {
				t.Fatalf("connection ended with %v after %d frames, want close code %d", err, skipped, code)
			}
			return ce
		}
	}
}

// sendWS writes a text frame.
func sendWS(t testing.TB, conn *websocket.Conn, frame string) {
	t.Helper()
	_ = conn.SetWriteDeadline(time.Now().Add(wsReadTimeout))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("writing %q: %v", frame, err)
	}
}

// expectWSError reads the next frame and checks it is an error frame.
func expectWSError(t testing.TB, conn *websocket.Conn, after string) {
	t.Helper()
	f := readWS(t, conn)
	if f.Event != "error" || strings.TrimSpace(f.Error) == "" {
		t.Fatalf("after %s: frame %s, want {\"event\":\"error\",\"error\":\"<reason>\"}", after, f.Raw)
	}
	var fields map[string]any
	_ = json.Unmarshal([]byte(f.Raw), &fields)
	if len(fields) != 2 {
		t.Errorf("after %s: error frame %s has other fields than event and error", after, f.Raw)
	}
}

// publishWS sends a publish frame and reads the ack and the echo of the
// message (in either order), returning the message.
func publishWS(t testing.TB, conn *websocket.Conn, frame, content string) wsIn {
	t.Helper()
	sendWS(t, conn, frame)
	var ack, msg *wsIn
	for ack == nil || msg == nil {
		f := readWS(t, conn)
		switch {
		case f.Event == "ack" && ack == nil:
			ack = &f
		case f.isMessage() && msg == nil:
			msg = &f
		default:
			t.Fatalf("after publishing %s: frame %s, want an ack and the message", frame, f.Raw)
		}
	}
	if ack.ID == 0 || ack.ID != msg.ID || *msg.Content != content {
		t.Fatalf("ack %s and message %s, want the same id and content %q", ack.Raw, msg.Raw, content)
	}
	var fields map[string]any
	_ = json.Unmarshal([]byte(ack.Raw), &fields)
	if len(fields) != 2 {
		t.Errorf("ack %s, want exactly {\"event\":\"ack\",\"id\":N}", ack.Raw)
	}
	return *msg
}

// currentID is the id of the channel's current message, read from the hub.
func currentID(t testing.TB, ts *testServer, channel string) uint64 {
	t.Helper()
	ch, err := ts.Hub.Channel(context.Background(), channel)
	if err != nil {
		t.Fatal(err)
	}
	return ch.Current().ID
}

// wsResult is one read of a pumped connection.
type wsResult struct {
	kind int
	data []byte
	err  error
}

// pumpWS reads conn in its own goroutine (so that ping and close handlers
// run) and hands over every frame and, last, the error that ended it.
func pumpWS(conn *websocket.Conn) <-chan wsResult {
	out := make(chan wsResult, 64)
	go func() {
		defer close(out)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			kind, data, err := conn.ReadMessage()
			out <- wsResult{kind, data, err}
			if err != nil {
				return
			}
		}
	}()
	return out
}
