package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
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

func TestWebSocketTextFramesCurrentThenLive(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)

	empty := dialWS(t, ts, "/channels/wsl/ws")
	m1 := ts.Publish(t, "wsl", "first")
	f := readWSMessage(t, empty)
	if f.ID != m1.ID || f.Channel != "wsl" || *f.Content != "first" {
		t.Fatalf("got %s, want %+v", f.Raw, m1)
	}
	var m announce.Message
	if err := json.Unmarshal([]byte(f.Raw), &m); err != nil || !m.Time.Equal(m1.Time) {
		t.Fatalf("frame %s: %v, want the message as published (%+v)", f.Raw, err, m1)
	}

	cur := ts.Publish(t, "wsl", "second")
	conn := dialWS(t, ts, "/channels/wsl/ws")
	if f := readWSMessage(t, conn); f.ID != cur.ID || *f.Content != "second" {
		t.Fatalf("on connect got %s, want the current message %+v", f.Raw, cur)
	}
	ids := publishN(t, ts, "wsl", "live", 30)
	expectWSIDs(t, conn, ids...)
	expectWSIDs(t, empty, append([]uint64{cur.ID}, ids...)...)
}

func TestWebSocketReplaySince(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	publishN(t, ts, "wrp", "old", 6)
	cases := []struct {
		name  string
		path  string
		first uint64
	}{
		{"since", "/channels/wrp/ws?since=2", 3},
		{"since=0", "/channels/wrp/ws?since=0", 1},
		{"since at current", "/channels/wrp/ws?since=6", 7},
		{"since ahead", "/channels/wrp/ws?since=1000", 6},
		{"status upgrade", "/channels/wrp/status?since=4", 5},
	}
	conns := make([]*websocket.Conn, len(cases))
	for i, c := range cases {
		conns[i] = dialWS(t, ts, c.path)
	}
	live := publishN(t, ts, "wrp", "new", 3)
	for i, c := range cases {
		var want []uint64
		for id := c.first; id <= 6; id++ {
			want = append(want, id)
		}
		t.Run(c.name, func(t *testing.T) { expectWSIDs(t, conns[i], append(want, live...)...) })
	}
}

func TestWebSocketTruncatedWhenCursorOlderThanHistory(t *testing.T) {
	t.Parallel()
	ts := newTestServerHub(t, func(c *announce.Config) { c.History = 5 })
	publishN(t, ts, "wtr", "m", 10) // history keeps 6..10
	conn := dialWS(t, ts, "/channels/wtr/ws?since=3")
	f := readWS(t, conn)
	if f.Event != "truncated" || f.Since != 3 || f.First != 6 {
		t.Fatalf("first frame %s, want {\"event\":\"truncated\",\"since\":3,\"first\":6}", f.Raw)
	}
	expectWSIDs(t, conn, 6, 7, 8, 9, 10)
	live := ts.Publish(t, "wtr", "live")
	expectWSIDs(t, conn, live.ID)
}

func TestWebSocketBadCursorAndPlainGET(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{"/channels/wbad/ws?since=x", "/ws?since=-3", "/channels/wbad/status?since=1e3"} {
		_, resp, err := websocket.DefaultDialer.Dial(wsURL(ts, path), nil)
		if err == nil || resp == nil {
			t.Fatalf("dial %s: err %v, want a refused upgrade", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		assertError(t, resp, b, http.StatusBadRequest)
	}
	// Not an upgrade at all.
	resp, body := ts.get(t, "/channels/wbad/ws")
	assertError(t, resp, body, http.StatusBadRequest)
	if n := ts.Hub.Stats().Observers(announce.WebSocket); n != 0 {
		t.Errorf("%d WebSocket observers registered by refused requests", n)
	}
}

func TestWebSocketPublishAckAndEcho(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	pub := dialWS(t, ts, "/channels/wpub/ws")
	other := dialWS(t, ts, "/channels/wpub/ws")
	sse := openSSE(t, ts.URL+"/channels/wpub/events")

	m := publishWS(t, pub, `{"type":"publish","content":"x"}`, "x")
	if m.ID != 1 || m.Channel != "wpub" {
		t.Fatalf("published %s, want id 1 on wpub", m.Raw)
	}
	m2 := publishWS(t, pub, `{"type":"publish","content":"{\"json\":\"inside\"}"}`, `{"json":"inside"}`)
	expectWSIDs(t, other, m.ID, m2.ID)
	sse.expectIDs(t, m.ID, m2.ID)

	// The stored message is what was acknowledged.
	resp, body := ts.get(t, "/channels/wpub/messages?since=0")
	assertStatus(t, resp, body, http.StatusOK)
	var log []announce.Message
	if err := json.Unmarshal(body, &log); err != nil || len(log) != 2 || log[1].Content != `{"json":"inside"}` {
		t.Fatalf("log %s (%v), want the two published messages", body, err)
	}
}

func TestWebSocketPublishKey(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *api.Config) { c.PublishKey = "s3cret" })
	conn := dialWS(t, ts, "/channels/wkey/ws")

	sendWS(t, conn, `{"type":"publish","content":"no key"}`)
	expectWSError(t, conn, "a publish without key")
	sendWS(t, conn, `{"type":"publish","content":"empty key","key":""}`)
	expectWSError(t, conn, "a publish with an empty key")
	sendWS(t, conn, `{"type":"publish","content":"wrong key","key":"guess"}`)
	expectWSError(t, conn, "a publish with a wrong key")
	if id := currentID(t, ts, "wkey"); id != 0 {
		t.Fatalf("refused publishes stored message %d", id)
	}
	m := publishWS(t, conn, `{"type":"publish","content":"right key","key":"s3cret"}`, "right key")
	if m.ID != 1 {
		t.Fatalf("published %s, want id 1", m.Raw)
	}
}

func TestWebSocketBadFramesKeepConnectionOpen(t *testing.T) {
	t.Parallel()
	ts := newTestServerHub(t, func(c *announce.Config) { c.MaxMessage = 100 })
	conn := dialWS(t, ts, "/channels/wbf/ws")
	for _, frame := range []string{
		`not json`,
		`[1,2,3]`,
		`"publish"`,
		`{"type":"subscribe","content":"x"}`,
		`{"content":"no type"}`,
		`{"type":"publish"}`,
		`{"type":"publish","content":null}`,
		`{"type":"publish","content":42}`,
		`{"type":"publish","content":""}`,
		`{"type":"publish","content":"` + strings.Repeat("y", 101) + `"}`, // over MaxMessage, under the frame limit
	} {
		sendWS(t, conn, frame)
		expectWSError(t, conn, frame)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(wsReadTimeout))
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"publish","content":"binary"}`)); err != nil {
		t.Fatal(err)
	}
	expectWSError(t, conn, "a binary frame")
	if id := currentID(t, ts, "wbf"); id != 0 {
		t.Fatalf("bad frames stored message %d", id)
	}
	// Still open and working.
	m := publishWS(t, conn, `{"type":"publish","content":"still here"}`, "still here")
	if m.ID != 1 {
		t.Fatalf("published %s, want id 1", m.Raw)
	}
}

func TestWebSocketFrameSizeLimit(t *testing.T) {
	t.Parallel()
	const maxMessage = 1024
	ts := newTestServerHub(t, func(c *announce.Config) { c.MaxMessage = maxMessage })
	conn := dialWS(t, ts, "/channels/wbig/ws")
	// A frame of exactly --max-message + 1 KiB is accepted (the JSON around
	// the content is padded with whitespace up to the limit).
	content := strings.Repeat("a", maxMessage)
	frame := `{"type":"publish","content":"` + content + `"}`
	frame += strings.Repeat(" ", maxMessage+1024-len(frame))
	publishWS(t, conn, frame, content)
	// One byte more closes the connection with 1009.
	sendWS(t, conn, frame+" ")
	expectWSClose(t, conn, websocket.CloseMessageTooBig)
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
}

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

func TestShutdownClosesWebSocketsAndEndsSSE(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "sd", "before")
	ws := dialWS(t, ts, "/channels/sd/ws")
	seed := dialWS(t, ts, "/status")
	sse := openSSE(t, ts.URL+"/channels/sd/events")
	expectWSIDs(t, ws, m.ID)
	sse.expectIDs(t, m.ID)

	stopped := make(chan error, 1)
	go func() { stopped <- ts.API.Shutdown(context.Background()) }()
	if ce := expectWSClose(t, ws, websocket.CloseGoingAway); ce.Text == "" {
		t.Error("1001 without a reason")
	}
	expectWSClose(t, seed, websocket.CloseGoingAway)
	for _, e := range sse.expectEnd(t) {
		if e.HasData {
			t.Errorf("event %+v after shutdown", e)
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still waiting for the streams 10s after it began")
	}
}

// --- Slow consumers, resume under concurrency, and leaks: both streaming
// transports side by side.

// leadingID reads the id of a message frame from its first bytes, so that
// the flood below costs its readers no JSON decoding of 64 KiB contents.
func leadingID(prefix []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(prefix, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	id, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return id, err == nil
}

// scrapeMetric returns the value of the sample line that starts with series
// (a metric name with its labels) on /metrics.
func scrapeMetric(t testing.TB, ts *testServer, series string) float64 {
	t.Helper()
	resp, body := ts.get(t, "/metrics")
	assertStatus(t, resp, body, http.StatusOK)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s on /metrics", series)
	return 0
}

// TestSlowConsumerCutWhileOthersKeepUp floods a channel with 64 KiB messages
// while one WebSocket and one SSE client stop reading: each is cut alone
// (1008 "slow consumer" / the stream ends with an error event), while 200
// WebSocket observers that read receive every message in order.
func TestSlowConsumerCutWhileOthersKeepUp(t *testing.T) {
	const (
		channel   = "flood"
		observers = 200
		maxFlood  = 600 // far more than the kernel buffers of one socket pair hold
		lag       = 2   // the flood waits for the readers: their queues never fill
	)
	ts := newTestServerHub(t, func(c *announce.Config) { c.Queue = 16 },
		// The cut client reads its backlog, and the close, only after the
		// flood: the server's blocked write must outlast that.
		func(c *api.Config) { c.WriteTimeout = 60 * time.Second })
	content := strings.Repeat("x", ts.Hub.MaxMessage())

	// The readers.
	var (
		wg       sync.WaitGroup
		stopping atomic.Bool
		lasts    [observers]atomic.Uint64
		failures = make(chan error, observers)
	)
	for i := range observers {
		conn := dialWS(t, ts, "/channels/"+channel+"/ws")
		wg.Go(func() {
			head := make([]byte, 32)
			for {
				_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
				kind, r, err := conn.NextReader()
				if err != nil {
					if !stopping.Load() {
						failures <- fmt.Errorf("observer %d after id %d: %v", i, lasts[i].Load(), err)
					}
					return
				}
				n, _ := io.ReadFull(r, head)
				id, ok := leadingID(head[:n])
				if _, err := io.Copy(io.Discard, r); err != nil || kind != websocket.TextMessage || !ok || id != lasts[i].Load()+1 {
					failures <- fmt.Errorf("observer %d after id %d: frame %q... (type %d, read error %v)", i, lasts[i].Load(), head[:n], kind, err)
					return
				}
				lasts[i].Store(id)
			}
		})
	}
	t.Cleanup(func() {
		stopping.Store(true)
		shutdownAPI(t, ts.API) // ends the readers
		wg.Wait()
	})
	minLast := func() uint64 {
		low := lasts[0].Load()
		for i := range lasts {
			low = min(low, lasts[i].Load())
		}
		return low
	}

	// The clients that stop reading. They need no tiny kernel buffer: the
	// kernel grows a socket's receive buffer only as its reader consumes, so
	// one that never reads keeps the initial one (a 4 KiB buffer would even
	// hurt: through such a window, delayed ACKs and zero-window probes make
	// reading the backlog afterwards take minutes).
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	slowWS, _, err := (&websocket.Dialer{ReadBufferSize: 1024}).DialContext(ctx, wsURL(ts, "/channels/"+channel+"/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowWS.Close()
	slowClient := &http.Client{Transport: &http.Transport{ReadBufferSize: 4096}}
	defer slowClient.CloseIdleConnections()
	slowSSE, err := dialSSE(ctx, slowClient, ts.URL+"/channels/"+channel+"/events")
	if err != nil {
		t.Fatal(err)
	}
	defer slowSSE.Close()
	if slowSSE.Resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE status %d", slowSSE.Resp.StatusCode)
	}
	waitObservers(t, ts.Hub, announce.WebSocket, observers+1)
	waitObservers(t, ts.Hub, announce.SSE, 1)

	// The flood, until both silent clients are cut.
	start := time.Now()
	var published uint64
	for ts.Hub.Stats().SlowConsumers() < 2 {
		if published >= maxFlood {
			t.Fatalf("%d messages of %d bytes published and %d slow consumers cut, want 2", published, len(content), ts.Hub.Stats().SlowConsumers())
		}
		published = ts.Publish(t, channel, content).ID
		testenv.WaitFor(t, 30*time.Second, "the reading observers to keep up", func() bool {
			return minLast()+lag >= published || len(failures) > 0
		})
		if len(failures) > 0 {
			t.Fatal(<-failures)
		}
	}
	t.Logf("both silent clients cut after %d messages of %d bytes (%v)", published, len(content), time.Since(start))
	if n := ts.Hub.Stats().SlowConsumers(); n != 2 {
		t.Fatalf("%d slow consumers cut, want exactly the 2 silent clients", n)
	}
	if n := ts.Hub.Stats().Observers(announce.WebSocket); n != observers {
		t.Errorf("%d WebSocket observers left, want the %d readers", n, observers)
	}
	if n := ts.Hub.Stats().Observers(announce.SSE); n != 0 {
		t.Errorf("%d SSE observers left, want 0", n)
	}
	if v := scrapeMetric(t, ts, "announce_slow_consumers_total"); v < 2 {
		t.Errorf("announce_slow_consumers_total %v, want >= 2", v)
	}

	// Every reader got everything, in order (each checked id == last+1).
	last := ts.Publish(t, channel, "the end").ID
	testenv.WaitFor(t, 30*time.Second, "every reader to get the last message", func() bool {
		return minLast() == last || len(failures) > 0
	})
	if len(failures) > 0 {
		t.Fatal(<-failures)
	}

	// The silent WebSocket, reading at last: a gapless prefix, then 1008.
	start = time.Now()
	var got uint64
	for {
		_ = slowWS.SetReadDeadline(time.Now().Add(30 * time.Second))
		kind, r, err := slowWS.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "slow consumer" {
				t.Fatalf("silent WebSocket ended with %v after %d messages, want close 1008 \"slow consumer\"", err, got)
			}
			break
		}
		head := make([]byte, 32)
		n, _ := io.ReadFull(r, head)
		id, ok := leadingID(head[:n])
		if _, err := io.Copy(io.Discard, r); err != nil || kind != websocket.TextMessage || !ok || id != got+1 {
			t.Fatalf("silent WebSocket after id %d: frame %q (%v)", got, head[:n], err)
		}
		got = id
	}
	if got == 0 || got >= published {
		t.Errorf("silent WebSocket got ids 1..%d of %d before its close", got, published)
	}

	t.Logf("silent WebSocket read its %d messages and the close (%v)", got, time.Since(start))

	// The silent SSE stream: a gapless prefix, an error event, the end.
	start = time.Now()
	got = 0
	var events []sseEvent
	for {
		e, err := slowSSE.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("silent SSE stream failed after id %d: %v", got, err)
		}
		if !e.HasData {
			continue
		}
		events = append(events, e)
		if e.Event != "message" {
			continue
		}
		if id, err := strconv.ParseUint(e.ID, 10, 64); err != nil || id != got+1 {
			t.Fatalf("silent SSE stream after id %d: event id %q", got, e.ID)
		}
		got++
	}
	t.Logf("silent SSE stream read its %d messages and its end (%v)", got, time.Since(start))
	if got == 0 || got >= published {
		t.Errorf("silent SSE stream got ids 1..%d of %d before it ended", got, published)
	}
	if len(events) == 0 || events[len(events)-1].Event != "error" || !strings.Contains(events[len(events)-1].Data, "slow consumer") {
		t.Errorf("silent SSE stream did not end with an error event naming the slow consumer")
	}
}

// resumeWS observes channel over WebSockets from the start: it reads a
// random number of messages, drops the connection without a close frame and
// reconnects with ?since= the last id it saw, until it has seen total. It
// returns the concatenated ids.
func resumeWS(ctx context.Context, url string, total uint64, quota func() int) ([]uint64, error) {
	var ids []uint64
	var last uint64
	for last < total {
		conn, _, err := websocket.DefaultDialer.DialContext(ctx, url+"?since="+strconv.FormatUint(last, 10), nil)
		if err != nil {
			return ids, fmt.Errorf("reconnect after id %d: %w", last, err)
		}
		for n := quota(); n > 0 && last < total; n-- {
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			kind, data, err := conn.ReadMessage()
			if websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
				break // cut as a slow consumer: resume, as a client should
			}
			if err != nil {
				conn.Close()
				return ids, fmt.Errorf("after id %d: %w", last, err)
			}
			f, err := decodeWS(kind, data)
			if err != nil || !f.isMessage() || f.ID != last+1 {
				conn.Close()
				return ids, fmt.Errorf("after id %d: frame %q (%v), want id %d", last, data, err, last+1)
			}
			ids = append(ids, f.ID)
			last = f.ID
		}
		conn.NetConn().Close() // abrupt: no close frame
	}
	return ids, nil
}

// resumeSSE is resumeWS over SSE: it resumes with Last-Event-ID (as
// EventSource does) or ?since=, in turn, sometimes with a stale ?since= that
// Last-Event-ID must override.
func resumeSSE(ctx context.Context, client *http.Client, url string, total uint64, quota func() int) ([]uint64, error) {
	var ids []uint64
	var last uint64
	for round := 0; last < total; round++ {
		cursor := strconv.FormatUint(last, 10)
		var s *sseStream
		var err error
		switch round % 3 {
		case 0:
			s, err = dialSSE(ctx, client, url+"?since="+cursor)
		case 1:
			s, err = dialSSE(ctx, client, url, "Last-Event-ID", cursor)
		default:
			s, err = dialSSE(ctx, client, url+"?since=0", "Last-Event-ID", cursor)
		}
		if err != nil {
			return ids, fmt.Errorf("reconnect after id %d: %w", last, err)
		}
		if s.Resp.StatusCode != http.StatusOK {
			s.Close()
			return ids, fmt.Errorf("reconnect after id %d: status %d", last, s.Resp.StatusCode)
		}
		for n := quota(); n > 0 && last < total; n-- {
			e, err := s.NextEvent()
			if err == nil && e.Event == "error" && strings.Contains(e.Data, "slow consumer") {
				break // cut as a slow consumer: resume
			}
			var m announce.Message
			if err == nil {
				m, err = e.message()
			}
			if err != nil || m.ID != last+1 {
				s.Close()
				return ids, fmt.Errorf("after id %d: event %+v (%v), want id %d", last, e, err, last+1)
			}
			ids = append(ids, m.ID)
			last = m.ID
		}
		s.Close() // abrupt: the request is cancelled mid-stream
	}
	return ids, nil
}

// TestReplayNoGapNoDuplicateUnderConcurrency: 4 publishers post 1,000
// messages on one channel while 30 WebSocket and 30 SSE observers keep
// dropping their connections at random points and resuming from the last id
// they saw. Every observer's concatenated stream is exactly 1..1000.
func TestReplayNoGapNoDuplicateUnderConcurrency(t *testing.T) {
	const (
		channel    = "resume"
		total      = 1000
		publishers = 4
		wsObs      = 30
		sseObs     = 30
	)
	ts := newTestServerHub(t, func(c *announce.Config) { c.History = 2 * total })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: sseObs}}
	defer client.CloseIdleConnections()

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	streams := make([][]uint64, wsObs+sseObs)
	errs := make(chan error, wsObs+sseObs+publishers)
	var wg sync.WaitGroup
	for i := range wsObs + sseObs {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		quota := func() int { return 1 + rng.IntN(80) }
		wg.Go(func() {
			var err error
			if i < wsObs {
				streams[i], err = resumeWS(ctx, wsURL(ts, "/channels/"+channel+"/ws"), total, quota)
			} else {
				streams[i], err = resumeSSE(ctx, client, ts.URL+"/channels/"+channel+"/events", total, quota)
			}
			if err != nil {
				errs <- fmt.Errorf("observer %d: %w", i, err)
				cancel()
			}
		})
	}
	for p := range publishers {
		wg.Go(func() {
			for n := range total / publishers {
				if _, err := ts.publish(channel, fmt.Sprintf("publisher %d message %d", p, n)); err != nil {
					errs <- fmt.Errorf("publisher %d: %w", p, err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for i, ids := range streams {
		if len(ids) != total {
			t.Errorf("observer %d saw %d messages, want %d", i, len(ids), total)
			continue
		}
		for j, id := range ids {
			if id != uint64(j+1) {
				t.Errorf("observer %d: message %d has id %d", i, j, id)
				break
			}
		}
	}
}

// TestWebSocketSSEAbruptClosesLeakNothing drops 500 WebSockets without a
// close frame and cancels 500 SSE requests, some mid-stream: the observers
// are unregistered and the goroutines return to the baseline.
func TestWebSocketSSEAbruptClosesLeakNothing(t *testing.T) {
	const (
		channel = "churn"
		each    = 500
		workers = 16
	)
	ts := newTestServer(t)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	ts.Publish(t, channel, "current")

	churn := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		readFirst := i%2 == 0 // half leave after their first message, half at once
		if (i/2)%2 == 0 {
			conn, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL(ts, "/channels/"+channel+"/ws"), nil)
			if err != nil {
				return err
			}
			if readFirst {
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, _, err := conn.ReadMessage(); err != nil {
					conn.NetConn().Close()
					return err
				}
			}
			return conn.NetConn().Close()
		}
		s, err := dialSSE(ctx, client, ts.URL+"/channels/"+channel+"/events")
		if err != nil {
			return err
		}
		defer s.Close()
		if readFirst {
			if _, err := s.NextMessage(); err != nil {
				return err
			}
		}
		return nil
	}

	// Warm up (the client's and server's lazily started goroutines), then
	// take the baseline.
	for i := range 4 {
		if err := churn(i); err != nil {
			t.Fatal(err)
		}
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
	waitObservers(t, ts.Hub, announce.SSE, 0)
	client.CloseIdleConnections()
	base := runtime.NumGoroutine()

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= 2*each {
					return
				}
				if err := churn(i); err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		})
	}
	// Messages keep flowing, so some connections end mid-write.
	for range 20 {
		ts.Publish(t, channel, "during the churn")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
	waitObservers(t, ts.Hub, announce.SSE, 0)
	client.CloseIdleConnections()

	const slack = 10
	deadline := time.Now().Add(20 * time.Second)
	for n := runtime.NumGoroutine(); n > base+slack; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			var stacks bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines 20s after %d abrupt closes, baseline %d:\n%s", n, 2*each, base, stacks.String())
		}
		time.Sleep(10 * time.Millisecond)
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
