package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/testenv"
)

// rawHTTP is one keep-alive HTTP/1.1 connection spoken by hand, so a test
// sees which connection answers and holds no goroutine while it waits.
type rawHTTP struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, ts *testServer) *rawHTTP {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawHTTP{conn: conn, r: bufio.NewReader(conn)}
}

func (h *rawHTTP) send(t *testing.T, requests ...string) {
	t.Helper()
	var all string
	for _, path := range requests {
		all += "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"
	}
	if _, err := io.WriteString(h.conn, all); err != nil {
		t.Fatal(err)
	}
}

// request sends GET path with headers and reads the answer's head; the
// body is left to read from h.r.
func (h *rawHTTP) request(t *testing.T, path string, headers ...string) *http.Response {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\n"
	for _, hd := range headers {
		req += hd + "\r\n"
	}
	if _, err := io.WriteString(h.conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = h.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}

func (h *rawHTTP) answer(t *testing.T) (*http.Response, string) {
	t.Helper()
	_ = h.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func contentOf(t *testing.T, body string) string {
	t.Helper()
	var m announce.Message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return m.Content
}

func TestWaitingPollsHoldNoGoroutineAndKeepTheirConnection(t *testing.T) {
	ts := newTestServer(t)
	first := ts.Publish(t, "lp", "first")
	const n = 100
	before := runtime.NumGoroutine()
	polls := make([]*rawHTTP, n)
	for i := range polls {
		polls[i] = dialRaw(t, ts)
		polls[i].send(t, fmt.Sprintf("/channels/lp/status?since=%d", first.ID))
	}
	waitObservers(t, ts.Hub, announce.Poll, n)
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d waiting long-polls to hold fewer than %d goroutines", n, n/10), func() bool {
		return runtime.NumGoroutine()-before <= n/10
	})
	second := ts.Publish(t, "lp", "second")
	for _, p := range polls {
		resp, body := p.answer(t)
		if resp.StatusCode != http.StatusOK || contentOf(t, body) != "second" || resp.Close {
			t.Fatalf("answer %d %q (close %v), want 200 with the second message, kept alive", resp.StatusCode, body, resp.Close)
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), ";"), fmt.Sprintf("=%d;", second.ID)) {
			t.Fatalf("cookies %q, want the cursor %d", resp.Header.Values("Set-Cookie"), second.ID)
		}
	}
	// The next poll on the same connection waits and is answered too.
	for _, p := range polls {
		p.send(t, fmt.Sprintf("/channels/lp/status?since=%d", second.ID))
	}
	waitObservers(t, ts.Hub, announce.Poll, n)
	ts.Publish(t, "lp", "third")
	for _, p := range polls {
		if _, body := p.answer(t); contentOf(t, body) != "third" {
			t.Fatalf("second poll on the connection answered %q, want third", body)
		}
	}
}

func TestWaitingPollTimeoutJSONPAndPipelining(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lpt", "only")
	p := dialRaw(t, ts)
	// A waiting JSONP poll with a short timeout, and a second request
	// pipelined behind it: answered in order on the one connection.
	p.send(t, fmt.Sprintf("/channels/lpt/status?since=%d&timeout=0.2&callback=cb", m.ID), "/channels/lpt/messages?since=0")
	resp, body := p.answer(t)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "/**/cb(") || !strings.Contains(body, `"only"`) {
		t.Fatalf("timeout answer %d %q, want the current message in cb(...)", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/javascript") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("JSONP headers %v", resp.Header)
	}
	resp, body = p.answer(t)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"only"`) {
		t.Fatalf("pipelined answer %d %q, want the log", resp.StatusCode, body)
	}
}

func TestWaitingLogKeepsItsConnection(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	p := dialRaw(t, ts)
	for i, content := range []string{"a", "b"} {
		p.send(t, fmt.Sprintf("/channels/lw/messages?since=%d&wait=5", i))
		waitObservers(t, ts.Hub, announce.Poll, 1)
		ts.Publish(t, "lw", content)
		resp, body := p.answer(t)
		var got []announce.Message
		if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 || got[0].Content != content || resp.Close {
			t.Fatalf("wait %d answered %q (%v, close %v), want [%s] kept alive", i, body, err, resp.Close, content)
		}
	}
}

func TestWaitingPollClientLeavingIsForgotten(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lpg", "x")
	p := dialRaw(t, ts)
	p.send(t, fmt.Sprintf("/channels/lpg/status?since=%d", m.ID))
	waitObservers(t, ts.Hub, announce.Poll, 1)
	p.conn.Close()
	waitObservers(t, ts.Hub, announce.Poll, 0)
}

func TestWaitingPollHTTP10IsClosedAfterTheAnswer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lp10", "x")
	p := dialRaw(t, ts)
	fmt.Fprintf(p.conn, "GET /channels/lp10/status?since=%d HTTP/1.0\r\nHost: x\r\n\r\n", m.ID)
	waitObservers(t, ts.Hub, announce.Poll, 1)
	ts.Publish(t, "lp10", "y")
	resp, body := p.answer(t)
	if contentOf(t, body) != "y" || !resp.Close {
		t.Fatalf("HTTP/1.0 answer %q (close %v), want y and Connection: close", body, resp.Close)
	}
	if _, err := p.r.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer read %v, want EOF", err)
	}
}

func TestShutdownAnswersWaitingPolls(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lps", "current")
	p := dialRaw(t, ts)
	p.send(t, fmt.Sprintf("/channels/lps/status?since=%d", m.ID))
	waitObservers(t, ts.Hub, announce.Poll, 1)
	shutdownAPI(t, ts.API)
	resp, body := p.answer(t)
	if contentOf(t, body) != "current" || !resp.Close {
		t.Fatalf("shutdown answer %q (close %v), want the current message and Connection: close", body, resp.Close)
	}
}
