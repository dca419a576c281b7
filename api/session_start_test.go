package api_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/conn"
	"github.com/gorilla/websocket"
)

// failingPollers are the ways a session's watch can fail at start-up: no
// poller at all, or a poller that refuses the connection (closed).
func failingPollers(t *testing.T) map[string]func() (*conn.Poller, error) {
	closed, err := conn.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	return map[string]func() (*conn.Poller, error){
		"no poller":    func() (*conn.Poller, error) { return nil, errors.New("epoll unavailable") },
		"watch failed": func() (*conn.Poller, error) { return closed, nil },
	}
}

// A WebSocket whose connection cannot be watched is closed with 1011: a
// fault of the server's, not its shutdown (1001), which would tell the
// client to go to another node as if this one were stopping.
func TestWebSocketWhoseWatchFailsClosesWithInternalError(t *testing.T) {
	for name, poller := range failingPollers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			ts.API.SetPoller(poller)
			ws := dialWS(t, ts, "/channels/wf/ws")
			ce := expectWSClose(t, ws, websocket.CloseInternalServerErr)
			if ce.Text != "internal error" {
				t.Fatalf("closed with %d %q, want 1011 internal error", ce.Code, ce.Text)
			}
			waitObservers(t, ts.Hub, announce.WebSocket, 0)
		})
	}
}

// A waiting long-poll whose connection cannot be watched is answered at
// once with the current message, and closes.
func TestWaitingPollWhoseWatchFailsIsAnsweredAtOnce(t *testing.T) {
	for name, poller := range failingPollers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			ts.API.SetPoller(poller)
			m := ts.Publish(t, "wfp", "current")
			resp, body := ts.get(t, fmt.Sprintf("/channels/wfp/status?since=%d&timeout=60", m.ID))
			assertStatus(t, resp, body, http.StatusOK)
			if contentOf(t, string(body)) != "current" {
				t.Fatalf("answered %q, want the current message", body)
			}
			waitObservers(t, ts.Hub, announce.Poll, 0)
		})
	}
}

// failingHijacker is a middleware's ResponseWriter that offers Hijack
// and fails it.
type failingHijacker struct{ http.ResponseWriter }

func (failingHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("this writer cannot hijack")
}

// A waiting poll whose connection cannot be taken over after all (Hijack
// fails) is still answered, on either route: with the current message, or
// the log after the cursor, never an empty body.
func TestPollThatCannotBeTakenOverIsAnsweredWithABody(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "nh", "only")
	for path, want := range map[string]string{
		fmt.Sprintf("/channels/nh/status?since=%d&timeout=60", m.ID):  `"content":"only"`,
		fmt.Sprintf("/channels/nh/messages?since=%d&wait=60", m.ID):   `[]`,
		fmt.Sprintf("/channels/nh/messages?since=%d&wait=60", m.ID-1): `"content":"only"`,
	} {
		rec := httptest.NewRecorder()
		ts.API.Handler().ServeHTTP(failingHijacker{rec}, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s through a recorder: %d %q, want 200 with %s", path, rec.Code, body, want)
		}
	}
	waitObservers(t, ts.Hub, announce.Poll, 0)
}

// Behind a writer that cannot hijack at all (a recorder, as a wrapping
// middleware's), a poll waits through it: gin's writer claims to hijack
// whatever it wraps, so it is looked through.
func TestPollBehindAWriterThatCannotHijack(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "rec", "only")
	rec := httptest.NewRecorder()
	ts.API.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/channels/rec/status?since=%d&timeout=0.05", m.ID), nil))
	if body := rec.Body.String(); rec.Code != http.StatusOK || contentOf(t, body) != "only" {
		t.Fatalf("a poll through a recorder: %d %q, want 200 with the current message", rec.Code, body)
	}
	waitObservers(t, ts.Hub, announce.Poll, 0)
}
