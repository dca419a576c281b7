package api_test

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// sendBytes writes s on h's connection as written, "\n" as CRLF.
func (h *rawHTTP) sendBytes(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(h.conn, strings.ReplaceAll(s, "\n", "\r\n")); err != nil {
		t.Fatal(err)
	}
}

// answers reads responses until the server closes the connection.
func (h *rawHTTP) answersUntilClosed(t *testing.T) []string {
	t.Helper()
	_ = h.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var got []string
	for {
		resp, err := http.ReadResponse(h.r, nil)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return got
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection stayed open after %q", got)
		}
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, resp.Status+" close:"+strconv.FormatBool(resp.Close)+" "+strings.TrimSpace(string(body)))
	}
}

// neverPublished fails when the channel's log has content: a request
// smuggled inside another was served.
func neverPublished(t *testing.T, ts *testServer, channel, content string) {
	t.Helper()
	resp, body := ts.get(t, "/channels/"+channel+"/messages?since=0")
	assertStatus(t, resp, body, http.StatusOK)
	if strings.Contains(string(body), content) {
		t.Fatalf("a smuggled request was served: %s", body)
	}
}

// bothLengths is a request head with Content-Length and Transfer-Encoding.
const bothLengths = "Content-Length: 5\nTransfer-Encoding: chunked\n\n"

// next is a request pipelined after the one under test; the server must never serve it.
const next = "GET /channels/next/messages?since=0 HTTP/1.1\nHost: x\n\n"

// TestBothLengthsCloseTheConnection: a request with both Content-Length and
// Transfer-Encoding is answered (read as chunked) and its connection
// closed, so a request pipelined after it, or smuggled in its body, is
// never served (RFC 9112 6.1): on a publish, a long-poll answered at once
// and one that waits.
func TestBothLengthsCloseTheConnection(t *testing.T) {
	ts := newTestServer(t)
	ts.Publish(t, "next", "the pipelined request would read this")

	t.Run("publish", func(t *testing.T) {
		x := dialRaw(t, ts)
		x.sendBytes(t, "POST /channels/cl-te/messages HTTP/1.1\nHost: x\nContent-Type: text/plain\n"+bothLengths+
			"5\nhello\n0\n\n"+next)
		got := x.answersUntilClosed(t)
		if len(got) != 1 || !strings.HasPrefix(got[0], "201 Created close:true ") || !strings.Contains(got[0], `"content":"hello"`) {
			t.Fatalf("answers %q, want one 201 publishing hello, with Connection: close", got)
		}
	})
	t.Run("smuggled in the body", func(t *testing.T) {
		x := dialRaw(t, ts)
		x.sendBytes(t, "POST /channels/cl-te/messages HTTP/1.1\nHost: x\nContent-Type: text/plain\nContent-Length: 60\nTransfer-Encoding: chunked\n\n"+
			"3\nabc\n0\n\nPOST /channels/cl-te/messages HTTP/1.1\nHost: x\nContent-Length: 8\n\nsmuggled")
		if got := x.answersUntilClosed(t); len(got) != 1 || !strings.HasPrefix(got[0], "201 ") {
			t.Fatalf("answers %q, want the first publish's 201 alone", got)
		}
		neverPublished(t, ts, "cl-te", "smuggled")
	})
	t.Run("long-poll answered at once", func(t *testing.T) {
		x := dialRaw(t, ts)
		x.sendBytes(t, "GET /channels/next/status?since=0 HTTP/1.1\nHost: x\n"+bothLengths+"0\n\n"+next)
		if got := x.answersUntilClosed(t); len(got) != 1 || !strings.HasPrefix(got[0], "200 OK close:true ") {
			t.Fatalf("answers %q, want one 200 with Connection: close", got)
		}
	})
	t.Run("waiting long-poll", func(t *testing.T) {
		x := dialRaw(t, ts)
		x.sendBytes(t, "GET /channels/waits/status?timeout=30 HTTP/1.1\nHost: x\n"+bothLengths+"0\n\n"+next)
		waitObservers(t, ts.Hub, announce.Poll, 1)
		ts.Publish(t, "waits", "wake")
		got := x.answersUntilClosed(t)
		if len(got) != 1 || !strings.HasPrefix(got[0], "200 OK close:true ") || !strings.Contains(got[0], "wake") {
			t.Fatalf("answers %q, want the poll's 200 alone, with Connection: close", got)
		}
	})
	t.Run("waiting long-poll with a body", func(t *testing.T) {
		// A long-poll's body is no request of its own: such a poll
		// waits in net/http, not on a connection taken over (deferred.go).
		x := dialRaw(t, ts)
		smuggled := "POST /channels/waits/messages HTTP/1.1\nHost: x\nContent-Length: 8\n\nsmuggled"
		x.sendBytes(t, "GET /channels/waits/status?timeout=30 HTTP/1.1\nHost: x\nContent-Length: "+
			strconv.Itoa(len(strings.ReplaceAll(smuggled, "\n", "\r\n")))+"\n\n"+smuggled+
			strings.Replace(next, "\n\n", "\nConnection: close\n\n", 1))
		waitObservers(t, ts.Hub, announce.Poll, 1)
		ts.Publish(t, "waits", "wake again")
		got := x.answersUntilClosed(t)
		if len(got) != 2 || !strings.Contains(got[0], "wake again") || !strings.Contains(got[1], "pipelined request") {
			t.Fatalf("answers %q, want the poll's, then the pipelined request's", got)
		}
		neverPublished(t, ts, "waits", "smuggled")
	})
	t.Run("chunked alone", func(t *testing.T) {
		// net/http hides whether a chunked request also had a
		// Content-Length, so any chunked request closes its connection.
		x := dialRaw(t, ts)
		x.sendBytes(t, "POST /channels/cl-te/messages HTTP/1.1\nHost: x\nContent-Type: text/plain\nTransfer-Encoding: chunked\n\n2\nok\n0\n\n"+next)
		if got := x.answersUntilClosed(t); len(got) != 1 || !strings.HasPrefix(got[0], "201 Created close:true ") {
			t.Fatalf("answers %q, want one 201 with Connection: close", got)
		}
	})
	t.Run("WebSocket handshake", func(t *testing.T) {
		x := dialRaw(t, ts)
		x.sendBytes(t, "GET /channels/cl-te/ws HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 13\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n"+bothLengths+"0\n\n"+next)
		if got := x.answersUntilClosed(t); len(got) != 1 || !strings.HasPrefix(got[0], "400 Bad Request close:true ") {
			t.Fatalf("answers %q, want one 400 with Connection: close", got)
		}
	})
	t.Run("an ordinary pipeline is served", func(t *testing.T) {
		x := dialRaw(t, ts)
		x.sendBytes(t, "POST /channels/cl-te/messages HTTP/1.1\nHost: x\nContent-Type: text/plain\nContent-Length: 2\n\nok"+
			strings.Replace(next, "\n\n", "\nConnection: close\n\n", 1))
		if got := x.answersUntilClosed(t); len(got) != 2 || !strings.HasPrefix(got[1], "200 ") {
			t.Fatalf("answers %q, want both requests served", got)
		}
	})
}
