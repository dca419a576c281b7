package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/announce/announce/api"
)

// FuzzCursorHeaders throws arbitrary Cookie and Last-Event-ID headers at a
// channel with messages 1 to 5. The cursor cookie only ever tunes a
// long-poll's wait: the answer is always 200 with the current message and
// the cursor cookie for it. An event stream refuses a malformed
// Last-Event-ID with a JSON 400, and otherwise replays exactly what the
// cursor asks for: the messages after it, or the current message when there
// is no cursor or it is ahead.
func FuzzCursorHeaders(f *testing.F) {
	for _, seed := range []struct{ cookie, lastEventID string }{
		{"", ""},
		{"announce_cur=3", "3"},
		{"announce_cur=5", "5"},
		{"announce_cur=6", "6"},
		{"a=1; announce_cur=2; b=3", "0"},
		{"announce_cur=x; announce_cur=1", " 2 "},
		{"announce_cur = 1", "+1"},
		{"announce_cur=\"1\"", "-1"},
		{"announce_cur=18446744073709551615", "18446744073709551615"},
		{"announce_cur=18446744073709551616", "18446744073709551616"},
		{"announce_cur=", "1.0"},
		{"announce_cur", "0x1"},
		{";;;=;", "\t4"},
		{"announce_q=1; announce_cur=1;", "1e3"},
		{"announce_cur=1=2", "\xff"},
		{"announce_cur=\xc2\xa04", "\xc2\xa04"},
	} {
		f.Add(seed.cookie, seed.lastEventID)
	}

	ts := newTestServerHub(f, nil, func(c *api.Config) { c.PollTimeout = fuzzPollTimeout })
	msgs := seedMessages(f, ts, "cur", 5)
	current := msgs[len(msgs)-1]
	h := ts.API.Handler()
	f.Fuzz(func(t *testing.T, cookie, lastEventID string) {
		if req, ok := wireRequest("GET /channels/cur/status HTTP/1.1", "Host: fuzz", "Cookie: "+cookie); ok {
			resp, body := serve(h, req)
			assertStatus(t, resp, body, http.StatusOK)
			if m := decodeMessage(t, body); m != current {
				t.Fatalf("Cookie %q: answered %+v, the current message is %+v", cookie, m, current)
			}
			if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), "\n"), "announce_cur=5;") {
				t.Fatalf("Cookie %q: no cursor cookie for id 5: %q", cookie, resp.Header.Values("Set-Cookie"))
			}
		}

		req, ok := wireRequest("GET /channels/cur/events HTTP/1.1", "Host: fuzz", "Last-Event-ID: "+lastEventID)
		if !ok {
			return
		}
		ctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		rec := flushCanceler{httptest.NewRecorder(), cancel}
		h.ServeHTTP(rec, req.WithContext(ctx))
		resp, body := rec.Result(), rec.Body.Bytes()
		resp.Request = req

		id := req.Header.Get("Last-Event-ID")
		if id != "" && !validCursor(id) {
			assertError(t, resp, body, http.StatusBadRequest)
			return
		}
		assertStatus(t, resp, body, http.StatusOK)
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		expect := msgs[len(msgs)-1:]
		if since, err := strconv.ParseUint(strings.TrimSpace(id), 10, 64); err == nil && since <= current.ID {
			expect = msgs[since:]
		}
		stream := &sseStream{Resp: resp, r: bufio.NewReader(bytes.NewReader(body)), cancel: func() {}}
		if e, err := stream.Next(); err != nil || e.Retry != "3000" || e.HasData {
			t.Fatalf("Last-Event-ID %q: first block %+v (%v), want retry: 3000; stream %q", id, e, err, body)
		}
		for _, want := range expect {
			e, err := stream.Next()
			if err != nil {
				t.Fatalf("Last-Event-ID %q: stream %q ended before message %d: %v", id, body, want.ID, err)
			}
			if m, err := e.message(); err != nil || m != want {
				t.Fatalf("Last-Event-ID %q: replayed %+v (%v), want %+v", id, m, err, want)
			}
		}
		if e, err := stream.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("Last-Event-ID %q: after the replay %+v (%v), want the end; stream %q", id, e, err, body)
		}
	})
}

// flushCanceler is a recorder that cancels the request when the handler
// flushes: an event stream has then written its head and replay, and ends
// as it does when the client leaves.
type flushCanceler struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (w flushCanceler) Flush() {
	w.ResponseRecorder.Flush()
	w.cancel()
}
