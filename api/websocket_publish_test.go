package api_test

// Publishing over a WebSocket: acks, the publish key, bad frames, the size limit.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

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
