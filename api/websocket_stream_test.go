package api_test

// A WebSocket observer: the current message, then live; replay and truncation.

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
)

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
