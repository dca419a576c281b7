package api_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// FuzzLogQuery sends arbitrary query strings to the log. Whatever arrives,
// the answer is a JSON error (400 exactly when since, limit or wait is
// malformed, or the query is; 401 for a token) or 200 with exactly the
// page the cursor and limit ask for: ids since+1 on, at most limit of them;
// for a cursor ahead of the channel, the current message.
func FuzzLogQuery(f *testing.F) {
	for _, q := range []string{
		"", "since=0", "since=2&limit=2", "since=5", "since=6", "since=18446744073709551615", "since=18446744073709551616",
		"since=", "since=-1", "since=%201%20", "limit=1", "limit=0", "limit=00", "limit=-1", "limit=+1", "limit=%201",
		"limit=1.5", "limit=2147483647", "limit=2147483648", "limit=99999999999999999999999", "limit=", "limit=x",
		"wait=0", "wait=0.001", "wait=30", "wait=-1", "wait=NaN", "wait=Inf", "wait=", "since=5&wait=1",
		"since=5&wait=1&limit=1", "since=0&limit=1&wait=1", "since=1;limit=2", "since=%zz", "%", "token=x.y.z",
		"callback=cb", "timeout=5", "since=2&callback=$.a_b", "callback=alert(1)", "callback=",
	} {
		f.Add(q)
	}

	ts := newTestServerHub(f, nil, func(c *api.Config) { c.PollTimeout = fuzzPollTimeout })
	msgs := seedMessages(f, ts, "log", 5)
	h := ts.API.Handler()
	f.Fuzz(func(t *testing.T, query string) {
		resp, body, q, want, ok := getQuery(h, "/channels/log/messages", query)
		if !ok {
			return // net/http refuses it before any handler runs
		}
		if want == http.StatusOK && (!validCursor(q.Get("since")) || !validLimit(q.Get("limit")) || !validSeconds(q.Get("wait")) ||
			q.Has("callback") && !validCallback(q.Get("callback"))) {
			want = http.StatusBadRequest
		}
		if resp.StatusCode != http.StatusOK {
			assertError(t, resp, body, want)
			return
		}
		assertStatus(t, resp, body, want)
		body = unwrapJSONP(t, resp, body, q)
		var page []announce.Message
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("body %q is not a JSON array of messages: %v", body, err)
		}
		since, _ := strconv.ParseUint(strings.TrimSpace(q.Get("since")), 10, 64) // 0 when absent
		var expect []announce.Message
		if since > uint64(len(msgs)) {
			expect = msgs[len(msgs)-1:] // ahead: the current message, to resynchronise
		} else {
			expect = msgs[since:]
			if limit, _ := strconv.ParseUint(q.Get("limit"), 10, 64); q.Get("limit") != "" && limit < uint64(len(expect)) {
				expect = expect[:limit]
			}
		}
		if len(page) != len(expect) {
			t.Fatalf("since=%d limit=%q: %d messages %s, want %d", since, q.Get("limit"), len(page), body, len(expect))
		}
		for i := range page {
			if page[i] != expect[i] {
				t.Fatalf("since=%d limit=%q: message %d is %+v, want %+v", since, q.Get("limit"), i, page[i], expect[i])
			}
		}
	})
}

// validLimit reports whether v is absent or a whole number >= 1 (a larger
// one than the history asks for all of it).
func validLimit(v string) bool {
	return v == "" || strings.Trim(v, "0123456789") == "" && strings.Trim(v, "0") != ""
}
