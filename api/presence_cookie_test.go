package api_test

import (
	"cmp"
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/webhook"
)

// cookieGrace is the presence grace of these tests: long enough that a
// client's next poll, a few milliseconds later even under -race on a
// loaded machine, is well within it.
const cookieGrace = 2 * time.Second

// clientFrom is an HTTP client whose connections leave from source (an
// address of the loopback network, 127.0.0.0/8), keeping no cookies.
func clientFrom(t *testing.T, source string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// pollVia makes one long-poll that answers at once and returns its
// announce-client cookie, if the answer set one.
func pollVia(t *testing.T, client *http.Client, rawURL string, header ...string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assertStatus(t, resp, body, http.StatusOK)
	for _, c := range resp.Cookies() {
		if c.Name == "announce-client" {
			return c.Value
		}
	}
	return ""
}

// watchUntilGone reads the channel's presence until it is empty, failing
// when it ever shows more than want poll observers, or never showed want.
func watchUntilGone(t *testing.T, ts *testServer, ch string, want int) presence.Snapshot {
	t.Helper()
	var seen presence.Snapshot
	deadline := time.Now().Add(20 * cookieGrace)
	for {
		got := getPresence(t, ts, ch)
		if got.Observers.Poll > want || got.Total > want {
			t.Fatalf("presence %+v: more than %d poll observer(s)", got, want)
		}
		if got.Total == 0 {
			break
		}
		seen = got
		if time.Now().After(deadline) {
			t.Fatalf("presence still %+v long after the grace", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if seen.Observers.Poll != want {
		t.Fatalf("presence never showed %d poll observer(s)", want)
	}
	return seen
}

// TestPresencePollCookieIsOneSession: a long-poll client whose next poll
// presents the cookie its first answer set is one session, though that poll
// has another User-Agent, adds ?name= or comes from another address:
// presence shows one observer for the whole grace, and webhooks one session.
func TestPresencePollCookieIsOneSession(t *testing.T) {
	rc := newHookReceiver(t)
	d, err := webhook.New(webhook.Config{URLs: []string{rc.srv.URL + "/hook"}, Secret: hookSecret, Node: "node-a", Backoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	ts, _ := presenceServer(t, presence.Config{Node: "node-a", Grace: cookieGrace, Sinks: []announce.Events{d}})

	for _, tc := range []struct {
		trigger, query, agent, source, name string
	}{
		{trigger: "agent", agent: "Mozilla/5.0 (after an update)", source: "127.0.0.1"},
		{trigger: "name", query: "&name=carl", source: "127.0.0.1", name: "carl"},
		{trigger: "address", source: "127.0.0.2"},
		{trigger: "all", query: "&name=dora", agent: "other/2", source: "127.0.0.3", name: "dora"},
	} {
		t.Run(tc.trigger, func(t *testing.T) {
			t.Parallel()
			ch := "s-" + tc.trigger
			ts.Publish(t, ch, "one")
			base := ts.URL + "/channels/" + ch + "/status"
			cookie := pollVia(t, clientFrom(t, "127.0.0.1"), base+"?since=0", "User-Agent", "poller/1")
			if cookie == "" {
				t.Fatal("the first answer set no announce-client cookie")
			}
			ts.Publish(t, ch, "two") // so the cookie cursor (1) answers the next poll at once
			agent := cmp.Or(tc.agent, "poller/1")
			again := pollVia(t, clientFrom(t, tc.source), base+"?timeout=30"+tc.query,
				"User-Agent", agent, "Cookie", "announce-client="+cookie+"; announce_"+ch+"=1")
			if again != "" {
				t.Fatalf("a client presenting its cookie was given another: %q", again)
			}
			seen := watchUntilGone(t, ts, ch, 1)
			if want := slices.DeleteFunc([]string{tc.name}, func(n string) bool { return n == "" }); !slices.Equal(seen.Names, want) {
				t.Fatalf("names %q, want %q", seen.Names, want)
			}
			rc.wait(t, "the session's disconnected", func(e webhook.Event) bool { return e.Channel == ch && e.Type == "disconnected" })
			var sessions []string
			for _, e := range rc.got() {
				if e.Channel == ch && e.Type != "published" {
					sessions = append(sessions, e.Type+" "+e.Session+" "+e.Name)
				}
			}
			if len(sessions) != 2 || !strings.HasPrefix(sessions[0], "connected ") || !strings.HasPrefix(sessions[1], "disconnected ") ||
				strings.Fields(sessions[0])[1] != strings.Fields(sessions[1])[1] {
				t.Fatalf("webhooks %q, want one session's connected and disconnected", sessions)
			}
			if last := sessions[1]; tc.name != "" && !strings.HasSuffix(last, " "+tc.name) {
				t.Fatalf("disconnected %q, want the session's new name %q", last, tc.name)
			}
		})
	}
}

// TestPresencePollFingerprints: clients that keep no cookies are told apart
// by address, User-Agent and name, and each is one session across polls.
func TestPresencePollFingerprints(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{Grace: time.Minute}) // none leaves during the test
	ts.Publish(t, "fp", "one")
	url := ts.URL + "/channels/fp/status?since=0"
	for range 3 { // polls of one client
		pollVia(t, clientFrom(t, "127.0.0.1"), url, "User-Agent", "curl/8")
	}
	pollVia(t, clientFrom(t, "127.0.0.2"), url, "User-Agent", "curl/8")
	pollVia(t, clientFrom(t, "127.0.0.1"), url, "User-Agent", "wget/1")
	pollVia(t, clientFrom(t, "127.0.0.1"), url+"&name=eve", "User-Agent", "curl/8")
	if got := getPresence(t, ts, "fp"); got.Observers.Poll != 4 {
		t.Fatalf("presence %+v, want 4 poll observers", got)
	}
}

// TestPresencePollRenameEvents: a name the client adds to a cookied poll
// renames its session: streaming observers hear a leave and a join, and
// nothing for polls that keep the name, or move to another address.
func TestPresencePollRenameEvents(t *testing.T) {
	ts, _ := presenceServer(t, presence.Config{Events: true, Grace: time.Minute}) // none leaves during the test
	ts.Publish(t, "rn", "one")
	sse := openSSE(t, ts.URL+"/channels/rn/events?name=sam")
	sse.expectIDs(t, 1)
	if p := nextSSEPresence(t, sse); p.Event != "join" || p.Name != "sam" {
		t.Fatalf("own join: %+v", p)
	}
	url := ts.URL + "/channels/rn/status?since=0"
	cookie := pollVia(t, clientFrom(t, "127.0.0.1"), url)
	if p := nextSSEPresence(t, sse); p != (presenceEvent{"join", "rn", "", "poll", presence.Counts{Poll: 1, SSE: 1}, 2}) {
		t.Fatalf("the poll client's join: %+v", p)
	}
	header := []string{"Cookie", "announce-client=" + cookie}
	pollVia(t, clientFrom(t, "127.0.0.2"), url, header...) // same name, another address: no event
	pollVia(t, clientFrom(t, "127.0.0.1"), url+"&name=carl", header...)
	if p := nextSSEPresence(t, sse); p != (presenceEvent{"leave", "rn", "", "poll", presence.Counts{SSE: 1}, 1}) {
		t.Fatalf("the rename's leave: %+v", p)
	}
	if p := nextSSEPresence(t, sse); p != (presenceEvent{"join", "rn", "carl", "poll", presence.Counts{Poll: 1, SSE: 1}, 2}) {
		t.Fatalf("the rename's join: %+v", p)
	}
	pollVia(t, clientFrom(t, "127.0.0.3"), url+"&name=carl", header...) // the same name again: no event
	// The next event is a newcomer's: the polls above made none.
	dialWS(t, ts, "/channels/rn/ws?name=wendy")
	if p := nextSSEPresence(t, sse); p.Event != "join" || p.Name != "wendy" || p.Total != 3 {
		t.Fatalf("after the polls %+v, want wendy's join (and nothing for the polls)", p)
	}
	if got := getPresence(t, ts, "rn"); !slices.Equal(got.Names, []string{"carl", "sam", "wendy"}) {
		t.Fatalf("names %q", got.Names)
	}
}
