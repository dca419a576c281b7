package api_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/testenv"
)

// A request the client sends while its poll waits (in pieces, after the
// hijack) is kept and answered after the poll, on the same connection.
func TestWaitingPollRequestSentWhileWaitingIsAnsweredAfter(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lpa", "first")
	p := dialRaw(t, ts)
	p.send(t, fmt.Sprintf("/channels/lpa/status?since=%d", m.ID))
	waitObservers(t, ts.Hub, announce.Poll, 1)
	next := fmt.Sprintf("GET /channels/lpa/status?since=%d HTTP/1.1\r\nHost: x\r\n\r\n", m.ID)
	for _, part := range []string{next[:10], next[10:30], next[30:]} {
		if _, err := io.WriteString(p.conn, part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // so the parts likely arrive in reads of their own
	}
	// Had reading ahead ended the wait, the first answer would be "first"
	// or the connection closed.
	ts.Publish(t, "lpa", "second")
	for i := range 2 {
		resp, body := p.answer(t)
		if resp.StatusCode != http.StatusOK || contentOf(t, body) != "second" || resp.Close {
			t.Fatalf("answer %d: %d %q (close %v), want 200 second, kept alive", i, resp.StatusCode, body, resp.Close)
		}
	}
}

// Connection: close on a waiting HTTP/1.1 poll: the answer says so and the
// connection closes after it.
func TestWaitingPollConnectionCloseIsClosedAfterTheAnswer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lpc", "x")
	p := dialRaw(t, ts)
	fmt.Fprintf(p.conn, "GET /channels/lpc/status?since=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", m.ID)
	waitObservers(t, ts.Hub, announce.Poll, 1)
	ts.Publish(t, "lpc", "y")
	resp, body := p.answer(t)
	if contentOf(t, body) != "y" || !resp.Close {
		t.Fatalf("answer %q (close %v), want y and Connection: close", body, resp.Close)
	}
	if _, err := p.r.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer read %v, want EOF", err)
	}
}

// headerSet is the answer's headers that do not change from one answer to
// the next, for comparing an immediate answer with a deferred one.
func headerSet(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		switch k {
		case "Date", "Content-Length":
			continue
		case "Set-Cookie": // the cookies' names and attributes, not their values
			var names []string
			for _, c := range v {
				name, rest, _ := strings.Cut(c, "=")
				_, attrs, _ := strings.Cut(rest, ";")
				names = append(names, name+";"+attrs)
			}
			slices.Sort(names)
			v = names
		}
		out[k] = v
	}
	return out
}

// A deferred answer carries the headers an immediate one has: the
// middlewares' (CORS, Vary, Cache-Control), the cookies (cursor and new
// client), Content-Type and, for JSONP, nosniff.
func TestWaitingPollAnswerHasTheHeadersOfAnImmediateOne(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lph", "x")
	for _, query := range []string{"", "&callback=cb"} {
		headers := []string{"Origin: https://reader.example", "User-Agent: t-" + query}
		p := dialRaw(t, ts)
		resp := p.request(t, "/channels/lph/status?since=0"+query, headers...)
		_, _ = io.Copy(io.Discard, resp.Body)
		immediate := headerSet(resp.Header)

		q := dialRaw(t, ts)
		cur := currentOf(t, ts, "lph")
		reqLine := fmt.Sprintf("GET /channels/lph/status?since=%d%s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n", cur.ID, query, strings.Join(headers, "\r\n"))
		if _, err := io.WriteString(q.conn, reqLine); err != nil {
			t.Fatal(err)
		}
		waitObservers(t, ts.Hub, announce.Poll, 1)
		m = ts.Publish(t, "lph", "next")
		resp, body := q.answer(t)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"next"`) {
			t.Fatalf("deferred answer %d %q", resp.StatusCode, body)
		}
		deferred := headerSet(resp.Header)
		if fmt.Sprint(immediate) != fmt.Sprint(deferred) {
			t.Fatalf("callback %q: deferred answer's headers\n%v\nwant the immediate answer's\n%v", query, deferred, immediate)
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), ";"), fmt.Sprintf("=%d;", m.ID)) {
			t.Fatalf("cookies %q, want the cursor %d", resp.Header.Values("Set-Cookie"), m.ID)
		}
	}
}

// A timed-out wait is counted once and its connection serves the next poll.
func TestWaitingPollTimeoutIsCountedAndKeepsTheConnection(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lpto", "only")
	p := dialRaw(t, ts)
	for i := range 2 {
		p.send(t, fmt.Sprintf("/channels/lpto/status?since=%d&timeout=0.1", m.ID))
		resp, body := p.answer(t)
		if resp.StatusCode != http.StatusOK || contentOf(t, body) != "only" || resp.Close {
			t.Fatalf("timeout %d: %d %q (close %v), want 200 with the current message, kept alive", i, resp.StatusCode, body, resp.Close)
		}
	}
	_, metrics := ts.get(t, "/metrics")
	if !strings.Contains(string(metrics), "announce_poll_timeouts_total 2") {
		t.Fatalf("want 2 poll timeouts:\n%s", grepLines(metrics, "announce_poll_timeouts_total"))
	}
	if n := ts.Hub.Stats().Observers(announce.Poll); n != 0 {
		t.Fatalf("%d poll observers left", n)
	}
}

// Clients leaving while they wait leave no observer, no goroutine, and no
// poll counted for Wait (the cleanup's Wait would hang).
func TestWaitingPollsLeavingFreeEverything(t *testing.T) {
	ts := newTestServer(t)
	m := ts.Publish(t, "lpl", "x")
	const n = 50
	runtime.GC()
	before := runtime.NumGoroutine()
	polls := make([]*rawHTTP, n)
	for i := range polls {
		polls[i] = dialRaw(t, ts)
		polls[i].send(t, fmt.Sprintf("/channels/lpl/status?since=%d", m.ID))
	}
	waitObservers(t, ts.Hub, announce.Poll, n)
	for _, p := range polls {
		p.conn.Close()
	}
	waitObservers(t, ts.Hub, announce.Poll, 0)
	testenv.WaitFor(t, 5*time.Second, "the goroutines to settle", func() bool {
		return runtime.NumGoroutine() <= before+2
	})
	delivered := ts.Hub.Stats().Delivered(announce.Poll)
	ts.Publish(t, "lpl", "anyone?")
	if d := ts.Hub.Stats().Delivered(announce.Poll) - delivered; d != 0 {
		t.Fatalf("delivered to %d departed long-polls", d)
	}
}

// Shutdown answers every waiting poll (JSON and JSONP) with the current
// message and Connection: close.
func TestShutdownAnswersManyWaitingPolls(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "lpsd", "current")
	const n = 20
	polls := make([]*rawHTTP, n)
	for i := range polls {
		polls[i] = dialRaw(t, ts)
		cb := ""
		if i%2 == 1 {
			cb = "&callback=cb"
		}
		polls[i].send(t, fmt.Sprintf("/channels/lpsd/status?since=%d%s", m.ID, cb))
	}
	waitObservers(t, ts.Hub, announce.Poll, n)
	shutdownAPI(t, ts.API)
	for i, p := range polls {
		resp, body := p.answer(t)
		if !resp.Close || !strings.Contains(body, `"current"`) || (i%2 == 1) != strings.HasPrefix(body, "/**/cb(") {
			t.Fatalf("poll %d: shutdown answer %q (close %v)", i, body, resp.Close)
		}
	}
	waitObservers(t, ts.Hub, announce.Poll, 0)
}
