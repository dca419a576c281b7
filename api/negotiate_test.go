package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// TestNegotiateStatus: .../status is a WebSocket for an upgrade, an event
// stream for Accept: text/event-stream and a long-poll for anything else, on
// a named channel and on the seed's /status alike.
func TestNegotiateStatus(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, c := range []struct{ path, channel string }{
		{"/channels/neg/status", "neg"},
		{"/status", "default"},
	} {
		t.Run(c.channel, func(t *testing.T) {
			m := ts.Publish(t, c.channel, "negotiated "+c.channel)

			ws := dialWS(t, ts, c.path)
			if f := readWSMessage(t, ws); f.ID != m.ID || f.Channel != c.channel || *f.Content != m.Content {
				t.Errorf("WebSocket on %s: %s, want %+v", c.path, f.Raw, m)
			}

			sse := openSSE(t, ts.URL+c.path)
			if first, err := sse.Next(); err != nil || first.Retry != "3000" {
				t.Errorf("SSE on %s: first block %+v (%v), want retry: 3000", c.path, first, err)
			}
			if got := sse.nextMessage(t); got.ID != m.ID || got.Channel != c.channel {
				t.Errorf("SSE on %s: %+v, want %+v", c.path, got, m)
			}

			for _, accept := range []string{"", "application/json", "*/*", "text/html,application/xhtml+xml"} {
				req, err := http.NewRequest(http.MethodGet, ts.URL+c.path+"?since=0", nil)
				if err != nil {
					t.Fatal(err)
				}
				if accept != "" {
					req.Header.Set("Accept", accept)
				}
				resp, body := do(t, nil, req)
				assertStatus(t, resp, body, http.StatusOK)
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("long-poll on %s (Accept %q): Content-Type %q, want JSON", c.path, accept, ct)
				}
				if got := decodeMessage(t, body); got.ID != m.ID || got.Content != m.Content {
					t.Errorf("long-poll on %s (Accept %q): %s, want %+v", c.path, accept, body, m)
				}
			}
		})
	}
}

// TestNegotiateSeedWebSocketClient is the classic WebSocket demo, unchanged:
// new WebSocket("ws://host/status"), $.post("chat", {content: ...}), and
// JSON.parse(evt.data).content.
func TestNegotiateSeedWebSocketClient(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ws := dialWS(t, ts, "/status")
	for _, content := range []string{"Server maintenance at 22:00", "Ünïcödé & <html> \"quotes\""} {
		resp, body := ts.post(t, "/chat", "application/x-www-form-urlencoded; charset=UTF-8",
			[]byte(url.Values{"content": {content}}.Encode()), "X-Requested-With", "XMLHttpRequest")
		assertStatus(t, resp, body, http.StatusCreated)
		_ = ws.SetReadDeadline(time.Now().Add(wsReadTimeout))
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var evt struct {
			Content string `json:"content"`
		}
		if err := json.Unmarshal(data, &evt); err != nil || evt.Content != content {
			t.Fatalf("JSON.parse(evt.data).content of %s = %q (%v), want %q", data, evt.Content, err, content)
		}
	}
}

// TestNegotiatedObserversCounted: channel info and /metrics count the
// observers per transport, whichever route they came by.
func TestNegotiatedObserversCounted(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	openSSE(t, ts.URL+"/channels/x/status")
	dialWS(t, ts, "/channels/x/ws")
	dialWS(t, ts, "/channels/x/status")
	dialWS(t, ts, "/channels/other/ws") // another channel: not counted on x

	resp, body := ts.get(t, "/channels/x")
	assertStatus(t, resp, body, http.StatusOK)
	var info struct {
		Channel   string           `json:"channel"`
		Current   announce.Message `json:"current"`
		Observers map[string]int   `json:"observers"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("channel info %s: %v", body, err)
	}
	want := map[string]int{"poll": 0, "sse": 1, "ws": 2}
	if info.Channel != "x" || info.Current.ID != 0 || len(info.Observers) != len(want) {
		t.Fatalf("channel info %s, want channel x, nothing published, observers %v", body, want)
	}
	for k, v := range want {
		if info.Observers[k] != v {
			t.Errorf("channel info observers %v, want %v", info.Observers, want)
			break
		}
	}
	for transport, n := range map[string]float64{"ws": 3, "sse": 1, "poll": 0} {
		if got := scrapeMetric(t, ts, `announce_observers{transport="`+transport+`"}`); got != n {
			t.Errorf(`announce_observers{transport=%q} = %v, want %v`, transport, got, n)
		}
	}
}

// TestNegotiateSeedStreamRoutes: the seed's /ws and /events are the default
// channel's WebSocket and event stream.
func TestNegotiateSeedStreamRoutes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "default", "on default")
	ts.Publish(t, "elsewhere", "not on default")

	ws := dialWS(t, ts, "/ws")
	if f := readWSMessage(t, ws); f.ID != m.ID || f.Channel != "default" {
		t.Fatalf("/ws: %s, want %+v", f.Raw, m)
	}
	sse := openSSE(t, ts.URL+"/events")
	if got := sse.nextMessage(t); got.ID != m.ID || got.Channel != "default" {
		t.Fatalf("/events: %+v, want %+v", got, m)
	}
	resp, body := ts.post(t, "/chat", "application/x-www-form-urlencoded", []byte("content=next"))
	assertStatus(t, resp, body, http.StatusCreated)
	next := decodeMessage(t, body)
	expectWSIDs(t, ws, next.ID)
	sse.expectIDs(t, next.ID)
}
