package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/api"
)

// openServer has no publish key (anyone publishes) but a known token secret.
func openServer(t *testing.T) *testServer {
	return newTestServer(t, func(c *api.Config) { c.TokenSecret = tkSecret })
}

// TestOpenServerRefusesBadTokens: without a publish key anyone publishes,
// but a token that is presented must be valid and for the channel, on
// every HTTP publish route (POST .../messages, a scheduled publish, the
// seed's POST /chat, the schedule routes) as Authorization: Bearer or ?token=.
func TestOpenServerRefusesBadTokens(t *testing.T) {
	ts := openServer(t)
	hour := time.Now().Add(time.Hour)
	forged := tkMint(t, "another secret entirely", "open", hour, true)
	expired := tkMint(t, tkSecret, "open", time.Now().Add(-time.Minute), true)
	otherChannel := tkMint(t, tkSecret, "elsewhere", hour, true)
	readOnly := tkMint(t, tkSecret, "open", hour, false)
	seedForged := tkMint(t, "another secret entirely", "default", hour, true)

	type publish struct {
		name, path, ctype, body string
		header                  []string
		want                    int
	}
	cases := []publish{
		{"forged bearer", "/channels/open/messages", "text/plain", "x", []string{"Authorization", "Bearer " + forged}, http.StatusUnauthorized},
		{"expired bearer", "/channels/open/messages", "text/plain", "x", []string{"Authorization", "Bearer " + expired}, http.StatusUnauthorized},
		{"forged ?token=", "/channels/open/messages?token=" + forged, "text/plain", "x", nil, http.StatusUnauthorized},
		{"garbage ?token=", "/channels/open/messages?token=garbage", "text/plain", "x", nil, http.StatusUnauthorized},
		{"valid bearer, forged ?token=", "/channels/open/messages?token=" + forged, "text/plain", "x", []string{"Authorization", "Bearer " + readOnly}, http.StatusUnauthorized},
		{"another channel's token", "/channels/open/messages", "text/plain", "x", []string{"Authorization", "Bearer " + otherChannel}, http.StatusForbidden},
		{"forged, scheduled", "/channels/open/messages", "application/json", `{"content":"later","at":"1h"}`, []string{"Authorization", "Bearer " + forged}, http.StatusUnauthorized},
		{"forged, seed /chat", "/chat", "application/x-www-form-urlencoded", "content=x", []string{"Authorization", "Bearer " + seedForged}, http.StatusUnauthorized},
		{"forged ?token=, seed /chat", "/chat?token=" + seedForged, "application/x-www-form-urlencoded", "content=x", nil, http.StatusUnauthorized},
		// What an open server accepts: no credential, a valid token for the
		// channel (no grant needed), a bearer value that is no token.
		{"none", "/channels/open/messages", "text/plain", "x", nil, http.StatusCreated},
		{"valid read-only token", "/channels/open/messages?token=" + readOnly, "text/plain", "x", []string{"Authorization", "Bearer " + readOnly}, http.StatusCreated},
		{"a key the server has not", "/channels/open/messages", "text/plain", "x", []string{"Authorization", "Bearer some-key"}, http.StatusCreated},
		{"none, seed /chat", "/chat", "application/x-www-form-urlencoded", "content=x", nil, http.StatusCreated},
	}
	published := 0
	for _, c := range cases {
		resp, b := ts.post(t, c.path, c.ctype, []byte(c.body), c.header...)
		if c.want == http.StatusCreated {
			assertStatus(t, resp, b, c.want)
			if c.path != "/chat" {
				published++
			}
			continue
		}
		assertError(t, resp, b, c.want)
		if c.want == http.StatusUnauthorized && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("%s: WWW-Authenticate %q, want error=\"invalid_token\"", c.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Only the accepted publishes were stored, and nothing was scheduled.
	resp, b := ts.get(t, "/channels/open/messages?since=0")
	assertStatus(t, resp, b, http.StatusOK)
	var log []json.RawMessage
	if err := json.Unmarshal(b, &log); err != nil {
		t.Fatalf("log %s: %v", b, err)
	}
	if len(log) != published {
		t.Fatalf("%d messages stored, want %d: %s", len(log), published, b)
	}
	resp, b = ts.getWith(t, "/channels/open/scheduled", "Authorization", "Bearer "+forged)
	assertError(t, resp, b, http.StatusUnauthorized)
	resp, b = ts.getWith(t, "/channels/open/scheduled")
	assertStatus(t, resp, b, http.StatusOK)
	if strings.Contains(string(b), "later") {
		t.Fatalf("a publish with a forged token was scheduled: %s", b)
	}
}

// TestOpenServerRefusesBadFrameTokens: a WebSocket publish frame on an open
// server may carry no key, or a key that is no token; a token in its key
// must be valid and for the channel.
func TestOpenServerRefusesBadFrameTokens(t *testing.T) {
	ts := openServer(t)
	hour := time.Now().Add(time.Hour)
	conn, resp, b := tkDial(t, tkWSURL(ts.URL)+"/channels/open/ws")
	if conn == nil {
		t.Fatalf("refused: %d %s", resp.StatusCode, b)
	}
	for name, key := range map[string]string{
		"forged":          tkMint(t, "another secret entirely", "open", hour, true),
		"expired":         tkMint(t, tkSecret, "open", time.Now().Add(-time.Minute), true),
		"another channel": tkMint(t, tkSecret, "elsewhere", hour, true),
	} {
		_ = conn.WriteJSON(map[string]string{"type": "publish", "content": name, "key": key})
		if m := tkReadWS(t, conn); m["event"] != "error" {
			t.Fatalf("a frame with a %s token: %v, want an error frame", name, m)
		}
	}
	_ = conn.WriteJSON(map[string]string{"type": "publish", "content": "no key"})
	tkExpectAckAndEcho(t, conn, "no key")
	_ = conn.WriteJSON(map[string]string{"type": "publish", "content": "valid", "key": tkMint(t, tkSecret, "open", hour, false)})
	tkExpectAckAndEcho(t, conn, "valid")
	_ = conn.WriteJSON(map[string]string{"type": "publish", "content": "plain key", "key": "some-key"})
	tkExpectAckAndEcho(t, conn, "plain key")
	// A forged token refuses the connection itself (the observe rule).
	if c, resp, _ := tkDial(t, tkWSURL(ts.URL)+"/channels/open/ws?token="+tkMint(t, "forger", "open", hour, true)); c != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a WebSocket with a forged ?token= was not refused with 401")
	}
}
