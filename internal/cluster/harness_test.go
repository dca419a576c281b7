package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// settle bounds every wait of these tests. It is generous because they run
// under -race on loaded machines next to other packages' tests; a passing
// test never waits for it.
const settle = 30 * time.Second

// reconnectPause is how long an observer waits before it reconnects.
const reconnectPause = 20 * time.Millisecond

// httpClient publishes and polls; every request of it is short.
var httpClient = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	Timeout:   15 * time.Second,
}

// streamClient opens SSE streams, which last as long as their context.
var streamClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// node is a running announce node that is shut down once, by the test or at cleanup.
type node struct {
	*serve.Node
	once sync.Once
	err  error
}

// startNode starts a node on a free loopback port.
func startNode(t testing.TB, cfg serve.Config) *node {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = 5 * time.Second
	}
	n, err := serve.Start(cfg)
	if err != nil {
		t.Fatalf("starting a node on Redis %s: %v", cfg.Redis, err)
	}
	nd := &node{Node: n}
	t.Cleanup(func() {
		if err := nd.stop(); err != nil {
			t.Errorf("shutting down the node at %s: %v", nd.Addr(), err)
		}
	})
	return nd
}

// stop shuts the node down gracefully, once.
//
// It first closes the clients' idle connections: net/http's Shutdown waits
// up to 5 s for a connection that has not sent its first request, and
// http.Transport keeps such connections when it dialed for a request that
// another connection served first.
func (n *node) stop() error {
	n.once.Do(func() {
		httpClient.CloseIdleConnections()
		streamClient.CloseIdleConnections()
		n.err = testenv.Stop(5*time.Second, n.Shutdown)
	})
	return n.err
}

// startCluster starts n nodes on the Redis at addr. cfg, when not nil,
// adjusts each node's configuration.
func startCluster(t testing.TB, addr string, n int, cfg func(*serve.Config)) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		c := serve.Config{Redis: "redis://" + addr + "/0"}
		if cfg != nil {
			cfg(&c)
		}
		nodes[i] = startNode(t, c)
	}
	return nodes
}

// published is the answer to one publish.
type published struct {
	status int
	msg    announce.Message // the stored message, on 201
	err    string           // the JSON error, on anything else
	took   time.Duration
	fail   error // the request itself failed (no answer)
}

// publish POSTs content to base's channel ch as JSON.
func publish(ctx context.Context, base, ch, content string) published {
	body, _ := json.Marshal(map[string]string{"content": content})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/channels/"+ch+"/messages", bytes.NewReader(body))
	if err != nil {
		return published{fail: err}
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return published{fail: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	p := published{status: resp.StatusCode, took: time.Since(start)}
	if err != nil {
		p.fail = err
		return p
	}
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(raw, &p.msg); err != nil {
			p.fail = fmt.Errorf("201 with a body that is no message: %q", raw)
		}
		return p
	}
	var e struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(raw, &e); err != nil || e.Error == nil || resp.Header.Get("Content-Type") == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		p.fail = fmt.Errorf("status %d with a body that is no JSON error: %q", resp.StatusCode, raw)
		return p
	}
	p.err = *e.Error
	return p
}

// mustPublish publishes and fails the test unless the answer is 201.
func mustPublish(t testing.TB, l *ledger, base, ch, content string) announce.Message {
	t.Helper()
	l.attempt(content)
	p := publish(context.Background(), base, ch, content)
	if p.fail != nil || p.status != http.StatusCreated {
		t.Fatalf("publishing %q on %s: status %d, error %q, %v", content, base, p.status, p.err, p.fail)
	}
	if err := l.ack(p.msg); err != nil {
		t.Fatal(err)
	}
	return p.msg
}

// ledger records what the publishers sent and what the service acknowledged.
type ledger struct {
	mu        sync.Mutex
	acked     map[uint64]string // id → content, from the 201 answers
	attempted map[string]bool   // every content ever sent
}

func newLedger() *ledger {
	return &ledger{acked: make(map[uint64]string), attempted: make(map[string]bool)}
}

func (l *ledger) attempt(content string) {
	l.mu.Lock()
	l.attempted[content] = true
	l.mu.Unlock()
}

// ack records a 201; two acknowledgements of one id are a broken sequence.
func (l *ledger) ack(m announce.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, dup := l.acked[m.ID]; dup {
		return fmt.Errorf("id %d acknowledged twice: for %q and for %q", m.ID, old, m.Content)
	}
	l.acked[m.ID] = m.Content
	return nil
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// content is what id was acknowledged for; "" when it was not.
func (l *ledger) content(id uint64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked[id]
}

// maxID is the highest acknowledged id.
func (l *ledger) maxID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var top uint64
	for id := range l.acked {
		top = max(top, id)
	}
	return top
}

// check reports whether m is something the service may tell an observer:
// an acknowledged message, or (unacked: true) one whose publish failed with
// an unknown outcome, stored after all. Anything else is false news.
func (l *ledger) check(m announce.Message) (unacked bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.acked[m.ID]; ok {
		if c != m.Content {
			return false, fmt.Errorf("id %d carries %q, but the publisher was told it is %q", m.ID, m.Content, c)
		}
		return false, nil
	}
	if !l.attempted[m.Content] {
		return false, fmt.Errorf("id %d carries %q, which nobody published", m.ID, m.Content)
	}
	for id, c := range l.acked {
		if c == m.Content {
			return false, fmt.Errorf("id %d carries %q, acknowledged as id %d", m.ID, m.Content, id)
		}
	}
	return true, nil
}

// kind is how an observer is attached.
type kind string

const (
	wsKind     kind = "ws"     // GET /channels/{ch}/ws?since=
	sseKind    kind = "sse"    // GET /channels/{ch}/events with Last-Event-ID
	logKind    kind = "log"    // GET /channels/{ch}/messages?since=&wait= in a loop
	statusKind kind = "status" // GET /channels/{ch}/status?since=&timeout= in a loop
)

var allKinds = []kind{wsKind, sseKind, logKind, statusKind}

// observer is one client of a channel over one transport. It keeps a
// cursor (the last id it received) and, when its connection ends,
// reconnects with it: to the next of its URLs, so that an observer given
// two nodes moves to the second when the first goes away.
type observer struct {
	name string
	kind kind
	ch   string
	urls []string

	mu       sync.Mutex
	got      []announce.Message
	problems []string // anything the server said that is not a message
	cursor   *uint64  // the id to resume after; nil: none yet
	url      int      // index into urls of the current or next connection
	visited  []string // the URL of every connection made
	live     bool     // a connection is open (streams) or a poll is in flight
	drops    []string // why connections ended without the test asking
	failures []string // connection attempts or polls that failed
	rounds   int      // polls answered
	pollWait string   // the poll loops' wait= and timeout= in seconds
	hold     chan struct{}
	stopConn context.CancelFunc
	asked    bool // the test ended the current connection

	cancel context.CancelFunc
	done   chan struct{}
}

// newObserver starts an observer of ch over k, first on urls[0], resuming
// after since (nil: no cursor). It is stopped when the test ends. opts
// adjust it before it starts.
func newObserver(t testing.TB, k kind, ch string, urls []string, since *uint64, opts ...func(*observer)) *observer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o := &observer{
		name: fmt.Sprintf("%s observer of %s on %s", k, ch, urls[0]),
		kind: k, ch: ch, urls: urls, cursor: since, pollWait: "2",
		cancel: cancel, done: make(chan struct{}),
	}
	for _, opt := range opts {
		opt(o)
	}
	go o.run(ctx)
	t.Cleanup(o.stop)
	return o
}

func (o *observer) stop() {
	o.cancel()
	<-o.done
}

func (o *observer) run(ctx context.Context) {
	defer close(o.done)
	for ctx.Err() == nil {
		o.mu.Lock()
		hold := o.hold
		o.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return
			}
		}
		conn, stop := context.WithCancel(ctx)
		o.mu.Lock()
		base := o.urls[o.url]
		o.stopConn = stop
		o.asked = false
		o.mu.Unlock()

		var err error
		switch o.kind {
		case wsKind:
			err = o.runWS(conn, base)
		case sseKind:
			err = o.runSSE(conn, base)
		case logKind:
			err = o.runLog(conn, base)
		case statusKind:
			err = o.runStatus(conn, base)
		}
		stop()
		if ctx.Err() != nil {
			return
		}
		o.mu.Lock()
		o.live = false
		if !o.asked {
			o.drops = append(o.drops, fmt.Sprintf("%s: %v", base, err))
		}
		o.url = (o.url + 1) % len(o.urls)
		o.mu.Unlock()
		select {
		case <-time.After(reconnectPause):
		case <-ctx.Done():
			return
		}
	}
}

// pause ends the current connection and holds the observer disconnected
// until resume; it then reconnects to its next URL with its cursor.
func (o *observer) pause() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hold = make(chan struct{})
	o.asked = true
	if o.stopConn != nil {
		o.stopConn()
	}
}

func (o *observer) resume() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hold != nil {
		close(o.hold)
		o.hold = nil
	}
}

// connected reports whether the observer has a connection open (a stream
// subscribed, or a poll in flight).
func (o *observer) connected() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.live
}

func (o *observer) connectedTo(base string) {
	o.mu.Lock()
	o.live = true
	o.visited = append(o.visited, base)
	o.mu.Unlock()
}

// since returns the cursor to resume after, and whether there is one.
func (o *observer) since() (uint64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cursor == nil {
		return 0, false
	}
	return *o.cursor, true
}

// add records a message and moves the cursor past it.
func (o *observer) add(m announce.Message) {
	o.mu.Lock()
	o.got = append(o.got, m)
	id := m.ID
	o.cursor = &id
	o.mu.Unlock()
}

// answered counts a poll answered.
func (o *observer) answered() {
	o.mu.Lock()
	o.rounds++
	o.mu.Unlock()
}

// polls returns how many polls were answered.
func (o *observer) polls() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rounds
}

func (o *observer) problem(format string, args ...any) {
	o.mu.Lock()
	o.problems = append(o.problems, fmt.Sprintf(format, args...))
	o.mu.Unlock()
}

func (o *observer) failed(err error) {
	o.mu.Lock()
	o.failures = append(o.failures, err.Error())
	o.mu.Unlock()
}

// messages returns a copy of what the observer received, in order.
func (o *observer) messages() []announce.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]announce.Message(nil), o.got...)
}

// last returns the last message received (ID 0 and ok false when none).
func (o *observer) last() (announce.Message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) == 0 {
		return announce.Message{}, false
	}
	return o.got[len(o.got)-1], true
}

// reached reports whether the observer's last message is id with content.
func (o *observer) reached(id uint64, content string) bool {
	m, ok := o.last()
	return ok && m.ID == id && m.Content == content
}

// report is the observer's history for a failure message.
func (o *observer) report() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]string, 0, len(o.got))
	for _, m := range o.got {
		ids = append(ids, strconv.FormatUint(m.ID, 10))
	}
	const most = 60
	if len(ids) > most {
		ids = append(append(ids[:most/2:most/2], "..."), ids[len(ids)-most/2:]...)
	}
	return fmt.Sprintf("%s: %d messages [%s]; connections %v; drops %v; failures %v; problems %v",
		o.name, len(o.got), strings.Join(ids, " "), o.visited, o.drops, o.failures, o.problems)
}

// frame is anything a stream may carry: a message, or an event frame.
type frame struct {
	ID      *uint64   `json:"id"`
	Channel string    `json:"channel"`
	Content string    `json:"content"`
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
}

func (o *observer) frame(data []byte) {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		o.problem("undecodable frame %q: %v", data, err)
		return
	}
	if f.Event != "" || f.ID == nil {
		o.problem("event frame %s", data)
		return
	}
	if f.Channel != o.ch {
		o.problem("message of channel %q on %q", f.Channel, o.ch)
	}
	o.add(announce.Message{ID: *f.ID, Channel: f.Channel, Content: f.Content, Time: f.Time})
}

// closeCode is the WebSocket close code of err, or -1.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func (o *observer) runWS(ctx context.Context, base string) error {
	u := "ws" + strings.TrimPrefix(base, "http") + "/channels/" + o.ch + "/ws"
	if id, ok := o.since(); ok {
		u += "?since=" + strconv.FormatUint(id, 10)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (status %d)", err, resp.StatusCode)
		}
		o.failed(err)
		return err
	}
	o.connectedTo(base)
	ended := make(chan struct{})
	defer close(ended)
	go func() {
		select {
		case <-ctx.Done():
			conn.Close()
		case <-ended:
		}
	}()
	defer conn.Close()
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			if code := closeCode(err); code != -1 {
				return fmt.Errorf("closed with %d", code)
			}
			return err
		}
		if kind != websocket.TextMessage {
			o.problem("binary frame")
			continue
		}
		o.frame(data)
	}
}

func (o *observer) runSSE(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/channels/"+o.ch+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if id, ok := o.since(); ok {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(id, 10))
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		o.failed(err)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("status %d", resp.StatusCode)
		o.failed(err)
		return err
	}
	o.connectedTo(base)
	r := bufio.NewReader(resp.Body)
	var event, id string
	var data []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				return errors.New("stream ended")
			}
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		switch {
		case line == "":
			if data != nil {
				if event != "" && event != "message" {
					o.problem("SSE event %q: %s", event, data)
				} else {
					o.frame(data)
					if m, _ := o.last(); strconv.FormatUint(m.ID, 10) != id {
						o.problem("SSE id: %q for message %d", id, m.ID)
					}
				}
			}
			event, id, data = "", "", nil
		case strings.HasPrefix(line, ":"): // a comment: keepalive
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "retry:"):
		default:
			o.problem("SSE line %q", line)
		}
	}
}

// get GETs u and decodes a 200 answer's JSON into v.
func get(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding %q: %w", raw, err)
	}
	return nil
}

// runLog follows the channel's log with a cursor loop, as a script would.
func (o *observer) runLog(ctx context.Context, base string) error {
	o.connectedTo(base)
	for {
		since, _ := o.since()
		q := url.Values{"since": {strconv.FormatUint(since, 10)}, "wait": {o.pollWait}, "limit": {"1000"}}
		var msgs []json.RawMessage
		if err := get(ctx, base+"/channels/"+o.ch+"/messages?"+q.Encode(), &msgs); err != nil {
			if ctx.Err() == nil {
				o.failed(err)
			}
			return err
		}
		if len(msgs) > 0 && since > 0 {
			var first struct{ ID uint64 }
			if json.Unmarshal(msgs[0], &first) == nil && first.ID <= since {
				// A cursor ahead of the channel is answered its current
				// message: the store was reset, and every message it holds
				// now is news. Read them from the start, as the Go client
				// does, rather than take the current one alone.
				o.mu.Lock()
				o.cursor = ptr(0)
				o.mu.Unlock()
				continue
			}
		}
		for _, m := range msgs {
			o.frame(m)
		}
		o.answered()
		if len(msgs) == 0 && since > 0 {
			// An empty log may mean the store was reset and its ids are
			// behind the cursor (the log then answers [] for ever). The
			// channel's current id tells, as the Go client checks it.
			var info struct {
				Current struct {
					ID uint64 `json:"id"`
				} `json:"current"`
			}
			if err := get(ctx, base+"/channels/"+o.ch, &info); err != nil {
				if ctx.Err() == nil {
					o.failed(err)
				}
				return err
			}
			if info.Current.ID < since {
				o.mu.Lock()
				o.cursor = ptr(0) // every message the store holds now is news
				o.mu.Unlock()
			}
		}
	}
}

// runStatus long-polls the channel's current message with a cursor, as a
// classic page does: an answer whose id differs from the cursor is news.
func (o *observer) runStatus(ctx context.Context, base string) error {
	o.connectedTo(base)
	for {
		q := url.Values{"timeout": {o.pollWait}}
		since, ok := o.since()
		if ok {
			q.Set("since", strconv.FormatUint(since, 10))
		}
		var raw json.RawMessage
		if err := get(ctx, base+"/channels/"+o.ch+"/status?"+q.Encode(), &raw); err != nil {
			if ctx.Err() == nil {
				o.failed(err)
			}
			return err
		}
		o.answered()
		var m frame
		if err := json.Unmarshal(raw, &m); err != nil || m.ID == nil {
			o.problem("status answer that is no message: %s", raw)
			continue
		}
		if !ok || *m.ID != since {
			o.frame(raw)
		}
	}
}

// checkExact asserts that o received exactly the ids from..to, in order,
// each once, each with content the service may tell (see ledger.check). It
// returns how many of them were stored without an acknowledgement.
func checkExact(t testing.TB, o *observer, l *ledger, got []announce.Message, from, to uint64) int {
	t.Helper()
	unacked := 0
	want := from
	for _, m := range got {
		if m.ID != want {
			t.Errorf("%s: got id %d where %d was due (want %d..%d once each, in order)\n%s", o.name, m.ID, want, from, to, o.report())
			return unacked
		}
		u, err := l.check(m)
		if err != nil {
			t.Errorf("%s: %v", o.name, err)
		}
		if u {
			unacked++
		}
		want++
	}
	if want != to+1 {
		t.Errorf("%s: ended at %d, want %d\n%s", o.name, want-1, to, o.report())
	}
	return unacked
}

// checkRising asserts what a /status loop may see: current messages with
// rising ids (it skips those published between two polls), ending at to,
// each with content the service may tell.
func checkRising(t testing.TB, o *observer, l *ledger, got []announce.Message, to uint64) {
	t.Helper()
	var last uint64
	for i, m := range got {
		if i > 0 && m.ID <= last {
			t.Errorf("%s: id %d after %d\n%s", o.name, m.ID, last, o.report())
			return
		}
		if _, err := l.check(m); err != nil {
			t.Errorf("%s: %v", o.name, err)
		}
		last = m.ID
	}
	if last != to {
		t.Errorf("%s: ended at %d, want %d\n%s", o.name, last, to, o.report())
	}
}

// checkClean asserts that o was told nothing but messages.
func checkClean(t testing.TB, o *observer) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.problems) > 0 {
		t.Errorf("%s: %v", o.name, o.problems)
	}
}

// checkStayed asserts that o never lost its connection nor failed a poll.
func checkStayed(t testing.TB, o *observer) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.drops) > 0 || len(o.failures) > 0 {
		t.Errorf("%s: want one connection for the whole test; drops %v, failures %v", o.name, o.drops, o.failures)
	}
}

// waitReached waits until every observer's last message is id with content.
func waitReached(t testing.TB, obs []*observer, id uint64, content string) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for _, o := range obs {
		for !o.reached(id, content) {
			if time.Now().After(deadline) {
				t.Fatalf("waited %v for every observer to reach id %d (%q); %s", settle, id, content, o.report())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// waitAtLeast waits until every observer received id or a later one.
func waitAtLeast(t testing.TB, obs []*observer, id uint64) {
	t.Helper()
	for _, o := range obs {
		testenv.WaitFor(t, settle, fmt.Sprintf("%s to reach id %d", o.name, id), func() bool {
			m, _ := o.last()
			return m.ID >= id
		})
	}
}

// waitConnected waits until every observer has a connection open.
func waitConnected(t testing.TB, obs []*observer) {
	t.Helper()
	for _, o := range obs {
		testenv.WaitFor(t, settle, o.name+" to connect", o.connected)
	}
}

// status GETs base+path and returns the status code (0 when the request failed).
func status(base, path string) int {
	resp, err := httpClient.Get(base + path)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// metric reads one sample without labels from base's /metrics.
func metric(t testing.TB, base, name string) float64 {
	t.Helper()
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", name, v, err)
			}
			return f
		}
	}
	t.Fatalf("%s/metrics has no %s", base, name)
	return 0
}

func urls(nodes ...*node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.URL()
	}
	return out
}

func ptr(v uint64) *uint64 { return &v }
