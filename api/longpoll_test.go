package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
)

// pollResult is a long-poll answer received in a goroutine.
type pollResult struct {
	resp *http.Response
	body []byte
	err  error
}

// pollAsync starts a long-poll of url with client and delivers its answer.
func pollAsync(ctx context.Context, client *http.Client, url string, header ...string) <-chan pollResult {
	out := make(chan pollResult, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			out <- pollResult{err: err}
			return
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			out <- pollResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		out <- pollResult{resp: resp, body: b, err: err}
	}()
	return out
}

// await receives a long-poll answer, failing after timeout.
func await(t *testing.T, ch <-chan pollResult, timeout time.Duration) (*http.Response, []byte) {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("long-poll: %v", r.err)
		}
		return r.resp, r.body
	case <-time.After(timeout):
		t.Fatalf("long-poll did not answer within %v", timeout)
	}
	return nil, nil
}

// pollNow long-polls and expects an answer without waiting: the server's
// PollTimeout is the default 30 s, so an answer within a few seconds can only
// come from the cursor rule, never from a timeout.
func pollNow(t *testing.T, ts *testServer, path string, header ...string) (*http.Response, announce.Message) {
	t.Helper()
	resp, body := await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+path, header...), 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	return resp, decodeMessage(t, body)
}

func TestLongPollNoCursorWaitsForNextPublish(t *testing.T) {
	ts := newTestServer(t)
	first := ts.Publish(t, "x", "already there")

	ans := pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/x/status")
	waitObservers(t, ts.Hub, announce.Poll, 1)
	select { // classic semantics: no cursor never answers at once
	case r := <-ans:
		t.Fatalf("a long-poll without a cursor answered before any publish: %+v %q", r.err, r.body)
	case <-time.After(100 * time.Millisecond):
	}
	m := ts.Publish(t, "x", "the news")
	resp, body := await(t, ans, 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	got := decodeMessage(t, body)
	if got.ID != first.ID+1 || got != m {
		t.Fatalf("woken with %+v, want the published %+v", got, m)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	waitObservers(t, ts.Hub, announce.Poll, 0)
}

func TestLongPollOlderCursorAnswersAtOnce(t *testing.T) {
	ts := newTestServer(t)
	ts.Publish(t, "x", "one")
	two := ts.Publish(t, "x", "two")
	for _, since := range []string{"0", "1"} {
		_, got := pollNow(t, ts, "/channels/x/status?since="+since)
		if got != two {
			t.Fatalf("since=%s: %+v, want the current %+v", since, got, two)
		}
	}
}

func TestLongPollCurrentCursorTimesOutWithCurrent(t *testing.T) {
	ts := newTestServer(t)
	cur := ts.Publish(t, "x", "unchanged")
	start := time.Now()
	resp, body := await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/x/status?since=1&timeout=0.3"), 10*time.Second)
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("answered after %v, before the 0.3 s timeout", waited)
	}
	assertStatus(t, resp, body, http.StatusOK) // never 204/304: a jQuery loop needs data
	if got := decodeMessage(t, body); got != cur {
		t.Fatalf("timeout answered %+v, want the unchanged %+v", got, cur)
	}
	waitObservers(t, ts.Hub, announce.Poll, 0)

	// The server's cap applies too.
	ts2 := newTestServer(t, func(c *api.Config) { c.PollTimeout = 200 * time.Millisecond })
	cur2 := ts2.Publish(t, "x", "capped")
	resp, body = await(t, pollAsync(context.Background(), http.DefaultClient, ts2.URL+"/channels/x/status?since=1&timeout=3600"), 10*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if got := decodeMessage(t, body); got != cur2 {
		t.Fatalf("capped timeout answered %+v, want %+v", got, cur2)
	}
	_, metrics := ts2.get(t, "/metrics")
	if !strings.Contains(string(metrics), "announce_poll_timeouts_total 1") {
		t.Errorf("announce_poll_timeouts_total is not 1 after one timeout:\n%s", grepLines(metrics, "announce_poll_timeouts_total"))
	}
}

func TestLongPollTimeoutOnEmptyChannel(t *testing.T) {
	ts := newTestServer(t)
	for _, q := range []string{"?timeout=0.2", "?since=0&timeout=0.2"} {
		resp, body := await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/x/status"+q), 10*time.Second)
		assertStatus(t, resp, body, http.StatusOK)
		if want := `{"id":0,"channel":"x","content":""}`; string(body) != want {
			t.Fatalf("%s: body %s, want exactly %s", q, body, want)
		}
	}
}

func TestLongPollNewerCursorAnswersAtOnce(t *testing.T) {
	ts := newTestServer(t)
	cur := ts.Publish(t, "x", "after a reset")
	_, got := pollNow(t, ts, "/channels/x/status?since=99")
	if got != cur {
		t.Fatalf("cursor ahead of the store answered %+v, want %+v", got, cur)
	}
	// On an empty channel too: a client that saw id 5 before a reset.
	resp, body := await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/empty/status?since=5"), 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if want := `{"id":0,"channel":"empty","content":""}`; string(body) != want {
		t.Fatalf("body %s, want %s", body, want)
	}
}

func TestLongPollCookieCursor(t *testing.T) {
	ts := newTestServer(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}
	one := ts.Publish(t, "c", "one")

	resp, body := await(t, pollAsync(context.Background(), client, ts.URL+"/channels/c/status?since=0"), 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if got := decodeMessage(t, body); got != one {
		t.Fatalf("got %+v, want %+v", got, one)
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "announce_c=1; Path=/") {
		t.Fatalf("Set-Cookie %q, want announce_c=1; Path=/...", sc)
	}

	// A publish between two polls: the cookie alone makes the next poll answer at once.
	two := ts.Publish(t, "c", "two")
	resp, body = await(t, pollAsync(context.Background(), client, ts.URL+"/channels/c/status"), 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if got := decodeMessage(t, body); got != two {
		t.Fatalf("cookie poll got %+v, want %+v", got, two)
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "announce_c=2; Path=/") {
		t.Fatalf("Set-Cookie %q, want announce_c=2; Path=/...", sc)
	}

	// Nothing new: the cookie (2 == current) waits, and the next publish wakes it.
	ans := pollAsync(context.Background(), client, ts.URL+"/channels/c/status")
	waitObservers(t, ts.Hub, announce.Poll, 1)
	three := ts.Publish(t, "c", "three")
	resp, body = await(t, ans, 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if got := decodeMessage(t, body); got != three {
		t.Fatalf("waiting cookie poll got %+v, want %+v", got, three)
	}

	// The cookie is per channel: another channel's poll is not affected.
	resp, body = await(t, pollAsync(context.Background(), client, ts.URL+"/channels/other/status?timeout=0.1"), 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if got := decodeMessage(t, body); got.ID != 0 || got.Channel != "other" {
		t.Fatalf("other channel got %+v", got)
	}
}

func TestLongPollSinceWinsOverCookie(t *testing.T) {
	ts := newTestServer(t)
	ts.Publish(t, "c", "one")
	two := ts.Publish(t, "c", "two")
	// The cookie says "seen 2" (would wait); since=1 must answer at once.
	_, got := pollNow(t, ts, "/channels/c/status?since=1", "Cookie", "announce_c=2")
	if got != two {
		t.Fatalf("got %+v, want %+v", got, two)
	}
	// The cookie says "seen 1" (would answer at once); since=2 must wait.
	start := time.Now()
	resp, body := await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/c/status?since=2&timeout=0.3", "Cookie", "announce_c=1"), 10*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("since=2 with cookie 1 answered after %v: the cookie won", waited)
	}
	// An unparsable cookie is no cursor (classic wait), not an error.
	ans := pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/c/status", "Cookie", "announce_c=junk")
	waitObservers(t, ts.Hub, announce.Poll, 1)
	three := ts.Publish(t, "c", "three")
	resp, body = await(t, ans, 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if got := decodeMessage(t, body); got != three {
		t.Fatalf("got %+v, want %+v", got, three)
	}
}

func TestLongPollCookieWithColonInChannel(t *testing.T) {
	ts := newTestServer(t)
	const ch = "room:1"
	one := ts.Publish(t, ch, "one")
	resp, got := pollNow(t, ts, "/channels/"+ch+"/status?since=0")
	if got != one {
		t.Fatalf("got %+v, want %+v", got, one)
	}
	// Go's cookie jar refuses ':' in cookie names (browsers accept it), so
	// carry the cookie by hand, as a browser would.
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "announce_room:1=1; Path=/") {
		t.Fatalf("Set-Cookie %q, want announce_room:1=1; Path=/...", sc)
	}
	cookie, _, _ := strings.Cut(sc, ";")
	two := ts.Publish(t, ch, "two")
	_, got = pollNow(t, ts, "/channels/"+ch+"/status", "Cookie", "theme=dark; "+cookie+"; announce_room=7")
	if got != two {
		t.Fatalf("cookie poll got %+v, want %+v", got, two)
	}
}

func TestLongPollJSONP(t *testing.T) {
	ts := newTestServer(t)
	m := ts.Publish(t, "x", `say "hi" </script>`)
	want, _ := json.Marshal(m)
	for _, cb := range []string{"cb", "jQuery.cb", "jQuery112406_1700000000000", "$", "_a.$b.c9"} {
		resp, body := await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/x/status?since=0&callback="+url.QueryEscape(cb)), 5*time.Second)
		assertStatus(t, resp, body, http.StatusOK)
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/javascript") {
			t.Errorf("%s: Content-Type %q", cb, ct)
		}
		if v := resp.Header.Get("X-Content-Type-Options"); v != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", cb, v)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", cb, cc)
		}
		// The JSON's encoding of "<" keeps a </script> inside content harmless.
		if exp := "/**/" + cb + "(" + string(want) + ");"; string(body) != exp {
			t.Errorf("%s: body %s, want %s", cb, body, exp)
		}
	}
	for _, cb := range []string{"", "1cb", "a-b", "a..b", ".a", "a.", "alert(1)", "a b", "cb;evil", "é", strings.Repeat("a", 65), "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g"} {
		resp, body := ts.get(t, "/channels/x/status?since=0&callback="+url.QueryEscape(cb))
		assertError(t, resp, body, http.StatusBadRequest)
	}
	// 64 characters is still fine.
	cb := strings.Repeat("a", 64)
	resp, body := ts.get(t, "/channels/x/status?since=0&callback="+cb)
	assertStatus(t, resp, body, http.StatusOK)
	if !strings.HasPrefix(string(body), "/**/"+cb+"(") {
		t.Errorf("body %s", body)
	}
}

// An empty timeout= is the default, as an empty since= is no cursor: both
// are what a form or jQuery sends for a value left undefined.
func TestLongPollEmptyTimeoutIsTheDefault(t *testing.T) {
	ts := newTestServer(t)
	m := ts.Publish(t, "et", "one")
	_, got := pollNow(t, ts, "/channels/et/status?since=0&timeout=")
	if got != m {
		t.Fatalf("polled %+v, want %+v", got, m)
	}
}

func TestLongPollBadQuery(t *testing.T) {
	ts := newTestServer(t)
	for _, q := range []string{"since=-1", "since=abc", "since=1.5", "since=18446744073709551616", "timeout=-1", "timeout=abc", "timeout=NaN", "timeout=Inf", "since=%zz", "since=%"} {
		resp, body := ts.get(t, "/channels/x/status?"+q)
		assertError(t, resp, body, http.StatusBadRequest)
	}
	if n := ts.Hub.Stats().Observers(announce.Poll); n != 0 {
		t.Fatalf("%d poll observers after rejected requests", n)
	}
}

// TestNoStoreEverywhere checks Cache-Control: no-store on every dynamic
// answer: old IE caches XHR GETs and would spin on a cached long-poll.
func TestNoStoreEverywhere(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) { c.PollTimeout = time.Second })
	ts.Publish(t, "x", "one")
	check := func(what string, resp *http.Response) {
		t.Helper()
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
		}
	}
	resp, _ := ts.get(t, "/channels/x/status?since=0")
	check("status", resp)
	resp, _ = ts.get(t, "/channels/x/status?since=1&timeout=0")
	check("status timeout", resp)
	resp, _ = ts.get(t, "/status?since=0&timeout=0")
	check("seed status", resp)
	resp, _ = ts.get(t, "/channels/x")
	check("info", resp)
	resp, _ = ts.get(t, "/channels/x/messages")
	check("messages", resp)
	resp, _ = ts.post(t, "/channels/x/messages", "application/json", []byte(`{"content":"two"}`))
	check("publish", resp)
	resp, _ = ts.post(t, "/chat", "application/x-www-form-urlencoded", []byte(`content=three`))
	check("chat", resp)
	resp, _ = ts.get(t, "/metrics")
	check("metrics", resp)
	for _, e := range []struct {
		method, path, ctype, body string
	}{
		{"GET", "/channels/x/status?since=x", "", ""},
		{"GET", "/channels/a%20b/status", "", ""},
		{"GET", "/nope", "", ""},
		{"DELETE", "/channels/x/messages", "", ""},
		{"POST", "/channels/x/messages", "application/json", `{"content":""}`},
		{"POST", "/channels/x/messages", "application/xml", `<a/>`},
		{"POST", "/channels/x/messages", "text/plain", strings.Repeat("a", announce.DefaultMaxMessage+1)},
	} {
		req, _ := http.NewRequest(e.method, ts.URL+e.path, strings.NewReader(e.body))
		if e.ctype != "" {
			req.Header.Set("Content-Type", e.ctype)
		}
		resp, body := do(t, nil, req)
		if resp.StatusCode < 400 {
			t.Errorf("%s %s: status %d, want an error", e.method, e.path, resp.StatusCode)
		}
		assertError(t, resp, body, resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	const listed = "https://publisher.example"
	ts := newTestServer(t, func(c *api.Config) { c.CORSOrigins = []string{"*", listed} })
	m := ts.Publish(t, "x", "one")

	// Any origin may read.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/channels/x/status?since=0", nil)
	req.Header.Set("Origin", "https://reader.example")
	resp, body := do(t, nil, req)
	assertStatus(t, resp, body, http.StatusOK)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("GET: Access-Control-Allow-Origin %q, want *", got)
	}
	if got := decodeMessage(t, body); got != m {
		t.Errorf("GET: %+v", got)
	}

	// An unlisted origin may not publish (CSRF): 403, nothing stored.
	for _, path := range []string{"/channels/x/messages", "/chat"} {
		resp, body = ts.post(t, path, "application/x-www-form-urlencoded", []byte("content=forged"), "Origin", "https://evil.example")
		assertError(t, resp, body, http.StatusForbidden)
	}
	if cur := currentOf(t, ts, "x"); cur.ID != m.ID {
		t.Fatalf("a refused cross-origin publish was stored: %+v", cur)
	}

	// A listed origin may, and the answer names it.
	resp, body = ts.post(t, "/channels/x/messages", "application/json", []byte(`{"content":"two"}`), "Origin", listed)
	assertStatus(t, resp, body, http.StatusCreated)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != listed {
		t.Errorf("POST: Access-Control-Allow-Origin %q, want %q", got, listed)
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("POST: Vary %q, want Origin", resp.Header.Values("Vary"))
	}

	// No Origin (curl, servers) and same origin are not origin-checked.
	resp, body = ts.post(t, "/channels/x/messages", "text/plain", []byte("three"), "Origin", ts.URL)
	assertStatus(t, resp, body, http.StatusCreated)

	// Preflight of a publish from the listed origin.
	req, _ = http.NewRequest(http.MethodOptions, ts.URL+"/channels/x/messages", nil)
	req.Header.Set("Origin", listed)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
	resp, body = do(t, nil, req)
	assertStatus(t, resp, body, http.StatusNoContent)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != listed {
		t.Errorf("preflight: Access-Control-Allow-Origin %q", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
		t.Errorf("preflight: Access-Control-Allow-Methods %q", got)
	}
	if got := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "content-type") || !strings.Contains(got, "authorization") {
		t.Errorf("preflight: Access-Control-Allow-Headers %q", got)
	}
	// Preflight of a read from anyone.
	req, _ = http.NewRequest(http.MethodOptions, ts.URL+"/channels/x/status", nil)
	req.Header.Set("Origin", "https://reader.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, body = do(t, nil, req)
	assertStatus(t, resp, body, http.StatusNoContent)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("GET preflight: Access-Control-Allow-Origin %q", got)
	}
	// Preflight of a publish from an unlisted origin gets no permission.
	req, _ = http.NewRequest(http.MethodOptions, ts.URL+"/channels/x/messages", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, _ = do(t, nil, req)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("unlisted preflight: Access-Control-Allow-Origin %q, want none", got)
	}

	// With an explicit list only, an unlisted origin gets no read permission either.
	ts2 := newTestServer(t, func(c *api.Config) { c.CORSOrigins = []string{listed} })
	req, _ = http.NewRequest(http.MethodGet, ts2.URL+"/channels/x/status?since=5", nil)
	req.Header.Set("Origin", "https://reader.example")
	resp, _ = do(t, nil, req)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("unlisted GET: Access-Control-Allow-Origin %q, want none", got)
	}
	req.Header.Set("Origin", listed)
	resp, _ = do(t, nil, req)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != listed {
		t.Errorf("listed GET: Access-Control-Allow-Origin %q, want %q", got, listed)
	}
}

// currentOf reads the channel's current message from GET /channels/{ch}.
func currentOf(t *testing.T, ts *testServer, ch string) announce.Message {
	t.Helper()
	resp, body := ts.get(t, "/channels/"+ch)
	assertStatus(t, resp, body, http.StatusOK)
	var info struct {
		Current announce.Message `json:"current"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("info %q: %v", body, err)
	}
	return info.Current
}

func TestLongPollDisconnectUnregisters(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/channels/x/status", "/status", "/channels/x/status?since=0", "/channels/x/messages?wait=30"} {
		ctx, cancel := context.WithCancel(context.Background())
		ans := pollAsync(ctx, http.DefaultClient, ts.URL+path)
		waitObservers(t, ts.Hub, announce.Poll, 1)
		cancel()
		if r := <-ans; r.err == nil {
			t.Fatalf("%s: answered %q before the client left", path, r.body)
		}
		waitObservers(t, ts.Hub, announce.Poll, 0)
	}
	// Nobody is left to wake: the publish reaches no observer.
	before := ts.Hub.Stats().Delivered(announce.Poll)
	ts.Publish(t, "x", "anyone?")
	if d := ts.Hub.Stats().Delivered(announce.Poll) - before; d != 0 {
		t.Fatalf("delivered to %d departed long-polls", d)
	}
}

// TestLongPollVanishingWaiters has 10,000 long-polls wait on raw HTTP/1.1
// connections and vanish: the registry and the goroutines return to where
// they were. Client and server share this process's 20,000 open files (two
// per connection) and the race detector's 8,128 goroutines (two per waiting
// server connection), so the waiters come in batches.
func TestLongPollVanishingWaiters(t *testing.T) {
	total, batch, workers := 10_000, 2_000, 20
	if testing.Short() {
		total = batch
	}
	ts := newTestServer(t)
	// Load the channel before the baseline, without an HTTP connection.
	if _, err := ts.Hub.Publish(context.Background(), "crowd", "hello"); err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()

	request := []byte("GET /channels/crowd/status HTTP/1.1\r\nHost: " + ts.Addr() + "\r\nUser-Agent: vanishing\r\n\r\n")
	conns := make([]net.Conn, batch)
	for done := 0; done < total; done += batch {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		per := batch / workers
		for w := range workers {
			wg.Go(func() {
				for i := w * per; i < (w+1)*per; i++ {
					c, err := net.DialTimeout("tcp", ts.Addr(), 10*time.Second)
					if err != nil {
						errs <- err
						return
					}
					conns[i] = c
					if _, err := c.Write(request); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			closeAll(conns)
			t.Fatalf("batch at %d: %v", done, err)
		}
		testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d waiting long-polls", batch), func() bool {
			return ts.Hub.Stats().Observers(announce.Poll) == int64(batch)
		})
		if done == 0 {
			t.Logf("goroutines: %d at the baseline, %d with %d waiters", baseline, runtime.NumGoroutine(), batch)
		}
		closeAll(conns)
		testenv.WaitFor(t, 30*time.Second, "the registry to empty", func() bool {
			return ts.Hub.Stats().Observers(announce.Poll) == 0
		})
		testenv.WaitFor(t, 30*time.Second, "goroutines to return to the baseline", func() bool {
			return runtime.NumGoroutine() <= baseline
		})
	}
	// The channel still works, for a fresh waiter.
	ans := pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/crowd/status")
	waitObservers(t, ts.Hub, announce.Poll, 1)
	m := ts.Publish(t, "crowd", "still here")
	resp, body := await(t, ans, 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if got := decodeMessage(t, body); got != m {
		t.Fatalf("got %+v, want %+v", got, m)
	}
}

// closeAll closes the connections in parallel and forgets them.
func closeAll(conns []net.Conn) {
	var wg sync.WaitGroup
	const workers = 20
	per := (len(conns) + workers - 1) / workers
	for w := range workers {
		wg.Go(func() {
			for i := w * per; i < min((w+1)*per, len(conns)); i++ {
				if conns[i] != nil {
					conns[i].Close()
					conns[i] = nil
				}
			}
		})
	}
	wg.Wait()
}

// TestSeedLoopNeverMissesNewest is the classic jQuery page against a burst:
//
//	function poll() { $.getJSON("/status", function (data) { show(data.content); poll(); }); }
//
// with no cursor of its own (only the cookie the browser keeps), re-polling
// at once after each answer, while 1,000 messages are posted to /chat as
// fast as possible. The loop may skip messages (it only ever shows the
// newest), but its last answer is the 1,000th message, and fast: the server's
// 30 s poll timeout would not help it.
func TestSeedLoopNeverMissesNewest(t *testing.T) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	seedLoop(t, &http.Client{Jar: jar}, func(uint64) string { return "/status" })
}

// TestSinceLoopNeverMissesNewest is the same with an explicit ?since= cursor.
func TestSinceLoopNeverMissesNewest(t *testing.T) {
	seedLoop(t, &http.Client{}, func(last uint64) string { return "/status?since=" + strconv.FormatUint(last, 10) })
}

func seedLoop(t *testing.T, client *http.Client, next func(last uint64) string) {
	const n = 1000
	ts := newTestServer(t) // PollTimeout 30 s: only a wake-up answers in time
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type answer struct {
		m   announce.Message
		err error
	}
	answers := make(chan answer, 1)
	var polls int
	go func() { // the page's poll loop
		var last uint64
		for {
			polls++
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+next(last), nil)
			resp, err := client.Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m announce.Message
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
			}
			if err == nil {
				err = json.Unmarshal(b, &m)
			}
			if err == nil && (m.ID < last || m.Content != fmt.Sprintf("message %d", m.ID)) {
				err = fmt.Errorf("answer %+v after %d", m, last)
			}
			if err != nil {
				answers <- answer{err: err}
				return
			}
			last = m.ID
			if m.ID == n {
				answers <- answer{m: m}
				return
			}
		}
	}()
	waitObservers(t, ts.Hub, announce.Poll, 1) // the first poll waits (no cursor yet)

	published := make(chan error, 1)
	go func() { // the publish form, submitted 1,000 times
		pub := &http.Client{}
		for i := 1; i <= n; i++ {
			resp, err := pub.PostForm(ts.URL+"/chat", url.Values{"content": {fmt.Sprintf("message %d", i)}})
			if err != nil {
				published <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				published <- fmt.Errorf("publish %d: status %d: %s", i, resp.StatusCode, b)
				return
			}
		}
		published <- nil
	}()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("1,000 publishes took over a minute")
	}
	select {
	case a := <-answers:
		if a.err != nil {
			t.Fatalf("poll loop: %v", a.err)
		}
		if a.m.ID != n || a.m.Channel != "default" {
			t.Fatalf("last answer %+v, want message %d", a.m, n)
		}
		t.Logf("the loop made %d polls for %d messages", polls, n)
	case <-time.After(10 * time.Second):
		t.Fatalf("the poll loop never answered message %d", n)
	}
	_, metrics := ts.get(t, "/metrics")
	if !strings.Contains(string(metrics), "announce_poll_timeouts_total 0") {
		t.Errorf("a poll timed out:\n%s", grepLines(metrics, "announce_poll_timeouts_total"))
	}
}

// grepLines returns the lines of b that contain s.
func grepLines(b []byte, s string) string {
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
