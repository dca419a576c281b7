package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/testenv"
)

// HTTP/2 streams cannot be hijacked: an event stream's session writes
// through the ResponseWriter while its handler waits, and a long-poll
// waits the ordinary way. (Its endings: sse_endings_test.go.) These tests hold that path
// to the guarantees the hijacked HTTP/1.1 path gives, over real TLS + h2.

// h2Server is an API behind httptest's TLS server with HTTP/2 on, and a
// client that speaks h2 to it.
type h2Server struct {
	URL    string
	Hub    *announce.Hub
	API    *api.Server
	Client *http.Client
}

func newH2Server(t *testing.T, hubOpt func(*announce.Config), opts ...func(*api.Config)) *h2Server {
	t.Helper()
	hub, store, s := newHubAPI(t, hubOpt, opts...)
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener = s.Listener(hs.Listener)
	hs.EnableHTTP2 = true
	hs.StartTLS()
	closeAtCleanup(t, hub, store, s, hs)
	return &h2Server{URL: hs.URL, Hub: hub, API: s, Client: hs.Client()}
}

// get sends a GET over h2 and checks the protocol.
func (h *h2Server) get(t *testing.T, ctx context.Context, path string, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("GET %s answered over %s, want HTTP/2", path, resp.Proto)
	}
	return resp
}

// publish posts content over h2 and returns the stored message.
func (h *h2Server) publish(t *testing.T, channel, content string) announce.Message {
	t.Helper()
	resp, err := h.Client.Post(h.URL+"/channels/"+channel+"/messages", "text/plain", strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || resp.ProtoMajor != 2 {
		t.Fatalf("publish over %s: %d %s", resp.Proto, resp.StatusCode, body)
	}
	var m announce.Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// nextEvent reads the next SSE event, failing after 10s.
func nextEvent(t *testing.T, r *client.SSEReader) client.SSEEvent {
	t.Helper()
	type result struct {
		ev  client.SSEEvent
		err error
	}
	got := make(chan result, 1)
	go func() { ev, err := r.Next(); got <- result{ev, err} }()
	select {
	case res := <-got:
		if res.err != nil {
			t.Fatalf("reading the stream: %v", res.err)
		}
		return res.ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return client.SSEEvent{}
	}
}

func TestH2SSEReplayOrderAndResume(t *testing.T) {
	h := newH2Server(t, nil)
	for i := 1; i <= 3; i++ {
		h.publish(t, "h2", fmt.Sprintf("old %d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := h.get(t, ctx, "/channels/h2/events", "Last-Event-ID", "1")
	defer resp.Body.Close()
	r := client.NewSSEReader(resp.Body)
	for _, want := range []string{"old 2", "old 3"} {
		if ev := nextEvent(t, r); !strings.Contains(ev.Data, want) {
			t.Fatalf("replay event %+v, want %q", ev, want)
		}
	}
	waitObservers(t, h.Hub, announce.SSE, 1)
	for i := 1; i <= 50; i++ {
		m := h.publish(t, "h2", fmt.Sprintf("live %d", i))
		ev := nextEvent(t, r)
		if ev.ID != fmt.Sprint(m.ID) || !strings.Contains(ev.Data, fmt.Sprintf(`"live %d"`, i)) {
			t.Fatalf("live event %+v, want id %d live %d", ev, m.ID, i)
		}
	}
	cancel()
	waitObservers(t, h.Hub, announce.SSE, 0) // the stream's end unregisters it
}

func TestH2LongPollWaitsAndTimesOut(t *testing.T) {
	h := newH2Server(t, nil, func(c *api.Config) { c.PollTimeout = 2 * time.Second })
	m := h.publish(t, "lp", "first")
	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/channels/lp/status?since=%d", h.URL, m.ID), nil)
		resp, err := h.Client.Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- resp.Proto + " " + string(b)
	}()
	waitObservers(t, h.Hub, announce.Poll, 1)
	h.publish(t, "lp", "second")
	select {
	case s := <-got:
		if !strings.HasPrefix(s, "HTTP/2.0 ") || !strings.Contains(s, "second") {
			t.Fatalf("long-poll answered %q, want the second message over HTTP/2", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll was not answered")
	}
	// Nothing new: the poll waits its timeout and answers the current message.
	start := time.Now()
	resp := h.get(t, context.Background(), fmt.Sprintf("/channels/lp/status?since=%d", m.ID+1))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if took := time.Since(start); took < 2*time.Second || !strings.Contains(string(b), "second") {
		t.Fatalf("idle long-poll answered %q after %v, want the current message after the 2s timeout", b, took)
	}
	waitObservers(t, h.Hub, announce.Poll, 0)

	// The log over h2: what came after a cursor, and a wait for the next.
	resp = h.get(t, context.Background(), fmt.Sprintf("/channels/lp/messages?since=%d", m.ID))
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "second") || strings.Contains(string(b), "first") {
		t.Fatalf("the log after #%d over h2: %s", m.ID, b)
	}
	logged := make(chan string, 1)
	go func() {
		resp, err := h.Client.Get(fmt.Sprintf("%s/channels/lp/messages?since=%d&wait=10", h.URL, m.ID+1))
		if err != nil {
			logged <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		logged <- string(b)
	}()
	waitObservers(t, h.Hub, announce.Poll, 1)
	h.publish(t, "lp", "third")
	select {
	case s := <-logged:
		if !strings.Contains(s, "third") {
			t.Fatalf("the waiting log answered %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting log was not answered")
	}
}

func TestH2SSETokenExpiresAndShutdownEnds(t *testing.T) {
	h := newH2Server(t, nil, func(c *api.Config) { c.PublishKey = tkKey; c.TokenSecret = tkSecret })
	exp := tkSoon()
	resp := h.get(t, context.Background(), "/channels/private-h2/events?token="+tkMint(t, tkSecret, "private-h2", exp, false))
	defer resp.Body.Close()
	r := client.NewSSEReader(resp.Body)
	if ev := nextEvent(t, r); ev.Type != "error" || !strings.Contains(ev.Data, "token expired") {
		t.Fatalf("at expiry got %+v, want the token-expired error event", ev)
	}
	if time.Now().Before(exp) {
		t.Errorf("stream ended %v before the token expired", time.Until(exp))
	}

	open := h.get(t, context.Background(), "/channels/public/events")
	defer open.Body.Close()
	waitObservers(t, h.Hub, announce.SSE, 1)
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, open.Body); ended <- err }()
	shutdownAPI(t, h.API)
	select {
	case err := <-ended:
		if err != nil && !errors.Is(err, io.EOF) {
			t.Logf("stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not end the HTTP/2 stream")
	}
	waitObservers(t, h.Hub, announce.SSE, 0)
}

func TestH2PresenceCountsStreams(t *testing.T) {
	h := newH2Server(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	resp := h.get(t, ctx, "/channels/pres/events")
	defer resp.Body.Close()
	count := func() float64 {
		r := h.get(t, context.Background(), "/channels/pres/presence")
		defer r.Body.Close()
		var p struct {
			Total float64 `json:"total"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		return p.Total
	}
	testenv.WaitFor(t, 10*time.Second, "one present observer", func() bool { return count() == 1 })
	cancel()
	testenv.WaitFor(t, 10*time.Second, "nobody present", func() bool { return count() == 0 })
}

// A WebSocket handshake over HTTP/2 is refused (RFC 8441 is off): browsers
// open an HTTP/1.1 connection for it.
func TestH2WebSocketNeedsHTTP11(t *testing.T) {
	h := newH2Server(t, nil)
	resp := h.get(t, context.Background(), "/channels/x/ws", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTP/1.1") {
		t.Fatalf("WebSocket over h2: %d %s, want 400 naming HTTP/1.1", resp.StatusCode, b)
	}
}
