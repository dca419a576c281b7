package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/announce/announce/announce"
)

// A connection handed back after a long-poll, carrying more pipelined bytes
// than net/http's 4 KiB read buffer, is taken over again by a second
// waiting poll: the bytes net/http has not read yet stay in the handed-back
// connection (the socket does not show them), and the poll and the request
// behind it are still answered, in order, on the one connection.
func TestHandedBackConnectionWithPipelinedBytesPastTheBuffer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	h := dialRaw(t, ts)
	h.send(t, "/channels/hb/status?since=0") // waits: nothing published yet
	waitObservers(t, ts.Hub, announce.Poll, 1)

	// While it waits: a second poll, then a log request with a 5 KiB header.
	ahead := "GET /channels/hb/status?since=1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /channels/hb/messages?since=0 HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("x", 5000) + "\r\n\r\n"
	if _, err := io.WriteString(h.conn, ahead); err != nil {
		t.Fatal(err)
	}
	ts.Publish(t, "hb", "one")
	if resp, body := h.answer(t); resp.StatusCode != http.StatusOK || contentOf(t, body) != "one" {
		t.Fatalf("the first poll answered %d %q", resp.StatusCode, body)
	}
	waitObservers(t, ts.Hub, announce.Poll, 1) // the second poll waits, on the handed-back connection
	ts.Publish(t, "hb", "two")
	if resp, body := h.answer(t); resp.StatusCode != http.StatusOK || contentOf(t, body) != "two" {
		t.Fatalf("the second poll answered %d %q", resp.StatusCode, body)
	}
	if resp, body := h.answer(t); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"one"`) || !strings.Contains(body, `"two"`) {
		t.Fatalf("the log request behind them answered %d %q", resp.StatusCode, body)
	}
}
