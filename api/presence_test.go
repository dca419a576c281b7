package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/token"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
)

// presenceServer is a test server with its own presence tracker (closed
// after the server's cleanup).
func presenceServer(t *testing.T, pcfg presence.Config, opts ...func(*api.Config)) (*testServer, *presence.Tracker) {
	t.Helper()
	tr, err := presence.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) }) // runs after the server's cleanup
	ts := newTestServer(t, append([]func(*api.Config){func(c *api.Config) { c.Presence = tr }}, opts...)...)
	return ts, tr
}

// getPresence reads GET /channels/{ch}/presence.
func getPresence(t testing.TB, ts *testServer, ch string, header ...string) presence.Snapshot {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/channels/"+ch+"/presence", nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, body := do(t, nil, req)
	assertStatus(t, resp, body, http.StatusOK)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("presence: Cache-Control %q", cc)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("presence %s: %v", body, err)
	}
	for _, k := range []string{"channel", "observers", "total", "names"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("presence %s has no %q", body, k)
		}
	}
	var s presence.Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitPresence waits until the channel's presence is want.
func waitPresence(t testing.TB, ts *testServer, ch string, want presence.Snapshot) {
	t.Helper()
	want.Channel = ch
	want.Total = want.Observers.Total()
	if want.Names == nil {
		want.Names = []string{}
	}
	var got presence.Snapshot
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = getPresence(t, ts, ch)
		if got.Channel == want.Channel && got.Observers == want.Observers && got.Total == want.Total && slices.Equal(got.Names, want.Names) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence %+v, want %+v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pollLoop long-polls path with client, re-polling at once after each
// answer (as a jQuery loop does), until the returned stop is called.
func pollLoop(t *testing.T, client *http.Client, rawURL string) (stop func(), polls func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	count := make(chan int, 1)
	count <- 0
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
			resp, err := client.Do(req)
			if err != nil {
				continue
			}
			resp.Body.Close()
			count <- <-count + 1
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop, func() int { n := <-count; count <- n; return n }
}

// TestPresenceAllTransports: observers of every transport are counted once
// each, with the names they chose, and leave the counts when they go: a
// stream at once, a long-poll client after the grace.
func TestPresenceAllTransports(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{Grace: 2 * time.Second})

	sse := openSSE(t, ts.URL+"/channels/news/events?name=alice")
	bob := dialWS(t, ts, "/channels/news/ws?name=bob")
	anon := dialWS(t, ts, "/channels/news/ws")
	jar, _ := cookiejar.New(nil)
	stopPolls, polls := pollLoop(t, &http.Client{Jar: jar}, ts.URL+"/channels/news/status?name=carol&timeout=0.05")
	want := presence.Snapshot{Observers: presence.Counts{Poll: 1, SSE: 1, WS: 2}, Names: []string{"alice", "bob", "carol"}}
	waitPresence(t, ts, "news", want)
	// Many polls later, some between two polls, the poll client is still one.
	for start := polls(); polls() < start+10; {
		if got := getPresence(t, ts, "news"); got.Observers != want.Observers {
			t.Fatalf("while polling: %+v", got)
		}
	}
	if other := getPresence(t, ts, "other"); other.Total != 0 || len(other.Names) != 0 {
		t.Fatalf("another channel: %+v", other)
	}

	sse.Close()
	waitPresence(t, ts, "news", presence.Snapshot{Observers: presence.Counts{Poll: 1, WS: 2}, Names: []string{"bob", "carol"}})
	bob.Close()
	anon.Close()
	waitPresence(t, ts, "news", presence.Snapshot{Observers: presence.Counts{Poll: 1}, Names: []string{"carol"}})
	stopPolls()
	if got := getPresence(t, ts, "news"); got.Observers.Poll != 1 {
		t.Fatalf("the poll client left the counts at once, not after the grace: %+v", got)
	}
	waitPresence(t, ts, "news", presence.Snapshot{})
}

// TestPresenceSeedRoutes: the seed's /status, /ws and /events count on channel default.
func TestPresenceSeedRoutes(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{})
	openSSE(t, ts.URL+"/events?name=s")
	dialWS(t, ts, "/status?name=w") // the classic WebSocket demo's URL
	ch := pollAsync(t.Context(), http.DefaultClient, ts.URL+"/status?name=p")
	waitPresence(t, ts, "default", presence.Snapshot{Observers: presence.Counts{Poll: 1, SSE: 1, WS: 1}, Names: []string{"p", "s", "w"}})
	ts.Publish(t, "default", "wake the poll")
	await(t, ch, 5*time.Second)
}

// TestPresenceClientCookie: a long-poll answer gives a client without one
// its presence cookie, after the cursor cookie; a client with one keeps it.
func TestPresenceClientCookie(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{})
	ts.Publish(t, "c", "one")
	resp, _ := pollNow(t, ts, "/channels/c/status?since=0")
	cookies := resp.Header.Values("Set-Cookie")
	if len(cookies) != 2 || !strings.HasPrefix(cookies[0], "announce_c=1; Path=/") || !strings.HasPrefix(cookies[1], "announce-client=") {
		t.Fatalf("Set-Cookie %q, want the cursor, then announce-client", cookies)
	}
	client := strings.SplitN(cookies[1], ";", 2)[0]
	resp, _ = pollNow(t, ts, "/channels/c/status?since=0", "Cookie", client)
	if cookies := resp.Header.Values("Set-Cookie"); len(cookies) != 1 {
		t.Fatalf("a client with its cookie got %q", cookies)
	}
	// The first poll had no cookie (a fingerprint ID), the second its
	// cookie with that fingerprint as alias: one client, not two.
	if got := getPresence(t, ts, "c"); got.Observers.Poll != 1 {
		t.Fatalf("presence %+v, want one poll client", got)
	}
}

// TestPresenceCookieLeavesChannelClientItsCursor: the channel named
// "client" has the cursor cookie announce_client, which the presence cookie
// must not overwrite in a browser's cookie jar: a poll whose cookie cursor
// is behind answers at once.
func TestPresenceCookieLeavesChannelClientItsCursor(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	ts.Publish(t, "client", "one")
	resp, body := await(t, pollAsync(t.Context(), browser, ts.URL+"/channels/client/status?since=0"), 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	m := ts.Publish(t, "client", "two")
	resp, body = await(t, pollAsync(t.Context(), browser, ts.URL+"/channels/client/status?timeout=30"), 5*time.Second)
	assertStatus(t, resp, body, http.StatusOK)
	if got := decodeMessage(t, body); got.ID != m.ID {
		t.Fatalf("polled %+v with the cursor cookie at 1, want message %d", got, m.ID)
	}
}

func TestPresenceNameValidation(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{})
	for _, path := range []string{"/channels/news/events", "/channels/news/ws", "/channels/news/status", "/events", "/status", "/ws"} {
		for _, name := range []string{"", strings.Repeat("a", 65), "a\x01b", "tab\there", "\u200b", "\xff"} {
			resp, body := ts.get(t, path+"?name="+url.QueryEscape(name))
			assertError(t, resp, body, http.StatusBadRequest)
		}
	}
	long := strings.Repeat("é", 64) // 64 characters, 128 bytes: fine
	openSSE(t, ts.URL+"/channels/news/events?name="+url.QueryEscape(long))
	dialWS(t, ts, "/channels/news/ws?name="+url.QueryEscape("Zoë 🙂 (tab 2)"))
	waitPresence(t, ts, "news", presence.Snapshot{Observers: presence.Counts{SSE: 1, WS: 1}, Names: []string{"Zoë 🙂 (tab 2)", long}})
}

// TestPresencePrivateAndTokenNames: presence of a private channel needs a
// token like observing does; a token naming its holder names the observer.
func TestPresencePrivateAndTokenNames(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{}, func(c *api.Config) {
		c.PublishKey = tkKey
		c.TokenSecret = tkSecret
	})
	signer, err := token.NewSigner([]byte(tkSecret), nil)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(ch, name string) string {
		tok, _, err := signer.Mint(token.Grant{Channel: ch, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	alice := mint("private-room", "alice")
	openSSE(t, ts.URL+"/channels/private-room/events?token="+alice)
	dialWS(t, ts, "/channels/private-room/ws?name=alice&token="+alice) // repeating the name is fine
	// A token name over 64 characters is cut to 64.
	long := mint("private-room", strings.Repeat("x", 100))
	openSSE(t, ts.URL+"/channels/private-room/events?token="+long)

	resp, body := ts.get(t, "/channels/private-room/presence")
	assertError(t, resp, body, http.StatusUnauthorized)
	resp, body = ts.get(t, "/channels/private-room/presence?token="+mint("private-other", ""))
	assertError(t, resp, body, http.StatusForbidden)
	resp, body = ts.get(t, "/channels/private-room/events?name=mallory&token="+alice)
	assertError(t, resp, body, http.StatusForbidden) // a named token's holder cannot pose as another

	want := presence.Snapshot{Channel: "private-room", Observers: presence.Counts{SSE: 2, WS: 1}, Total: 3,
		Names: []string{"alice", strings.Repeat("x", 64)}}
	testenv.WaitFor(t, 10*time.Second, "private presence", func() bool {
		got := getPresence(t, ts, "private-room", "Authorization", "Bearer "+mint("private-room", ""))
		return got.Observers == want.Observers && slices.Equal(got.Names, want.Names)
	})
	if got := getPresence(t, ts, "private-room", "Authorization", "Bearer "+tkKey); got.Total != 3 {
		t.Fatalf("with the publish key: %+v", got)
	}

	// On a public channel a named token names its holder too.
	openSSE(t, ts.URL+"/channels/news/events?token="+mint("news", "dave"))
	waitPresence(t, ts, "news", presence.Snapshot{Observers: presence.Counts{SSE: 1}, Names: []string{"dave"}})
}

// presenceEvent is a join or leave as observers receive it.
type presenceEvent struct {
	Event     string          `json:"event"`
	Channel   string          `json:"channel"`
	Name      string          `json:"name"`
	Transport string          `json:"transport"`
	Observers presence.Counts `json:"observers"`
	Total     int             `json:"total"`
}

// nextSSEPresence reads the next SSE block and checks it is a presence event
// without an id (so it moves no cursor).
func nextSSEPresence(t *testing.T, s *sseStream) presenceEvent {
	t.Helper()
	e := s.next(t)
	if e.Event != "presence" || e.HasID {
		t.Fatalf("SSE block %+v, want an event: presence without id", e)
	}
	var p presenceEvent
	if err := json.Unmarshal([]byte(e.Data), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func nextWSPresence(t *testing.T, conn interface {
	ReadMessage() (int, []byte, error)
	SetReadDeadline(time.Time) error
}) presenceEvent {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wsReadTimeout))
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(data, &raw)
	if _, ok := raw["id"]; ok {
		t.Fatalf("presence frame %s has an id", data)
	}
	var p presenceEvent
	if err := json.Unmarshal(data, &p); err != nil || (p.Event != "join" && p.Event != "leave") {
		t.Fatalf("frame %s, want a presence event", data)
	}
	return p
}

// TestPresenceEvents: with presence events on, SSE and WebSocket observers
// hear joins and leaves (their own join too); long-polls never do; message
// ids, SSE ids and cursors are untouched.
func TestPresenceEvents(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{Events: true, Grace: 200 * time.Millisecond})
	ts.Publish(t, "news", "one")

	sse := openSSE(t, ts.URL+"/channels/news/events?name=sam")
	sse.expectIDs(t, 1)
	if p := nextSSEPresence(t, sse); p != (presenceEvent{"join", "news", "sam", "sse", presence.Counts{SSE: 1}, 1}) {
		t.Fatalf("own join: %+v", p)
	}
	// A long-poll waiting on the current id: presence must not wake it.
	poll := pollAsync(t.Context(), http.DefaultClient, ts.URL+"/channels/news/status?since=1&name=pat")
	if p := nextSSEPresence(t, sse); p != (presenceEvent{"join", "news", "pat", "poll", presence.Counts{Poll: 1, SSE: 1}, 2}) {
		t.Fatalf("poll join: %+v", p)
	}

	ws := dialWS(t, ts, "/channels/news/ws?name=wendy")
	expectWSIDs(t, ws, 1)
	if p := nextWSPresence(t, ws); p != (presenceEvent{"join", "news", "wendy", "ws", presence.Counts{Poll: 1, SSE: 1, WS: 1}, 3}) {
		t.Fatalf("WebSocket's own join: %+v", p)
	}
	if p := nextSSEPresence(t, sse); p.Event != "join" || p.Name != "wendy" || p.Total != 3 {
		t.Fatalf("SSE heard %+v, want wendy's join", p)
	}
	ws.Close()
	if p := nextSSEPresence(t, sse); p != (presenceEvent{"leave", "news", "wendy", "ws", presence.Counts{Poll: 1, SSE: 1}, 2}) {
		t.Fatalf("leave: %+v", p)
	}
	select {
	case r := <-poll:
		t.Fatalf("a presence event answered a long-poll: %s", r.body)
	case <-time.After(100 * time.Millisecond):
	}

	m := ts.Publish(t, "news", "two")
	if m.ID != 2 {
		t.Fatalf("the second message has id %d: presence events took ids", m.ID)
	}
	// Then the message, and, once its grace passed, the poll client's
	// leave (a stalled test could read both at once, in either order).
	var gotMessage, gotLeave bool
	for !gotMessage || !gotLeave {
		switch e := sse.next(t); e.Event {
		case "message":
			if m, err := e.message(); err != nil || m.ID != 2 || gotMessage {
				t.Fatalf("message block %+v: %v", e, err)
			}
			gotMessage = true
		case "presence":
			var p presenceEvent
			_ = json.Unmarshal([]byte(e.Data), &p)
			if e.HasID || p.Event != "leave" || p.Transport != "poll" || p.Total != 1 || gotLeave {
				t.Fatalf("presence block %+v, want the poll client's leave", e)
			}
			gotLeave = true
		default:
			t.Fatalf("block %+v", e)
		}
	}
	resp, body := await(t, poll, 5*time.Second)
	if got := decodeMessage(t, body); got.ID != 2 {
		t.Fatalf("long-poll answered %s", body)
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "announce_news=2;") {
		t.Fatalf("cursor cookie %q", sc)
	}
	// The log holds messages only.
	resp, body = ts.get(t, "/channels/news/messages?since=0")
	assertStatus(t, resp, body, http.StatusOK)
	var log []map[string]any
	if err := json.Unmarshal(body, &log); err != nil || len(log) != 2 {
		t.Fatalf("log %s", body)
	}
	// A reconnecting EventSource resumes from the last message id: nothing missing, nothing twice.
	again := openSSE(t, ts.URL+"/channels/news/events", "Last-Event-ID", "1")
	again.expectIDs(t, 2)
}

// TestPresenceEventsOffByDefault: without the option observers get messages only.
func TestPresenceEventsOffByDefault(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{})
	sse := openSSE(t, ts.URL+"/channels/news/events?name=sam")
	ws := dialWS(t, ts, "/channels/news/ws?name=wendy")
	waitPresence(t, ts, "news", presence.Snapshot{Observers: presence.Counts{SSE: 1, WS: 1}, Names: []string{"sam", "wendy"}})
	ws.Close()
	waitPresence(t, ts, "news", presence.Snapshot{Observers: presence.Counts{SSE: 1}, Names: []string{"sam"}})
	ts.Publish(t, "news", "only messages")
	if m := sse.nextMessage(t); m.ID != 1 {
		t.Fatalf("got %+v", m)
	}
}

// TestPresenceDefaultTracker: a server built without a tracker still
// answers presence, for this node.
func TestPresenceDefaultTracker(t *testing.T) {
	ts := newTestServer(t)
	openSSE(t, ts.URL+"/channels/news/events?name=x")
	waitPresence(t, ts, "news", presence.Snapshot{Observers: presence.Counts{SSE: 1}, Names: []string{"x"}})
	resp, body := ts.get(t, "/channels/bad%2Fname/presence")
	assertError(t, resp, body, http.StatusBadRequest)
	if v := scrapeMetric(t, ts, "announce_presence_sessions"); v != 1 {
		t.Fatalf("announce_presence_sessions %v", v)
	}
}
