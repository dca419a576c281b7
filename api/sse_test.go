package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// sseStreamTimeout bounds every SSE stream a test opens, so a server that
// stops sending fails the test instead of hanging it.
const sseStreamTimeout = 30 * time.Second

// sseEvent is one block of an event stream, up to its blank line: the fields
// it set and the comment lines it held. A block of only comments or only
// "retry" is returned too, so tests can see heartbeats and the retry hint.
type sseEvent struct {
	ID       string
	HasID    bool
	Event    string
	Data     string
	HasData  bool
	Retry    string
	Comments []string
}

// isMessage reports whether the block carries an event (data), as opposed to
// a comment or a bare retry hint.
func (e sseEvent) isMessage() bool { return e.HasData }

// message decodes the data of an "event: message" block.
func (e sseEvent) message() (announce.Message, error) {
	var m announce.Message
	if e.Event != "message" {
		return m, fmt.Errorf("event %q (data %q), want event: message", e.Event, e.Data)
	}
	if err := json.Unmarshal([]byte(e.Data), &m); err != nil {
		return m, fmt.Errorf("data %q is not a message: %v", e.Data, err)
	}
	if !e.HasID || e.ID != strconv.FormatUint(m.ID, 10) {
		return m, fmt.Errorf("id: %q (set %v) does not match the message id %d", e.ID, e.HasID, m.ID)
	}
	return m, nil
}

// sseStream is an open event stream read by a small parser that follows the
// EventSource rules for fields ("name: value", one optional space after the
// colon, data lines joined by "\n", lines starting with ":" are comments).
type sseStream struct {
	Resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// dialSSE opens an event stream without failing: it returns the response
// (with its body open) whatever its status. header is name, value pairs.
// The stream ends with ctx, or after sseStreamTimeout when ctx has no
// deadline. Safe to call from any goroutine.
func dialSSE(ctx context.Context, client *http.Client, url string, header ...string) (*sseStream, error) {
	if client == nil {
		client = http.DefaultClient
	}
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, sseStreamTimeout)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	return &sseStream{Resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}, nil
}

// openSSE opens an event stream for the test and checks that it is one: 200
// and text/event-stream. The stream is closed when the test ends.
func openSSE(t testing.TB, url string, header ...string) *sseStream {
	t.Helper()
	s, err := dialSSE(context.Background(), nil, url, header...)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(s.Close)
	if s.Resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(s.Resp.Body)
		t.Fatalf("GET %s: status %d, want 200: %s", url, s.Resp.StatusCode, b)
	}
	if ct := s.Resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("GET %s: Content-Type %q, want text/event-stream", url, ct)
	}
	return s
}

// Close drops the stream at once, as a browser tab that goes away does.
func (s *sseStream) Close() {
	s.cancel()
	s.Resp.Body.Close()
}

// Next reads the next block. io.EOF means the server ended the stream.
func (s *sseStream) Next() (sseEvent, error) {
	var e sseEvent
	lines := 0
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && (lines > 0 || line != "") {
				return e, io.ErrUnexpectedEOF // a block cut in the middle
			}
			return e, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if lines == 0 {
				continue // stray blank line
			}
			return e, nil
		}
		lines++
		if rest, ok := strings.CutPrefix(line, ":"); ok {
			e.Comments = append(e.Comments, strings.TrimPrefix(rest, " "))
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			e.ID, e.HasID = value, true
		case "event":
			e.Event = value
		case "data":
			if e.HasData {
				e.Data += "\n"
			}
			e.Data += value
			e.HasData = true
		case "retry":
			e.Retry = value
		default:
			return e, fmt.Errorf("unknown field in line %q", line)
		}
	}
}

// NextEvent skips comments and retry hints and returns the next block with data.
func (s *sseStream) NextEvent() (sseEvent, error) {
	for {
		e, err := s.Next()
		if err != nil || e.isMessage() {
			return e, err
		}
	}
}

// NextMessage reads the next event and decodes it as a message.
func (s *sseStream) NextMessage() (announce.Message, error) {
	e, err := s.NextEvent()
	if err != nil {
		return announce.Message{}, err
	}
	return e.message()
}

// next is NextEvent for the test goroutine.
func (s *sseStream) next(t testing.TB) sseEvent {
	t.Helper()
	e, err := s.NextEvent()
	if err != nil {
		t.Fatalf("reading the event stream: %v", err)
	}
	return e
}

// nextMessage is NextMessage for the test goroutine.
func (s *sseStream) nextMessage(t testing.TB) announce.Message {
	t.Helper()
	m, err := s.NextMessage()
	if err != nil {
		t.Fatalf("reading the event stream: %v", err)
	}
	return m
}

// expectIDs reads messages and checks that they carry exactly ids, in order.
func (s *sseStream) expectIDs(t testing.TB, ids ...uint64) {
	t.Helper()
	for _, want := range ids {
		if m := s.nextMessage(t); m.ID != want {
			t.Fatalf("SSE message id %d, want %d (content %q)", m.ID, want, m.Content)
		}
	}
}

// expectEnd reads until the server ends the stream, failing on anything but
// a clean end. It returns the blocks read on the way.
func (s *sseStream) expectEnd(t testing.TB) []sseEvent {
	t.Helper()
	var seen []sseEvent
	for {
		e, err := s.Next()
		if errors.Is(err, io.EOF) {
			return seen
		}
		if err != nil {
			t.Fatalf("the event stream failed instead of ending: %v (after %d blocks)", err, len(seen))
		}
		seen = append(seen, e)
	}
}

// publishN publishes n messages "<prefix> 1" ... on channel and returns their ids.
func publishN(t *testing.T, ts *testServer, channel, prefix string, n int) []uint64 {
	t.Helper()
	ids := make([]uint64, n)
	for i := range n {
		ids[i] = ts.Publish(t, channel, fmt.Sprintf("%s %d", prefix, i+1)).ID
	}
	return ids
}

func TestSSEHeadersRetryAndCurrent(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{"/channels/hdr/events", "/channels/hdr/status"} {
		t.Run(path, func(t *testing.T) {
			s := openSSE(t, ts.URL+path)
			h := s.Resp.Header
			if got := h.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache", got)
			}
			if got := h.Get("X-Accel-Buffering"); got != "no" {
				t.Errorf("X-Accel-Buffering %q, want no", got)
			}
			first, err := s.Next()
			if err != nil {
				t.Fatal(err)
			}
			if first.Retry != "3000" || first.HasData || first.HasID {
				t.Fatalf("first block %+v, want exactly retry: 3000", first)
			}
		})
	}
}

func TestSSECurrentMessageThenLiveInOrder(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)

	// Nothing published: no message on connect, the first live one comes next.
	empty := openSSE(t, ts.URL+"/channels/live/events")
	m1 := ts.Publish(t, "live", "first")
	if got := empty.nextMessage(t); got.ID != m1.ID || got.Content != "first" || got.Channel != "live" {
		t.Fatalf("got %+v, want %+v", got, m1)
	}

	ts.Publish(t, "live", "second")
	cur := ts.Publish(t, "live", "third")
	s := openSSE(t, ts.URL+"/channels/live/events")
	got := s.nextMessage(t)
	if got.ID != cur.ID || got.Content != "third" || !got.Time.Equal(cur.Time) {
		t.Fatalf("on connect got %+v, want the current message %+v", got, cur)
	}
	ids := publishN(t, ts, "live", "live", 20)
	s.expectIDs(t, ids...)
	empty.expectIDs(t, append([]uint64{2, 3}, ids...)...)
}

func TestSSEReplaySinceAndLastEventID(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	publishN(t, ts, "rp", "old", 6)

	cases := []struct {
		name   string
		query  string
		header []string
		first  uint64
	}{
		{"since", "?since=2", nil, 3},
		{"since=0", "?since=0", nil, 1},
		{"Last-Event-ID", "", []string{"Last-Event-ID", "4"}, 5},
		{"Last-Event-ID wins over since", "?since=1", []string{"Last-Event-ID", "5"}, 6},
		{"since at current", "?since=6", nil, 7},
		// A cursor ahead of the channel (the store was reset): the current message.
		{"since ahead", "?since=99", nil, 6},
	}
	streams := make([]*sseStream, len(cases))
	for i, c := range cases {
		streams[i] = openSSE(t, ts.URL+"/channels/rp/events"+c.query, c.header...)
	}
	live := publishN(t, ts, "rp", "new", 3)
	for i, c := range cases {
		var want []uint64
		for id := c.first; id <= 6; id++ {
			want = append(want, id)
		}
		want = append(want, live...)
		t.Run(c.name, func(t *testing.T) { streams[i].expectIDs(t, want...) })
	}
}

func TestSSETruncatedWhenCursorOlderThanHistory(t *testing.T) {
	t.Parallel()
	ts := newTestServerHub(t, func(c *announce.Config) { c.History = 5 })
	publishN(t, ts, "tr", "m", 10) // history keeps 6..10

	s := openSSE(t, ts.URL+"/channels/tr/events?since=2")
	e := s.next(t)
	if e.Event != "truncated" {
		t.Fatalf("first event %+v, want event: truncated", e)
	}
	var notice struct {
		Event string `json:"event"`
		Since uint64 `json:"since"`
		First uint64 `json:"first"`
	}
	if err := json.Unmarshal([]byte(e.Data), &notice); err != nil {
		t.Fatalf("truncated data %q: %v", e.Data, err)
	}
	if notice.Since != 2 || notice.First != 6 {
		t.Errorf("truncated notice %+v, want since 2, first 6", notice)
	}
	s.expectIDs(t, 6, 7, 8, 9, 10)
	live := ts.Publish(t, "tr", "live")
	s.expectIDs(t, live.ID)

	// A cursor that history still covers is not truncated: after 6 come 7.., all kept.
	ok := openSSE(t, ts.URL+"/channels/tr/events", "Last-Event-ID", "6")
	ok.expectIDs(t, 7, 8, 9, 10, 11)
}

func TestSSEHeartbeatComment(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *api.Config) { c.Heartbeat = 50 * time.Millisecond })
	s := openSSE(t, ts.URL+"/channels/hb/events")
	deadline := time.Now().Add(10 * time.Second)
	for heartbeats := 0; heartbeats < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d heartbeat comments within 10s", heartbeats)
		}
		e, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.HasData {
			t.Fatalf("unexpected event %+v on an idle channel", e)
		}
		if len(e.Comments) > 0 {
			heartbeats++
		}
	}
	// The stream is still alive after its heartbeats.
	m := ts.Publish(t, "hb", "after heartbeats")
	s.expectIDs(t, m.ID)
}

func TestSSEBadCursor(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, c := range []struct {
		path   string
		header []string
	}{
		{"/channels/bad/events?since=abc", nil},
		{"/channels/bad/events?since=-1", nil},
		{"/channels/bad/events", []string{"Last-Event-ID", "x1"}},
		{"/events?since=1.5", nil},
		{"/channels/bad/status?since=nope", []string{"Accept", "text/event-stream"}},
	} {
		req, err := http.NewRequest(http.MethodGet, ts.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/event-stream")
		for i := 0; i+1 < len(c.header); i += 2 {
			req.Header.Set(c.header[i], c.header[i+1])
		}
		resp, body := do(t, nil, req)
		assertError(t, resp, body, http.StatusBadRequest)
	}
	if n := ts.Hub.Stats().Observers(announce.SSE); n != 0 {
		t.Errorf("%d SSE observers registered by refused requests", n)
	}
}

func TestSSEClientGoneUnregisters(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	s := openSSE(t, ts.URL+"/channels/gone/events")
	waitObservers(t, ts.Hub, announce.SSE, 1)
	s.Close()
	waitObservers(t, ts.Hub, announce.SSE, 0)
}

// TestSSELargeMessageAfterIdle: a stream that stayed idle longer than the
// write timeout (but less than a heartbeat) still carries a message larger
// than the server's write buffer. Every write needs a fresh deadline, not
// only the flush at the end of a burst.
func TestSSELargeMessageAfterIdle(t *testing.T) {
	t.Parallel()
	const writeTimeout = 100 * time.Millisecond
	ts := newTestServer(t, func(c *api.Config) {
		c.WriteTimeout = writeTimeout
		c.Heartbeat = time.Hour
	})
	s := openSSE(t, ts.URL+"/channels/idle/events")
	if e, err := s.Next(); err != nil || e.Retry == "" {
		t.Fatalf("first block %+v (%v), want the retry hint", e, err)
	}
	// The precondition, not an assertion: the last write's deadline is past.
	time.Sleep(3 * writeTimeout)
	big := strings.Repeat("b", 32<<10)
	m := ts.Publish(t, "idle", big)
	if got := s.nextMessage(t); got.ID != m.ID || got.Content != big {
		t.Fatalf("got message %d (%d bytes), want %d", got.ID, len(got.Content), m.ID)
	}
	small := ts.Publish(t, "idle", "small")
	s.expectIDs(t, small.ID)
}
