package api_test

import (
	"bufio"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// fuzzPollTimeout caps every wait (timeout=, wait=, a cursor at the current
// id), so no input can make a fuzz execution block for long.
const fuzzPollTimeout = 2 * time.Millisecond

// jsonpCallback is the documented callback: dotted JavaScript identifiers.
var jsonpCallback = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`)

// FuzzLongPollQuery sends arbitrary query strings to a long-poll. Whatever
// arrives, the answer is 200 with the channel's current message (JSON, or
// JSONP for a valid callback) and its cursor cookie, or a JSON error: 400
// exactly when since, timeout or callback is malformed (or the query is),
// 401 for a token (none is valid here).
func FuzzLongPollQuery(f *testing.F) {
	for _, q := range []string{
		"", "since=0", "since=3", "since=5", "since=6", "since=", "since=+1", "since=-1", "since=1.0",
		"since=0x10", "since=%201%20", "since=%C2%A05", "since=18446744073709551615", "since=18446744073709551616",
		"since=x&since=1", "since=1&since=x", "timeout=0", "timeout=0.5", "timeout=5", "timeout=-1",
		"timeout=-0", "timeout=NaN", "timeout=Inf", "timeout=1e400", "timeout=1e-400", "timeout=",
		"since=1&timeout=5&callback=show", "callback=jQuery1124_1541", "callback=$.a.b_c", "callback=",
		"callback=a..b", "callback=.a", "callback=1a", "callback=alert(1)", "callback=%3Cscript%3E",
		"callback=" + strings.Repeat("a", 64), "callback=" + strings.Repeat("a", 65), "since=1;timeout=2",
		"since=%zz", "%", "&&==&", "name=carol", "name=", "name=%00", "token=x.y.z", "token=", "wait=1&limit=1",
		"since=5#frag", "since=5&timeout=30&callback=cb&name=%E2%9C%93&_=1541",
	} {
		f.Add(q)
	}

	ts := newTestServerHub(f, nil, func(c *api.Config) { c.PollTimeout = fuzzPollTimeout })
	msgs := seedMessages(f, ts, "q", 5)
	current := msgs[len(msgs)-1]
	h := ts.API.Handler()
	f.Fuzz(func(t *testing.T, query string) {
		resp, body, q, want, ok := getQuery(h, "/channels/q/status", query)
		if !ok {
			return // net/http refuses it before any handler runs
		}
		if want == http.StatusOK && (!validCursor(q.Get("since")) || !validSeconds(q.Get("timeout")) ||
			q.Has("callback") && !validCallback(q.Get("callback"))) {
			want = http.StatusBadRequest
		}
		if want == http.StatusOK && q.Has("name") && resp.StatusCode == http.StatusBadRequest {
			want = http.StatusBadRequest // the presence name's own rules (presence_test.go)
		}
		if resp.StatusCode != http.StatusOK {
			assertError(t, resp, body, want)
			return
		}
		assertStatus(t, resp, body, want)
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q", cc)
		}
		body = unwrapJSONP(t, resp, body, q)
		if m := decodeMessage(t, body); m != current {
			t.Fatalf("answered %+v, the current message is %+v", m, current)
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), "\n"), "announce_q=5;") {
			t.Fatalf("no cursor cookie for id 5: %q", resp.Header.Values("Set-Cookie"))
		}
	})
}

// wireRequest reads a request head (its lines, without the blank line) as
// net/http's server reads one off the wire; false when it would refuse it
// before any handler runs. The request is marked HTTP/2 (no hijack), since
// a recorder's connection cannot be taken over.
// getQuery serves GET path?query through h as net/http reads it off the
// wire, and returns the answer, the query as the server parsed it, and the
// status the rules every route shares predict: 400 for a query that does
// not parse, 401 for a token (none is valid here), else 200. ok is false
// when net/http refuses the request before any handler runs.
func getQuery(h http.Handler, path, query string) (resp *http.Response, body []byte, q url.Values, want int, ok bool) {
	req, ok := wireRequest("GET "+path+"?"+query+" HTTP/1.1", "Host: fuzz")
	if !ok {
		return nil, nil, nil, 0, false
	}
	resp, body = serve(h, req)
	q, err := url.ParseQuery(req.URL.RawQuery)
	switch {
	case err != nil:
		want = http.StatusBadRequest
	case q.Get("token") != "":
		want = http.StatusUnauthorized
	default:
		want = http.StatusOK
	}
	return resp, body, q, want, true
}

func wireRequest(lines ...string) (*http.Request, bool) {
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			return nil, false // another header line, or none at all
		}
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(strings.Join(lines, "\r\n") + "\r\n\r\n")))
	if err != nil {
		return nil, false
	}
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
	return req, true
}

// serve runs req through h and returns the answer, as do does over a socket.
func serve(h http.Handler, req *http.Request) (*http.Response, []byte) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, rec.Body.Bytes()
}

// seedMessages publishes n messages to channel before a fuzz run and returns them.
func seedMessages(tb testing.TB, ts *testServer, channel string, n int) []announce.Message {
	tb.Helper()
	var msgs []announce.Message
	for i := range n {
		m, err := ts.publish(channel, "message "+strconv.Itoa(i+1))
		if err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// validCursor reports whether v is absent or a message id: a whole number >= 0
// that fits 64 bits, spaces around it allowed.
func validCursor(v string) bool {
	if v == "" {
		return true
	}
	if v = strings.TrimSpace(v); v == "" || strings.Trim(v, "0123456789") != "" {
		return false // spaces alone are not absent
	}
	_, err := strconv.ParseUint(v, 10, 64) // digits only: fails on overflow alone
	return err == nil
}

// validSeconds reports whether v is absent or a finite number of seconds >= 0.
func validSeconds(v string) bool {
	if v == "" {
		return true
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	return err == nil && f >= 0 && !math.IsInf(f, 0)
}

func validCallback(cb string) bool { return len(cb) <= 64 && jsonpCallback.MatchString(cb) }

// unwrapJSONP checks an answer's type: with ?callback= the JSONP call of
// the JSON it returns, else JSON itself.
func unwrapJSONP(t *testing.T, resp *http.Response, body []byte, q url.Values) []byte {
	t.Helper()
	cb, ok := q["callback"]
	if !ok {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("Content-Type %q", ct)
		}
		return body
	}
	js, ok := strings.CutPrefix(string(body), "/**/"+cb[0]+"(")
	if js, ok = strings.CutSuffix(js, ");"); !ok {
		t.Fatalf("callback %q: body %q is not /**/%s(...);", cb[0], body, cb[0])
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/javascript") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("JSONP answered with Content-Type %q, X-Content-Type-Options %q", ct, resp.Header.Get("X-Content-Type-Options"))
	}
	return []byte(js)
}
