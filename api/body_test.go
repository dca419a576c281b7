package api_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/announce/announce/api"
)

// A body that trickles is cut at the body timeout with 408; one that
// arrives in time publishes, and its keep-alive connection serves the next
// request after the timeout has long passed.
func TestBodyTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 1500 * time.Millisecond // ample for the in-time half under -race and load
	ts := newTestServer(t, func(c *api.Config) { c.BodyTimeout = timeout })
	dial := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", ts.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn, bufio.NewReader(conn)
	}
	read := func(r *bufio.Reader) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	const head = "POST /channels/slow/messages HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n"

	trickle, r := dial()
	_, _ = io.WriteString(trickle, head+"hello") // and never the rest
	resp, body := read(r)
	assertError(t, resp, body, http.StatusRequestTimeout)

	inTime, r := dial()
	_, _ = io.WriteString(inTime, head+"hello")
	time.Sleep(50 * time.Millisecond) // the second half comes later, still in time
	_, _ = io.WriteString(inTime, "world")
	resp, body = read(r)
	assertStatus(t, resp, body, http.StatusCreated)
	time.Sleep(timeout + 500*time.Millisecond) // past the body's deadline: the connection still serves
	_, _ = io.WriteString(inTime, "GET /channels/slow/status?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body = read(r)
	assertStatus(t, resp, body, http.StatusOK)
	if m := decodeMessage(t, body); m.Content != "helloworld" {
		t.Fatalf("stored %+v", m)
	}
}

// A body declared larger than the limit is refused with 413 at once: no
// 100 Continue invites it, and no deadline has to pass first.
func TestDeclaredBodyTooLarge(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{"/channels/big/messages", "/chat", "/channels/big/tokens"} {
		conn, err := net.Dial("tcp", ts.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"+
			"Content-Length: 99999999999\r\nExpect: 100-continue\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		assertError(t, resp, body, http.StatusRequestEntityTooLarge)
	}
}
