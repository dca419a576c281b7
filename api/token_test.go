package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/token"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
	"github.com/gorilla/websocket"
)

// Helpers here are prefixed tk, so they never collide with other test files.

const (
	tkKey    = "publish-key-for-token-tests"
	tkSecret = "token-secret-for-the-token-tests-0123456789"
)

// tkServer is a server with a publish key and a token secret.
func tkServer(t *testing.T, opts ...func(*api.Config)) *testServer {
	t.Helper()
	return newTestServer(t, append([]func(*api.Config){func(c *api.Config) {
		c.PublishKey = tkKey
		c.TokenSecret = tkSecret
	}}, opts...)...)
}

// tkMint signs a token with secret that expires at exp (whole seconds).
func tkMint(t testing.TB, secret, channel string, exp time.Time, publish bool) string {
	t.Helper()
	exp = exp.Truncate(time.Second)
	s, err := token.NewSigner([]byte(secret), func() time.Time { return exp.Add(-time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Mint(token.Grant{Channel: channel, TTL: time.Hour, Publish: publish})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tkSoon is a whole second between 1.5 and 2.5 s from now: a token
// expiring then outlives the set-up of a stream, then expires mid-stream.
func tkSoon() time.Time {
	return time.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
}

// tkAnswer is POST .../tokens' answer.
type tkAnswer struct {
	Token   string    `json:"token"`
	Channel string    `json:"channel"`
	Publish bool      `json:"publish"`
	Expires time.Time `json:"expires"`
	URLs    struct {
		WS, SSE, Poll string
	} `json:"urls"`
}

// tkMintHTTP mints a token over the API and asserts 201.
func tkMintHTTP(t *testing.T, ts *testServer, channel, ctype, body string, header ...string) tkAnswer {
	t.Helper()
	resp, b := ts.post(t, "/channels/"+channel+"/tokens", ctype, []byte(body), header...)
	assertStatus(t, resp, b, http.StatusCreated)
	var a tkAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("token answer %s: %v", b, err)
	}
	return a
}

func tkGet(t *testing.T, rawURL string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, nil, req)
}

func tkWSURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

// tkDial opens a WebSocket; on a refused upgrade it returns the HTTP answer.
func tkDial(t *testing.T, rawURL string) (*websocket.Conn, *http.Response, []byte) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(rawURL, nil)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", rawURL, err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return nil, resp, []byte(b.String())
	}
	t.Cleanup(func() { conn.Close() })
	return conn, resp, nil
}

// tkReadWS reads one text frame as a JSON object.
func tkReadWS(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("frame %q: %v", data, err)
	}
	return m
}

// tkSSE is an open event stream.
type tkSSE struct {
	resp *http.Response
	r    *bufio.Reader
}

func tkOpenSSE(t *testing.T, rawURL string) *tkSSE {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE %s: status %d", rawURL, resp.StatusCode)
	}
	return &tkSSE{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next reads the next event (type and data), skipping retry and comments;
// err is io.EOF when the stream ended.
func (s *tkSSE) next() (event, data string, err error) {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if event != "" || data != "" {
				return event, data, nil
			}
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
}

// nextWithin is next with a deadline, failing the test when it passes.
func (s *tkSSE) nextWithin(t *testing.T, d time.Duration) (string, string, error) {
	t.Helper()
	type ev struct {
		e, d string
		err  error
	}
	ch := make(chan ev, 1)
	go func() { e, d, err := s.next(); ch <- ev{e, d, err} }()
	select {
	case v := <-ch:
		return v.e, v.d, v.err
	case <-time.After(d):
		t.Fatalf("no SSE event within %v", d)
		return "", "", nil
	}
}

func TestTokenMintAnswer(t *testing.T) {
	ts := tkServer(t)
	before := time.Now()
	a := tkMintHTTP(t, ts, "private-ops", "application/json", `{"duration":"10m","name":"alice"}`, "Authorization", "Bearer "+tkKey)
	if a.Token == "" || a.Channel != "private-ops" || a.Publish {
		t.Fatalf("answer %+v", a)
	}
	if d := a.Expires.Sub(before); d < 10*time.Minute-2*time.Second || d > 10*time.Minute+time.Second {
		t.Errorf("expires %v, want 10 minutes after %v", a.Expires, before)
	}
	q := "?token=" + url.QueryEscape(a.Token)
	host := ts.Addr()
	for got, want := range map[string]string{
		a.URLs.WS:   "ws://" + host + "/channels/private-ops/ws" + q,
		a.URLs.SSE:  "http://" + host + "/channels/private-ops/events" + q,
		a.URLs.Poll: "http://" + host + "/channels/private-ops/status" + q,
	} {
		if got != want {
			t.Errorf("url %q, want %q", got, want)
		}
	}
	// The token is a standard HS256 JWT with the documented claims.
	s, _ := token.NewSigner([]byte(tkSecret), nil)
	c, err := s.Verify(a.Token)
	if err != nil {
		t.Fatal(err)
	}
	if c.Channel != "private-ops" || c.Publish || c.Name() != "alice" || c.IssuedAt == nil || !c.Expires().Equal(a.Expires) {
		t.Errorf("claims %+v", c)
	}

	// Behind a TLS-terminating proxy the URLs are https and wss.
	a = tkMintHTTP(t, ts, "private-ops", "", "", "Authorization", "Bearer "+tkKey, "X-Forwarded-Proto", "https")
	if !strings.HasPrefix(a.URLs.WS, "wss://") || !strings.HasPrefix(a.URLs.SSE, "https://") || !strings.HasPrefix(a.URLs.Poll, "https://") {
		t.Errorf("urls behind https: %+v", a.URLs)
	}
	if d := time.Until(a.Expires); d < time.Hour-5*time.Second || d > time.Hour+time.Second {
		t.Errorf("default lifetime ends in %v, want 1h", d)
	}
}

func TestTokenMintRequests(t *testing.T) {
	ts := tkServer(t)
	auth := []string{"Authorization", "Bearer " + tkKey}
	for _, c := range []struct {
		name, ctype, body string
		header            []string
		status            int
		ttl               time.Duration
		publish           bool
	}{
		{"no key", "", "", nil, http.StatusUnauthorized, 0, false},
		{"wrong key", "", "", []string{"Authorization", "Bearer nope"}, http.StatusForbidden, 0, false},
		{"a token is not the key", "", "", []string{"Authorization", "Bearer " + tkMint(t, tkSecret, "private-x", time.Now().Add(time.Hour), true)}, http.StatusForbidden, 0, false},
		{"json seconds", "application/json", `{"duration":90,"publish":true}`, auth, http.StatusCreated, 90 * time.Second, true},
		{"json seconds string", "application/json", `{"duration":"3600"}`, auth, http.StatusCreated, time.Hour, false},
		{"json max", "application/json", `{"duration":"24h"}`, auth, http.StatusCreated, 24 * time.Hour, false},
		{"json null", "application/json", `{"duration":null}`, auth, http.StatusCreated, time.Hour, false},
		{"form", "application/x-www-form-urlencoded", "duration=2m&publish=true&name=bob", auth, http.StatusCreated, 2 * time.Minute, true},
		{"untyped json", "", `{"duration":"5m"}`, auth, http.StatusCreated, 5 * time.Minute, false},
		{"too long", "application/json", `{"duration":"25h"}`, auth, http.StatusBadRequest, 0, false},
		{"too long seconds", "application/json", `{"duration":86401}`, auth, http.StatusBadRequest, 0, false},
		{"zero", "application/json", `{"duration":"0s"}`, auth, http.StatusBadRequest, 0, false},
		{"negative", "application/json", `{"duration":-5}`, auth, http.StatusBadRequest, 0, false},
		{"garbage", "application/json", `{"duration":"soon"}`, auth, http.StatusBadRequest, 0, false},
		{"bool", "application/json", `{"duration":true}`, auth, http.StatusBadRequest, 0, false},
		{"form garbage", "application/x-www-form-urlencoded", "duration=soon", auth, http.StatusBadRequest, 0, false},
		{"form publish", "application/x-www-form-urlencoded", "publish=maybe", auth, http.StatusBadRequest, 0, false},
		{"unknown field", "application/json", `{"duraton":"5m"}`, auth, http.StatusBadRequest, 0, false},
		{"not json", "application/json", `{`, auth, http.StatusBadRequest, 0, false},
		{"control in name", "application/json", `{"name":"a\u0001b"}`, auth, http.StatusBadRequest, 0, false},
		{"other type", "text/plain", "1h", auth, http.StatusUnsupportedMediaType, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := time.Now()
			resp, b := ts.post(t, "/channels/private-x/tokens", c.ctype, []byte(c.body), c.header...)
			if c.status != http.StatusCreated {
				assertError(t, resp, b, c.status)
				return
			}
			assertStatus(t, resp, b, http.StatusCreated)
			var a tkAnswer
			_ = json.Unmarshal(b, &a)
			if d := a.Expires.Sub(before); d < c.ttl-2*time.Second || d > c.ttl+time.Second {
				t.Errorf("lifetime %v, want %v", d, c.ttl)
			}
			if a.Publish != c.publish {
				t.Errorf("publish %v, want %v", a.Publish, c.publish)
			}
		})
	}
	resp, b := ts.post(t, "/channels/bad%20name/tokens", "", nil, auth...)
	assertError(t, resp, b, http.StatusBadRequest)
	if got := ts.Hub.Stats().Published(); got != 0 {
		t.Errorf("minting published %d messages", got)
	}
}

// Without a publish key the server is open: anyone may mint.
func TestTokenMintOpenServer(t *testing.T) {
	ts := newTestServer(t)
	a := tkMintHTTP(t, ts, "private-open", "", "")
	resp, b := tkGet(t, ts.URL+"/channels/private-open")
	assertError(t, resp, b, http.StatusUnauthorized)
	resp, b = tkGet(t, ts.URL+"/channels/private-open?token="+a.Token)
	assertStatus(t, resp, b, http.StatusOK)
}

// A valid token opens every observe route of its channel, as ?token= or as a Bearer header.
func TestTokenObservesAllTransports(t *testing.T) {
	ts := tkServer(t)
	const ch = "private-all"
	a := tkMintHTTP(t, ts, ch, "", "", "Authorization", "Bearer "+tkKey)
	first := tkPublishKey(t, ts, ch, "one")

	// Channel info, by query and by header.
	resp, b := tkGet(t, ts.URL+"/channels/"+ch+"?token="+a.Token)
	assertStatus(t, resp, b, http.StatusOK)
	resp, b = tkGet(t, ts.URL+"/channels/"+ch, "Authorization", "Bearer "+a.Token)
	assertStatus(t, resp, b, http.StatusOK)
	// The publish key observes too (by header only).
	resp, b = tkGet(t, ts.URL+"/channels/"+ch, "Authorization", "Bearer "+tkKey)
	assertStatus(t, resp, b, http.StatusOK)

	// Long-poll: a cursor behind answers at once.
	resp, b = tkGet(t, a.URLs.Poll+"&since=0")
	assertStatus(t, resp, b, http.StatusOK)
	if m := decodeMessage(t, b); m.ID != first.ID {
		t.Errorf("long-poll got %+v", m)
	}
	// The log.
	resp, b = tkGet(t, ts.URL+"/channels/"+ch+"/messages?since=0", "Authorization", "Bearer "+a.Token)
	assertStatus(t, resp, b, http.StatusOK)
	if !strings.Contains(string(b), `"content":"one"`) {
		t.Errorf("log %s", b)
	}

	// SSE: the current message, then live.
	sse := tkOpenSSE(t, a.URLs.SSE)
	if ev, data, err := sse.nextWithin(t, 10*time.Second); err != nil || ev != "message" || !strings.Contains(data, `"content":"one"`) {
		t.Fatalf("SSE first event %q %q %v", ev, data, err)
	}
	// /status negotiates SSE with the token too.
	req, _ := http.NewRequest(http.MethodGet, a.URLs.Poll, nil)
	req.Header.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp2, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK || !strings.HasPrefix(resp2.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("negotiated SSE: %d %s", resp2.StatusCode, resp2.Header.Get("Content-Type"))
	}

	// WebSocket on /ws and on /status.
	conn, resp, b := tkDial(t, a.URLs.WS)
	if conn == nil {
		t.Fatalf("ws refused: %d %s", resp.StatusCode, b)
	}
	if m := tkReadWS(t, conn); m["content"] != "one" {
		t.Fatalf("ws first frame %v", m)
	}
	conn2, resp, b := tkDial(t, tkWSURL(a.URLs.Poll))
	if conn2 == nil {
		t.Fatalf("ws on /status refused: %d %s", resp.StatusCode, b)
	}
	if m := tkReadWS(t, conn2); m["content"] != "one" {
		t.Fatalf("ws /status first frame %v", m)
	}

	// A live message reaches them all, and a waiting long-poll.
	poll := make(chan []byte, 1)
	go func() {
		resp, err := http.Get(a.URLs.Poll + "&since=" + "1")
		if err != nil {
			poll <- nil
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		poll <- []byte(b.String())
	}()
	waitObservers(t, ts.Hub, announce.Poll, 1) // the long-poll waits
	tkPublishKey(t, ts, ch, "two")
	if ev, data, err := sse.nextWithin(t, 10*time.Second); err != nil || ev != "message" || !strings.Contains(data, `"content":"two"`) {
		t.Fatalf("SSE live event %q %q %v", ev, data, err)
	}
	if m := tkReadWS(t, conn); m["content"] != "two" {
		t.Fatalf("ws live frame %v", m)
	}
	if m := tkReadWS(t, conn2); m["content"] != "two" {
		t.Fatalf("ws /status live frame %v", m)
	}
	select {
	case b := <-poll:
		if m := decodeMessage(t, b); m.Content != "two" {
			t.Fatalf("long-poll woke with %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll not woken")
	}
}

// tkPublishKey publishes with the publish key.
func tkPublishKey(t *testing.T, ts *testServer, ch, content string) (m struct{ ID uint64 }) {
	t.Helper()
	resp, b := ts.post(t, "/channels/"+ch+"/messages", "text/plain", []byte(content), "Authorization", "Bearer "+tkKey)
	assertStatus(t, resp, b, http.StatusCreated)
	_ = json.Unmarshal(b, &m)
	return m
}

// Every observe route refuses a missing, forged, expired or foreign token, with a JSON error.
func TestTokenRefusals(t *testing.T) {
	ts := tkServer(t)
	const ch = "private-refuse"
	valid := tkMint(t, tkSecret, ch, time.Now().Add(time.Hour), false)
	parts := strings.Split(valid, ".")
	other := tkMint(t, tkSecret, "private-other", time.Now().Add(time.Hour), false)
	swapped := parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2] // other's claims, this signature
	cases := []struct {
		name   string
		tok    string
		status int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"garbage", "not-a-token", http.StatusUnauthorized},
		{"forged", tkMint(t, "another secret entirely", ch, time.Now().Add(time.Hour), true), http.StatusUnauthorized},
		{"tampered", swapped, http.StatusUnauthorized},
		{"expired", tkMint(t, tkSecret, ch, time.Now().Add(-time.Minute), false), http.StatusUnauthorized},
		{"wrong channel", other, http.StatusForbidden},
	}
	routes := []string{"", "/status?since=0", "/status?timeout=1", "/events", "/messages?since=0"}
	for _, c := range cases {
		for _, route := range routes {
			path := "/channels/" + ch + route
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			if c.tok != "" {
				// As ?token=...
				resp, b := tkGet(t, ts.URL+path+sep+"token="+url.QueryEscape(c.tok))
				assertError(t, resp, b, c.status)
				// ...and as a Bearer header.
				resp, b = tkGet(t, ts.URL+path, "Authorization", "Bearer "+c.tok)
				assertError(t, resp, b, c.status)
			} else {
				resp, b := tkGet(t, ts.URL+path)
				assertError(t, resp, b, c.status)
			}
			if c.status == http.StatusUnauthorized {
				// A 401 carries its challenge.
				resp, _ := tkGet(t, ts.URL+path+sep+"token="+url.QueryEscape(c.tok))
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: WWW-Authenticate %q", c.name, path, resp.Header.Get("WWW-Authenticate"))
				}
			}
		}
		// SSE negotiated on /status, and the WebSocket upgrades.
		q := ""
		if c.tok != "" {
			q = "?token=" + url.QueryEscape(c.tok)
		}
		resp, b := tkGet(t, ts.URL+"/channels/"+ch+"/status"+q, "Accept", "text/event-stream")
		assertError(t, resp, b, c.status)
		for _, route := range []string{"/ws", "/status"} {
			conn, resp, b := tkDial(t, tkWSURL(ts.URL)+"/channels/"+ch+route+q)
			if conn != nil {
				t.Fatalf("%s: WebSocket %s opened", c.name, route)
			}
			assertError(t, resp, b, c.status)
		}
		// The demo page renders the current message: it is guarded too.
		resp, b = tkGet(t, ts.URL+"/?channel="+ch+strings.Replace(q, "?", "&", 1))
		assertError(t, resp, b, c.status)
	}
	if n := ts.Hub.Stats().Observers(announce.Poll) + ts.Hub.Stats().Observers(announce.SSE) + ts.Hub.Stats().Observers(announce.WebSocket); n != 0 {
		t.Errorf("%d observers registered by refused requests", n)
	}
	// And the valid one is let in everywhere, the page included.
	tkPublishKey(t, ts, ch, "something to answer")
	for _, route := range routes {
		if route == "/events" {
			continue // a stream: see TestTokenObservesAllTransports
		}
		resp, b := tkGet(t, ts.URL+"/channels/"+ch+route, "Authorization", "Bearer "+valid)
		assertStatus(t, resp, b, http.StatusOK)
	}
	resp, b := tkGet(t, ts.URL+"/?channel="+ch+"&token="+valid)
	assertStatus(t, resp, b, http.StatusOK)
}

// Public channels need nothing, whatever a private one needs.
func TestTokenPublicChannelsUnaffected(t *testing.T) {
	ts := tkServer(t)
	tkPublishKey(t, ts, "news", "hello")
	for _, path := range []string{"/channels/news", "/channels/news/status?since=0", "/channels/news/messages", "/status?since=0&timeout=0", "/?channel=news", "/channels/privately/status?since=0&timeout=0"} {
		resp, b := tkGet(t, ts.URL+path)
		assertStatus(t, resp, b, http.StatusOK)
	}
	sse := tkOpenSSE(t, ts.URL+"/channels/news/events")
	if ev, _, err := sse.nextWithin(t, 10*time.Second); err != nil || ev != "message" {
		t.Fatalf("SSE on a public channel: %q %v", ev, err)
	}
	conn, resp, b := tkDial(t, tkWSURL(ts.URL)+"/channels/news/ws")
	if conn == nil {
		t.Fatalf("ws on a public channel refused: %d %s", resp.StatusCode, b)
	}
	// A non-token bearer value (another scheme's) on a public read is none of ours.
	resp, b = tkGet(t, ts.URL+"/channels/news", "Authorization", "Bearer some-proxy-credential")
	assertStatus(t, resp, b, http.StatusOK)
	// A token presented on a public channel must still be good.
	resp, b = tkGet(t, ts.URL+"/channels/news?token="+tkMint(t, tkSecret, "news", time.Now().Add(-time.Minute), false))
	assertError(t, resp, b, http.StatusUnauthorized)
}

// A custom prefix moves the boundary.
func TestTokenCustomPrefix(t *testing.T) {
	ts := tkServer(t, func(c *api.Config) { c.PrivatePrefix = "team." })
	resp, b := tkGet(t, ts.URL+"/channels/team.red")
	assertError(t, resp, b, http.StatusUnauthorized)
	resp, b = tkGet(t, ts.URL+"/channels/private-red")
	assertStatus(t, resp, b, http.StatusOK)
	if _, err := api.New(api.Config{Hub: ts.Hub, PrivatePrefix: "bad/prefix"}); err == nil {
		t.Error("api.New accepted a prefix no channel name can have")
	}
}

func TestTokenExpiresMidStreamSSE(t *testing.T) {
	t.Parallel() // waits for an expiry
	ts := tkServer(t)
	const ch = "private-sse"
	exp := tkSoon()
	tok := tkMint(t, tkSecret, ch, exp, false)
	sse := tkOpenSSE(t, ts.URL+"/channels/"+ch+"/events?token="+tok)
	waitObservers(t, ts.Hub, announce.SSE, 1)
	tkPublishKey(t, ts, ch, "before expiry")
	if ev, data, err := sse.nextWithin(t, 10*time.Second); err != nil || ev != "message" || !strings.Contains(data, "before expiry") {
		t.Fatalf("live event %q %q %v", ev, data, err)
	}
	ev, data, err := sse.nextWithin(t, 10*time.Second)
	if err != nil || ev != "error" || data != `{"event":"error","error":"token expired"}` {
		t.Fatalf("at expiry got %q %q %v, want the token-expired error event", ev, data, err)
	}
	if time.Now().Before(exp) {
		t.Errorf("stream ended %v before the token expired", time.Until(exp))
	}
	if _, _, err := sse.nextWithin(t, 10*time.Second); err == nil {
		t.Fatal("stream continued after the token expired")
	}
	waitObservers(t, ts.Hub, announce.SSE, 0)
	// Reconnecting with the expired token is refused.
	resp, b := tkGet(t, ts.URL+"/channels/"+ch+"/events?token="+tok)
	assertError(t, resp, b, http.StatusUnauthorized)
}

func TestTokenExpiresMidStreamWebSocket(t *testing.T) {
	t.Parallel() // waits for an expiry
	ts := tkServer(t)
	const ch = "private-ws"
	exp := tkSoon()
	conn, resp, b := tkDial(t, tkWSURL(ts.URL)+"/channels/"+ch+"/ws?token="+tkMint(t, tkSecret, ch, exp, false))
	if conn == nil {
		t.Fatalf("refused: %d %s", resp.StatusCode, b)
	}
	tkPublishKey(t, ts, ch, "before expiry")
	if m := tkReadWS(t, conn); m["content"] != "before expiry" {
		t.Fatalf("frame %v", m)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "token expired" {
		t.Fatalf("read after expiry: %v, want close 1008 \"token expired\"", err)
	}
	if time.Now().Before(exp) {
		t.Errorf("closed %v before the token expired", time.Until(exp))
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
}

// A long-poll never waits past its token's expiry: it answers the current
// message then, and the next poll with that token is refused.
func TestTokenLongPollCappedAtExpiry(t *testing.T) {
	t.Parallel() // waits for an expiry
	ts := tkServer(t)
	const ch = "private-poll"
	cur := tkPublishKey(t, ts, ch, "current")
	exp := tkSoon()
	tok := tkMint(t, tkSecret, ch, exp, false)
	start := time.Now()
	resp, b := tkGet(t, ts.URL+"/channels/"+ch+"/status?timeout=30&since="+strconv.FormatUint(cur.ID, 10)+"&token="+tok)
	assertStatus(t, resp, b, http.StatusOK)
	if m := decodeMessage(t, b); m.ID != cur.ID {
		t.Fatalf("answer %s", b)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("long-poll waited %v, past its token", took)
	}
	if time.Now().Before(exp.Add(-time.Second)) {
		t.Errorf("answered long before the expiry (%v left)", time.Until(exp))
	}
	// The log's wait is capped the same way.
	resp, b = tkGet(t, ts.URL+"/channels/"+ch+"/messages?wait=30&since="+strconv.FormatUint(cur.ID, 10)+"&token="+tok)
	if resp.StatusCode == http.StatusOK && string(b) != "[]" {
		t.Fatalf("log answer %s", b)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("the log's wait outlived the token")
	}
	testenv.WaitFor(t, 5*time.Second, "expiry", func() bool { return time.Now().After(exp) })
	resp, b = tkGet(t, ts.URL+"/channels/"+ch+"/status?since=0&token="+tok)
	assertError(t, resp, b, http.StatusUnauthorized)
}

// A token granting publish publishes to its channel, over HTTP and WebSocket.
func TestTokenPublishGrant(t *testing.T) {
	ts := tkServer(t)
	const ch = "private-pub"
	pub := tkMint(t, tkSecret, ch, time.Now().Add(time.Hour), true)
	readOnly := tkMint(t, tkSecret, ch, time.Now().Add(time.Hour), false)
	for _, c := range []struct {
		name   string
		path   string
		header []string
		status int
	}{
		{"bearer", "/channels/" + ch + "/messages", []string{"Authorization", "Bearer " + pub}, http.StatusCreated},
		{"query", "/channels/" + ch + "/messages?token=" + pub, nil, http.StatusCreated},
		{"read-only token", "/channels/" + ch + "/messages", []string{"Authorization", "Bearer " + readOnly}, http.StatusForbidden},
		{"other channel", "/channels/private-else/messages", []string{"Authorization", "Bearer " + pub}, http.StatusForbidden},
		{"public other channel", "/channels/news/messages", []string{"Authorization", "Bearer " + pub}, http.StatusForbidden},
		{"expired", "/channels/" + ch + "/messages", []string{"Authorization", "Bearer " + tkMint(t, tkSecret, ch, time.Now().Add(-time.Minute), true)}, http.StatusUnauthorized},
		{"forged", "/channels/" + ch + "/messages", []string{"Authorization", "Bearer " + tkMint(t, "forger", ch, time.Now().Add(time.Hour), true)}, http.StatusUnauthorized},
		{"header wins over query", "/channels/" + ch + "/messages?token=" + pub, []string{"Authorization", "Basic eDp5"}, http.StatusUnauthorized},
		{"the key in the URL", "/channels/" + ch + "/messages?token=" + tkKey, nil, http.StatusUnauthorized},
		{"the key in the URL of /chat", "/chat?token=" + tkKey, nil, http.StatusUnauthorized},
	} {
		resp, b := ts.post(t, c.path, "text/plain", []byte("by token"), c.header...)
		if c.status == http.StatusCreated {
			assertStatus(t, resp, b, c.status)
		} else {
			assertError(t, resp, b, c.status)
		}
	}
	// A publish grant on a public channel works the same.
	resp, b := ts.post(t, "/channels/news/messages", "text/plain", []byte("x"), "Authorization", "Bearer "+tkMint(t, tkSecret, "news", time.Now().Add(time.Hour), true))
	assertStatus(t, resp, b, http.StatusCreated)

	// WebSocket: the connection's token grants publishing, no key needed.
	conn, resp, b := tkDial(t, tkWSURL(ts.URL)+"/channels/"+ch+"/ws?token="+pub)
	if conn == nil {
		t.Fatalf("refused: %d %s", resp.StatusCode, b)
	}
	tkReadWS(t, conn) // the current message
	if err := conn.WriteJSON(map[string]string{"type": "publish", "content": "over ws"}); err != nil {
		t.Fatal(err)
	}
	tkExpectAckAndEcho(t, conn, "over ws")

	// An observe-only connection needs a credential in the frame: the key or a publish token.
	ro, resp, b := tkDial(t, tkWSURL(ts.URL)+"/channels/"+ch+"/ws?token="+readOnly)
	if ro == nil {
		t.Fatalf("refused: %d %s", resp.StatusCode, b)
	}
	tkReadWS(t, ro)
	_ = ro.WriteJSON(map[string]string{"type": "publish", "content": "no grant"})
	if m := tkReadWS(t, ro); m["event"] != "error" {
		t.Fatalf("publish without grant: %v", m)
	}
	_ = ro.WriteJSON(map[string]string{"type": "publish", "content": "read-only key", "key": readOnly})
	if m := tkReadWS(t, ro); m["event"] != "error" {
		t.Fatalf("publish with a read-only token: %v", m)
	}
	_ = ro.WriteJSON(map[string]string{"type": "publish", "content": "frame token", "key": pub})
	tkExpectAckAndEcho(t, ro, "frame token")
	tkReadWS(t, conn) // conn sees it too
	_ = ro.WriteJSON(map[string]string{"type": "publish", "content": "frame key", "key": tkKey})
	tkExpectAckAndEcho(t, ro, "frame key")
}

// A publish key shaped like a token (two dots) is still the key: it
// publishes over HTTP and in a WebSocket frame.
func TestTokenShapedPublishKey(t *testing.T) {
	const key = "my.secret.key"
	ts := tkServer(t, func(c *api.Config) { c.PublishKey = key })
	for _, path := range []string{"/channels/dots/messages", "/chat"} {
		resp, b := ts.post(t, path, "text/plain", []byte("with the key"), "Authorization", "Bearer "+key)
		assertStatus(t, resp, b, http.StatusCreated)
		resp, b = ts.post(t, path, "text/plain", []byte("another"), "Authorization", "Bearer my.other.key")
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s with a wrong dotted key: %d %s, want 401 or 403", path, resp.StatusCode, b)
		}
	}
	conn, resp, b := tkDial(t, tkWSURL(ts.URL)+"/channels/dots/ws")
	if conn == nil {
		t.Fatalf("refused: %d %s", resp.StatusCode, b)
	}
	tkReadWS(t, conn) // the current message
	_ = conn.WriteJSON(map[string]string{"type": "publish", "content": "frame with the key", "key": key})
	tkExpectAckAndEcho(t, conn, "frame with the key")
}

// tkExpectAckAndEcho reads the ack and the sender's own copy, in either order.
func tkExpectAckAndEcho(t *testing.T, conn *websocket.Conn, content string) {
	t.Helper()
	var acked, echoed bool
	for !acked || !echoed {
		m := tkReadWS(t, conn)
		switch {
		case m["event"] == "ack":
			acked = true
		case m["content"] == content:
			echoed = true
		default:
			t.Fatalf("waiting for ack and %q: got %v", content, m)
		}
	}
}

// Tokens minted concurrently all verify (the signer is shared).
func TestTokenConcurrentMint(t *testing.T) {
	ts := tkServer(t)
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/channels/private-c/tokens", nil)
			req.Header.Set("Authorization", "Bearer "+tkKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			var a tkAnswer
			if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&a) != nil {
				errs <- "status " + resp.Status
				return
			}
			r2, err := http.Get(a.URLs.Poll + "&timeout=0")
			if err != nil {
				errs <- err.Error()
				return
			}
			r2.Body.Close()
			if r2.StatusCode != http.StatusOK {
				errs <- "poll " + r2.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
