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
	const timeout = 300 * time.Millisecond
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
	time.Sleep(timeout / 3) // the second half comes later, still in time
	_, _ = io.WriteString(inTime, "world")
	resp, body = read(r)
	assertStatus(t, resp, body, http.StatusCreated)
	time.Sleep(2 * timeout) // past the body's deadline: the connection still serves
	_, _ = io.WriteString(inTime, "GET /channels/slow/status?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body = read(r)
	assertStatus(t, resp, body, http.StatusOK)
	if m := decodeMessage(t, body); m.Content != "helloworld" {
		t.Fatalf("stored %+v", m)
	}
}
