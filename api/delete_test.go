package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
)

func request(t *testing.T, method, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// DELETE /channels/{ch} with the publish key removes messages, schedules
// and idempotency keys; SSE, WebSocket and long-poll observers are told
// and closed; the channel starts again at id 1.
func TestDeleteChannelTellsObserversAndForgetsEverything(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *api.Config) { c.PublishKey = "k" })
	auth := []string{"Authorization", "Bearer k"}
	base := ts.URL + "/channels/del"
	if resp, b := request(t, "POST", base+"/messages", `{"content":"one"}`, append(auth, "Idempotency-Key", "once")...); resp.StatusCode != 201 {
		t.Fatalf("publish: %d %s", resp.StatusCode, b)
	}
	if resp, b := request(t, "POST", base+"/messages", `{"content":"later","at":"1h"}`, auth...); resp.StatusCode != 202 {
		t.Fatalf("schedule: %d %s", resp.StatusCode, b)
	}
	sse := openSSE(t, base+"/events")
	if m := sse.nextMessage(t); m.Content != "one" {
		t.Fatalf("sse replay %q", m.Content)
	}
	ws := dialRawWS(t, ts, "/channels/del/ws")
	if op, p := ws.read(t); op != 0x1 || !strings.Contains(string(p), `"one"`) {
		t.Fatalf("ws replay %x %s", op, p)
	}
	poll := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/status?since=1")
		if err != nil {
			poll <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		poll <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	waitChannelObservers(t, ts, "del", 3)

	if resp, _ := request(t, "DELETE", base, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("DELETE without the key: %d, want 401", resp.StatusCode)
	}
	if resp, _ := request(t, "DELETE", base, "", "Authorization", "Bearer wrong"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("DELETE with a wrong key: %d, want 403", resp.StatusCode)
	}
	if resp, b := request(t, "DELETE", base, "", auth...); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, b)
	}

	events := sse.expectEnd(t)
	if len(events) == 0 || events[len(events)-1].Event != "deleted" {
		t.Fatalf("sse ended with %+v, want event: deleted last", events)
	}
	ws.expectEvent(t, "deleted")
	ws.expectClose(t, 1000)
	if got := <-poll; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"id":0`) {
		t.Fatalf("waiting long-poll answered %s, want 200 with the empty message (id 0)", got)
	}

	var info struct{ Current announce.Message }
	_, b := request(t, "GET", base, "")
	_ = json.Unmarshal([]byte(b), &info)
	if info.Current.ID != 0 {
		t.Fatalf("after DELETE the channel reads %s, want id 0", b)
	}
	if _, b := request(t, "GET", base+"/scheduled", "", auth...); strings.Contains(b, "later") {
		t.Fatalf("schedules survived DELETE: %s", b)
	}
	resp, b := request(t, "POST", base+"/messages", `{"content":"two"}`, append(auth, "Idempotency-Key", "once")...)
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replay") != "" || !strings.Contains(b, `"id":1`) {
		t.Fatalf("publish after DELETE: %d replay %q %s, want a new message with id 1", resp.StatusCode, resp.Header.Get("Idempotent-Replay"), b)
	}
}

func TestDeleteChannelNeedsAPublishKeyOnTheServer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.Publish(t, "open", "x")
	resp, b := request(t, "DELETE", ts.URL+"/channels/open", "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "--publish-key") {
		t.Fatalf("DELETE on an open server: %d %s, want 403 naming --publish-key", resp.StatusCode, b)
	}
	if c := currentID(t, ts, "open"); c != 1 {
		t.Fatalf("current id %d, want 1", c)
	}
}

// Past --max-channels a publish creating a channel answers 507 JSON, and
// the existing channels keep working; past --max-scheduled a schedule
// answers 429.
func TestMaxChannelsAndMaxScheduled(t *testing.T) {
	t.Parallel()
	ts := newTestServerHub(t, func(c *announce.Config) {
		c.Limits.MaxChannels, c.Limits.MaxScheduledTotal = 3, 2
	})
	for i := range 3 {
		ts.Publish(t, fmt.Sprint("ch-", i), "x")
	}
	resp, b := request(t, "POST", ts.URL+"/channels/ch-new/messages", `{"content":"x"}`)
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(b, `"error"`) {
		t.Fatalf("publish creating a 4th channel: %d %s, want 507 JSON", resp.StatusCode, b)
	}
	ts.Publish(t, "ch-0", "still works")
	for i := range 2 {
		if resp, b := request(t, "POST", ts.URL+fmt.Sprintf("/channels/ch-%d/messages", i), `{"content":"s","at":"1h"}`); resp.StatusCode != 202 {
			t.Fatalf("schedule %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if resp, b := request(t, "POST", ts.URL+"/channels/ch-2/messages", `{"content":"s","at":"1h"}`); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third schedule: %d %s, want 429", resp.StatusCode, b)
	}
}

// --channel-ttl deletes a channel idle that long, but not one observed.
func TestChannelTTLDeletesIdleUnobservedChannels(t *testing.T) {
	t.Parallel()
	ts := newTestServerHub(t, func(c *announce.Config) { c.Limits.ChannelTTL = 200 * time.Millisecond })
	ts.Publish(t, "watched", "w")
	s := openSSE(t, ts.URL+"/channels/watched/events")
	s.nextMessage(t)
	ts.Publish(t, "idle", "i")
	testenv.WaitFor(t, 30*time.Second, "the idle channel deleted", func() bool { return readID(t, ts, "idle") == 0 })
	if id := readID(t, ts, "watched"); id != 1 {
		t.Fatalf("the observed channel reads id %d, want 1", id)
	}
}

func readID(t *testing.T, ts *testServer, channel string) uint64 {
	t.Helper()
	ch, err := ts.Hub.Read(t.Context(), channel)
	if err != nil {
		t.Fatal(err)
	}
	return ch.Current().ID
}

func waitChannelObservers(t *testing.T, ts *testServer, channel string, n int) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "observers", func() bool {
		ch, err := ts.Hub.Read(t.Context(), channel)
		if err != nil {
			return false
		}
		total := 0
		for _, c := range ch.Counts() {
			total += c
		}
		return total == n
	})
}
