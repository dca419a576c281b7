package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// multipartBody builds a multipart/form-data body with the given fields.
func multipartBody(t testing.TB, fields ...string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), b.Bytes()
}

// jsonBody encodes {"content": content}.
func jsonBody(content string) []byte {
	b, _ := json.Marshal(map[string]string{"content": content})
	return b
}

// formBody encodes content=... as jQuery's $.post("chat", {content}) does.
func formBody(content string) []byte { return []byte(url.Values{"content": {content}}.Encode()) }

func TestPublishBodies(t *testing.T) {
	ts := newTestServer(t)
	mpType, mpBody := multipartBody(t, "other", "x", "content", "from a multipart form")
	cases := []struct {
		name, ctype string
		body        []byte
		content     string
	}{
		{"json", "application/json", jsonBody(`{"nested": "json"} é ✓ 🎉`), `{"nested": "json"} é ✓ 🎉`},
		{"json charset", "application/json; charset=utf-8", []byte(`{"content":"line\nbreak \u00e9","extra":1}`), "line\nbreak é"},
		{"jquery form", "application/x-www-form-urlencoded; charset=UTF-8", formBody("Server maintenance at 22:00 & more"), "Server maintenance at 22:00 & more"},
		{"text", "text/plain", []byte("plain text\nwith lines"), "plain text\nwith lines"},
		{"text charset", "text/plain; charset=utf-8", []byte("ünïcödé"), "ünïcödé"},
		{"no content type", "", []byte("curl --data-binary"), "curl --data-binary"},
		{"multipart", mpType, mpBody, "from a multipart form"},
	}
	var last uint64
	for _, c := range cases {
		before := time.Now().UTC()
		resp, body := ts.post(t, "/channels/news/messages", c.ctype, c.body)
		assertStatus(t, resp, body, http.StatusCreated)
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
		var raw map[string]any
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("%s: %q: %v", c.name, body, err)
		}
		for _, k := range []string{"id", "channel", "content", "time"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("%s: answer %s has no %q", c.name, body, k)
			}
		}
		m := decodeMessage(t, body)
		if m.ID != last+1 || m.Channel != "news" || m.Content != c.content {
			t.Errorf("%s: stored %+v, want id %d content %q", c.name, m, last+1, c.content)
		}
		if m.Time.Location() != time.UTC || m.Time.Before(before.Add(-time.Second)) || m.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: time %v is not the UTC time of acceptance", c.name, m.Time)
		}
		last = m.ID
		if cur := currentOf(t, ts, "news"); cur != m {
			t.Errorf("%s: current %+v, want %+v", c.name, cur, m)
		}
	}
}

func TestSeedChatAndStatus(t *testing.T) {
	ts := newTestServer(t)
	// The seed page: $.post("chat", {content: ...}).
	resp, body := ts.post(t, "/chat", "application/x-www-form-urlencoded; charset=UTF-8", formBody("hello, seed"))
	assertStatus(t, resp, body, http.StatusCreated)
	m := decodeMessage(t, body)
	if m.Channel != "default" || m.ID != 1 || m.Content != "hello, seed" {
		t.Fatalf("/chat stored %+v", m)
	}
	// $.getJSON("/status") reads data.content.
	_, got := pollNow(t, ts, "/status?since=0")
	if got != m {
		t.Fatalf("/status answered %+v, want %+v", got, m)
	}
	if cur := currentOf(t, ts, "default"); cur != m {
		t.Fatalf("/channels/default: %+v", cur)
	}
	// And the other way round: a publish on the channel route reaches /status.
	ans := pollAsync(context.Background(), http.DefaultClient, ts.URL+"/status")
	waitObservers(t, ts.Hub, announce.Poll, 1)
	m2 := ts.Publish(t, "default", "via the channel route")
	r, b := await(t, ans, 5*time.Second)
	assertStatus(t, r, b, http.StatusOK)
	var data struct{ Content string }
	if err := json.Unmarshal(b, &data); err != nil || data.Content != m2.Content {
		t.Fatalf("data.content = %q (%v)", data.Content, err)
	}
	// The seed's handler read content from the query too; the body wins.
	resp, body = ts.post(t, "/chat?content=from+the+query", "", nil)
	assertStatus(t, resp, body, http.StatusCreated)
	if m := decodeMessage(t, body); m.Content != "from the query" {
		t.Fatalf("/chat?content= stored %+v", m)
	}
	resp, body = ts.post(t, "/chat?content=query", "application/x-www-form-urlencoded", formBody("body"))
	assertStatus(t, resp, body, http.StatusCreated)
	if m := decodeMessage(t, body); m.Content != "body" {
		t.Fatalf("body and query stored %+v, want the body's", m)
	}
}

// HEAD answers wherever GET does, at once, with GET's status and type and
// no body; a route that waits or streams does not wait.
func TestHeadWhereverGet(t *testing.T) {
	ts := newTestServer(t)
	ts.Publish(t, "h", "one")
	for path, ctype := range map[string]string{
		"/":                            "text/html",
		"/status":                      "application/json",
		"/events":                      "text/event-stream",
		"/channels/h":                  "application/json",
		"/channels/h/status":           "application/json",
		"/channels/h/status?since=1":   "application/json",
		"/channels/h/events":           "text/event-stream",
		"/channels/h/messages?wait=30": "application/json",
		"/channels/h/presence":         "application/json",
		"/assets/vendor/jquery.min.js": "javascript",
		"/metrics":                     "text/plain",
		"/healthz":                     "application/json",
	} {
		req, _ := http.NewRequest(http.MethodHead, ts.URL+path, nil)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		cancel()
		if err != nil {
			t.Errorf("HEAD %s: %v", path, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("HEAD %s: %d %q, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), ctype)
		}
	}
	req, _ := http.NewRequest(http.MethodHead, ts.URL+"/channels/h/ws", nil)
	resp, body := do(t, nil, req)
	if resp.StatusCode != http.StatusBadRequest || len(body) != 0 {
		t.Errorf("HEAD on the WebSocket route: %d %q, want GET's 400 without a body", resp.StatusCode, body)
	}
	waitObservers(t, ts.Hub, announce.Poll, 0)
	waitObservers(t, ts.Hub, announce.SSE, 0)
}

func TestPublishRejects(t *testing.T) {
	ts := newTestServer(t)
	max := ts.Hub.MaxMessage()
	at := strings.Repeat("a", max)
	over := at + "a"
	wide := strings.Repeat("é", max/2) // max bytes of two-byte runes
	mpType, mpAt := multipartBody(t, "content", at)
	mpType2, mpOver := multipartBody(t, "content", over)
	mpType3, mpNone := multipartBody(t, "other", "x")
	mpType4, mpHuge := multipartBody(t, "content", strings.Repeat("a", 10*max))

	cases := []struct {
		name, ctype string
		body        []byte
		status      int
	}{
		{"json at limit", "application/json", jsonBody(at), http.StatusCreated},
		{"json wide at limit", "application/json", jsonBody(wide), http.StatusCreated},
		{"json escaped at limit", "application/json", []byte(`{"content":"` + strings.Repeat(`\u0001`, max) + `"}`), http.StatusCreated},
		{"json over limit", "application/json", jsonBody(over), http.StatusRequestEntityTooLarge},
		{"json wide over limit", "application/json", jsonBody(wide + "a"), http.StatusRequestEntityTooLarge},
		{"json huge body", "application/json", jsonBody(strings.Repeat("a", 10*max)), http.StatusRequestEntityTooLarge},
		{"form at limit", "application/x-www-form-urlencoded", formBody(at), http.StatusCreated},
		{"form over limit", "application/x-www-form-urlencoded", formBody(over), http.StatusRequestEntityTooLarge},
		{"form huge body", "application/x-www-form-urlencoded", formBody(strings.Repeat("a", 10*max)), http.StatusRequestEntityTooLarge},
		{"text at limit", "text/plain", []byte(at), http.StatusCreated},
		{"text over limit", "text/plain", []byte(over), http.StatusRequestEntityTooLarge},
		{"text huge body", "text/plain", []byte(strings.Repeat("a", 10*max)), http.StatusRequestEntityTooLarge},
		{"multipart at limit", mpType, mpAt, http.StatusCreated},
		{"multipart over limit", mpType2, mpOver, http.StatusRequestEntityTooLarge},
		{"multipart huge body", mpType4, mpHuge, http.StatusRequestEntityTooLarge},

		{"json empty", "application/json", jsonBody(""), http.StatusBadRequest},
		{"form empty", "application/x-www-form-urlencoded", formBody(""), http.StatusBadRequest},
		{"form without content", "application/x-www-form-urlencoded", []byte("message=hi"), http.StatusBadRequest},
		{"text empty", "text/plain", nil, http.StatusBadRequest},
		{"multipart without content", mpType3, mpNone, http.StatusBadRequest},
		{"multipart without boundary", "multipart/form-data", []byte("content=x"), http.StatusBadRequest},

		{"text not utf-8", "text/plain", []byte("caf\xe9"), http.StatusBadRequest},
		{"form not utf-8", "application/x-www-form-urlencoded", []byte("content=caf%E9"), http.StatusBadRequest},
		{"json not utf-8", "application/json", []byte("{\"content\":\"caf\xe9\"}"), http.StatusBadRequest},
		{"form bad escape", "application/x-www-form-urlencoded", []byte("content=%zz"), http.StatusBadRequest},

		{"bad json", "application/json", []byte(`{"content":`), http.StatusBadRequest},
		{"json trailing garbage", "application/json", []byte(`{"content":"a"} {}`), http.StatusBadRequest},
		{"json without content", "application/json", []byte(`{"message":"hi"}`), http.StatusBadRequest},
		{"json null content", "application/json", []byte(`{"content":null}`), http.StatusBadRequest},
		{"json null", "application/json", []byte(`null`), http.StatusBadRequest},
		{"json array", "application/json", []byte(`["hi"]`), http.StatusBadRequest},
		{"json number content", "application/json", []byte(`{"content":42}`), http.StatusBadRequest},
		{"json object content", "application/json", []byte(`{"content":{"a":1}}`), http.StatusBadRequest},
		{"json bool content", "application/json", []byte(`{"content":true}`), http.StatusBadRequest},

		{"xml", "application/xml", []byte(`<content>hi</content>`), http.StatusUnsupportedMediaType},
		{"octet-stream", "application/octet-stream", []byte("hi"), http.StatusUnsupportedMediaType},
		{"html", "text/html", []byte("hi"), http.StatusUnsupportedMediaType},
		{"garbage type", "///", []byte("hi"), http.StatusUnsupportedMediaType},
	}
	want := uint64(0)
	for _, c := range cases {
		for _, path := range []string{"/channels/limits/messages", "/chat"} {
			resp, body := ts.post(t, path, c.ctype, c.body)
			if c.status == http.StatusCreated {
				assertStatus(t, resp, body, http.StatusCreated)
				want++
				continue
			}
			if resp.StatusCode != c.status {
				t.Errorf("%s to %s: status %d, want %d; body %.200q", c.name, path, resp.StatusCode, c.status, body)
				continue
			}
			assertError(t, resp, body, c.status)
		}
	}
	// Only the accepted publishes were stored.
	if got := ts.Hub.Stats().Published(); got != want {
		t.Fatalf("%d messages stored, want %d", got, want)
	}
}

func TestPublishKey(t *testing.T) {
	const key = "s3cret"
	ts := newTestServer(t, func(c *api.Config) { c.PublishKey = key })
	for _, path := range []string{"/channels/x/messages", "/chat"} {
		for _, auth := range []struct {
			header string
			status int
		}{
			{"", http.StatusUnauthorized},
			{"Bearer", http.StatusUnauthorized},
			{"Bearer ", http.StatusUnauthorized},
			{"Basic czNjcmV0", http.StatusUnauthorized},
			{"Bearer wrong", http.StatusForbidden},
			{"Bearer s3cret2", http.StatusForbidden},
			{"Bearer " + key, http.StatusCreated},
			{"bearer " + key, http.StatusCreated}, // the scheme is case-insensitive
		} {
			var hdr []string
			if auth.header != "" {
				hdr = []string{"Authorization", auth.header}
			}
			resp, body := ts.post(t, path, "application/x-www-form-urlencoded", formBody("keyed"), hdr...)
			if auth.status == http.StatusCreated {
				assertStatus(t, resp, body, http.StatusCreated)
				continue
			}
			if resp.StatusCode != auth.status {
				t.Errorf("%s with %q: status %d, want %d", path, auth.header, resp.StatusCode, auth.status)
				continue
			}
			if got := resp.Header.Get("WWW-Authenticate"); auth.header == "" && got != `Bearer realm="announce"` {
				t.Errorf("%s without a key: WWW-Authenticate %q, want the challenge without an error code (RFC 6750 3.1)", path, got)
			}
			assertError(t, resp, body, auth.status)
		}
	}
	if got := ts.Hub.Stats().Published(); got != 4 {
		t.Fatalf("%d messages stored, want 4", got)
	}
	// Reading needs no key.
	resp, body := ts.get(t, "/channels/x/status?since=0")
	assertStatus(t, resp, body, http.StatusOK)
}

func TestInvalidChannelNames(t *testing.T) {
	ts := newTestServer(t)
	long := strings.Repeat("a", 65)
	for _, path := range []string{
		"/channels/a%2Fb/status",
		"/channels/a%2fb",
		"/channels/a%2Fb/messages",
		"/channels/%2E%2E/messages",
		"/channels/%2e/status",
		"/channels/" + long,
		"/channels/" + long + "/status",
		"/channels/a%20b",
		"/channels/a%20b/status",
		"/channels/caf%C3%A9/messages",
		"/channels/a%00b/status",
		"/channels/a%3Fb/events",
		"/channels/a+b/ws",
		"/channels/a/b/status", // a raw "/" in the name
		"/channels/a/b/c/messages",
		"/channels/a/b/events",
	} {
		resp, body := ts.get(t, path)
		assertError(t, resp, body, http.StatusBadRequest)
	}
	// Go's client would clean "..", so these go out on a raw connection.
	for _, target := range []string{"/channels/..", "/channels/../status", "/channels/./messages", "/channels/%2E%2E", "/channels/a%2Fb/status"} {
		resp, body := ts.raw(t, "GET", target)
		assertError(t, resp, body, http.StatusBadRequest)
	}
	resp, body := ts.raw(t, "POST", "/channels/../messages", "Content-Type: text/plain", "Content-Length: 0")
	assertError(t, resp, body, http.StatusBadRequest)
	// Publishing to an invalid name is refused the same way.
	resp, body = ts.post(t, "/channels/a%20b/messages", "text/plain", []byte("hi"))
	assertError(t, resp, body, http.StatusBadRequest)
	// The longest valid name and every allowed character are fine.
	for _, name := range []string{strings.Repeat("a", 64), "Az09_.:-", "...", "a..b"} {
		ts.Publish(t, name, "ok")
	}
	if got := ts.Hub.Stats().Published(); got != 4 {
		t.Fatalf("%d messages stored, want 4", got)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/nope", "/channels", "/channels/x/nope", "/channels/x/status/more", "/assets/nope.js"} {
		resp, body := ts.get(t, path)
		if path == "/assets/nope.js" {
			assertStatus(t, resp, body, http.StatusNotFound)
			continue
		}
		assertError(t, resp, body, http.StatusNotFound)
	}
	for _, mp := range [][2]string{
		{"DELETE", "/channels/x/messages"},
		{"PUT", "/channels/x/messages"},
		{"POST", "/channels/x/status"},
		{"DELETE", "/chat"},
		{"GET", "/chat"},
		{"POST", "/status"},
	} {
		req, _ := http.NewRequest(mp[0], ts.URL+mp[1], nil)
		resp, body := do(t, nil, req)
		assertError(t, resp, body, http.StatusMethodNotAllowed)
	}
}

func TestChannelInfo(t *testing.T) {
	ts := newTestServer(t)
	check := func(wantPoll int) map[string]json.RawMessage {
		t.Helper()
		resp, body := ts.get(t, "/channels/x")
		assertStatus(t, resp, body, http.StatusOK)
		var info map[string]json.RawMessage
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if len(info) != 3 || info["channel"] == nil || info["current"] == nil || info["observers"] == nil {
			t.Fatalf("info %s, want exactly channel, current, observers", body)
		}
		if string(info["channel"]) != `"x"` {
			t.Errorf("channel %s", info["channel"])
		}
		var obs map[string]int
		if err := json.Unmarshal(info["observers"], &obs); err != nil {
			t.Fatal(err)
		}
		if len(obs) != 3 || obs["poll"] != wantPoll || obs["sse"] != 0 || obs["ws"] != 0 {
			t.Errorf("observers %s, want {poll: %d, sse: 0, ws: 0}", info["observers"], wantPoll)
		}
		return info
	}
	if info := check(0); string(info["current"]) != `{"id":0,"channel":"x","content":""}` {
		t.Errorf("current of an empty channel: %s", info["current"])
	}
	m := ts.Publish(t, "x", "now")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pollAsync(ctx, http.DefaultClient, ts.URL+"/channels/x/status")
	waitObservers(t, ts.Hub, announce.Poll, 1)
	info := check(1)
	var cur announce.Message
	if err := json.Unmarshal(info["current"], &cur); err != nil || cur != m {
		t.Errorf("current %s, want %+v", info["current"], m)
	}
	cancel()
	waitObservers(t, ts.Hub, announce.Poll, 0)
}

func TestMessagesLog(t *testing.T) {
	ts := newTestServerHub(t, func(c *announce.Config) { c.History = 5 })
	getLog := func(q string) []announce.Message {
		t.Helper()
		resp, body := ts.get(t, "/channels/log/messages"+q)
		assertStatus(t, resp, body, http.StatusOK)
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		if len(body) == 0 || body[0] != '[' {
			t.Fatalf("%s: body %q is not a JSON array", q, body)
		}
		var msgs []announce.Message
		if err := json.Unmarshal(body, &msgs); err != nil {
			t.Fatalf("%s: %q: %v", q, body, err)
		}
		return msgs
	}
	ids := func(msgs []announce.Message) []uint64 {
		var out []uint64
		for _, m := range msgs {
			out = append(out, m.ID)
		}
		return out
	}
	resp, body := ts.get(t, "/channels/log/messages")
	assertStatus(t, resp, body, http.StatusOK)
	if string(body) != "[]" {
		t.Fatalf("empty log: %q, want []", body)
	}
	var sent []announce.Message
	for i := range 7 {
		sent = append(sent, ts.Publish(t, "log", strings.Repeat("m", i+1)))
	}
	for _, c := range []struct {
		q    string
		want []uint64
	}{
		{"", []uint64{3, 4, 5, 6, 7}}, // history keeps the last 5
		{"?since=0", []uint64{3, 4, 5, 6, 7}},
		{"?since=4", []uint64{5, 6, 7}},
		{"?since=2&limit=2", []uint64{3, 4}},
		{"?since=5&limit=1", []uint64{6}},
		{"?limit=1000", []uint64{3, 4, 5, 6, 7}},
		{"?limit=100000", []uint64{3, 4, 5, 6, 7}}, // past any history: all of it
		{"?limit=99999999999999999999", []uint64{3, 4, 5, 6, 7}},
		{"?limit=&wait=", []uint64{3, 4, 5, 6, 7}}, // empty: the defaults
		{"?since=7", nil},
		{"?since=70", []uint64{7}}, // ahead of the channel: a reset, answered with the current message
	} {
		got := getLog(c.q)
		if !slicesEqual(ids(got), c.want) {
			t.Errorf("%s: ids %v, want %v", c.q, ids(got), c.want)
		}
		for _, m := range got {
			if m != sent[m.ID-1] {
				t.Errorf("%s: %+v, want %+v", c.q, m, sent[m.ID-1])
			}
		}
	}
	resp, body = ts.get(t, "/channels/log/messages?since=7")
	if string(body) != "[]" {
		t.Errorf("nothing newer: %q, want []", body)
	}

	// wait= blocks while there is nothing, then answers the publish.
	ans := pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/log/messages?since=7&wait=30")
	waitObservers(t, ts.Hub, announce.Poll, 1)
	m8 := ts.Publish(t, "log", "eighth")
	r, b := await(t, ans, 5*time.Second)
	assertStatus(t, r, b, http.StatusOK)
	var got []announce.Message
	if err := json.Unmarshal(b, &got); err != nil || len(got) != 1 || got[0] != m8 {
		t.Fatalf("wait answered %q (%v), want [%+v]", b, err, m8)
	}
	// With something to answer, wait= answers at once.
	r, b = await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/log/messages?since=6&wait=30"), 5*time.Second)
	assertStatus(t, r, b, http.StatusOK)
	if err := json.Unmarshal(b, &got); err != nil || len(got) != 2 {
		t.Fatalf("wait with history answered %q", b)
	}
	// wait= times out with [].
	start := time.Now()
	r, b = await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/log/messages?since=8&wait=0.2"), 10*time.Second)
	assertStatus(t, r, b, http.StatusOK)
	if string(b) != "[]" || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("wait timeout answered %q after %v", b, time.Since(start))
	}
	// A cursor ahead of the store (a reset) answers the current message at once.
	r, b = await(t, pollAsync(context.Background(), http.DefaultClient, ts.URL+"/channels/log/messages?since=100&wait=30"), 10*time.Second)
	assertStatus(t, r, b, http.StatusOK)
	if err := json.Unmarshal(b, &got); err != nil || len(got) != 1 || got[0] != m8 {
		t.Fatalf("cursor ahead answered %q, want [%+v]", b, m8)
	}
	waitObservers(t, ts.Hub, announce.Poll, 0)

	for _, q := range []string{"since=-1", "since=x", "since=1.5", "limit=0", "limit=-1", "limit=x", "limit=%zz", "since=%zz", "wait=-1", "wait=x", "wait=NaN"} {
		resp, body := ts.get(t, "/channels/log/messages?"+q)
		assertError(t, resp, body, http.StatusBadRequest)
	}
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOperationalEndpoints(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) { c.PollTimeout = time.Second })
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := ts.get(t, path)
		assertStatus(t, resp, body, http.StatusOK)
		if !json.Valid(body) {
			t.Errorf("%s: %q is not JSON", path, body)
		}
		head, err := http.Head(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		head.Body.Close()
		if head.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %d, want 200", path, head.StatusCode)
		}
	}
	ts.Publish(t, "x", "counted")
	ts.get(t, "/channels/x/status?since=1&timeout=0") // one poll timeout
	resp, body := ts.get(t, "/metrics")
	assertStatus(t, resp, body, http.StatusOK)
	text := string(body)
	for _, want := range []string{
		"announce_published_total 1",
		`announce_observers{transport="poll"} 0`,
		`announce_observers{transport="sse"} 0`,
		`announce_observers{transport="ws"} 0`,
		"announce_poll_timeouts_total 1",
		"announce_publish_seconds_bucket",
		"announce_publish_seconds_count 1",
		`announce_delivered_total{transport="poll"}`,
		"announce_slow_consumers_total 0",
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestReadyzReflectsShutdownAndStore(t *testing.T) {
	var down atomic.Bool
	ts := newTestServer(t, func(c *api.Config) {
		c.Ready = func() error {
			if down.Load() {
				return announce.ErrUnavailable
			}
			return nil
		}
	})
	resp, body := ts.get(t, "/readyz")
	assertStatus(t, resp, body, http.StatusOK)
	down.Store(true)
	resp, body = ts.get(t, "/readyz")
	assertStatus(t, resp, body, http.StatusServiceUnavailable)
	down.Store(false)
	shutdownAPI(t, ts.API)
	resp, body = ts.get(t, "/readyz")
	assertStatus(t, resp, body, http.StatusServiceUnavailable)
	resp, body = ts.get(t, "/healthz")
	assertStatus(t, resp, body, http.StatusOK)
}
