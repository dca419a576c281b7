package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/announce/webhook"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// presenceNodes starts n nodes on one Redis with quick presence settings;
// node i is named "node-<i>". adjust, when not nil, changes each config.
func presenceNodes(t *testing.T, addr string, n int, adjust func(*serve.Config)) []*node {
	t.Helper()
	i := 0
	return startCluster(t, addr, n, func(c *serve.Config) {
		c.Presence.Node = "node-" + string(rune('a'+i))
		c.Presence.Heartbeat = 500 * time.Millisecond // entries live 1.5 s
		c.Presence.Grace = 500 * time.Millisecond
		i++
		if adjust != nil {
			adjust(c)
		}
	})
}

// readPresence reads GET /channels/{ch}/presence on base.
func readPresence(t *testing.T, base, ch string) presence.Snapshot {
	t.Helper()
	var s presence.Snapshot
	if err := get(t.Context(), base+"/channels/"+ch+"/presence", &s); err != nil {
		t.Fatalf("presence on %s: %v", base, err)
	}
	return s
}

// awaitPresence waits until every node answers the same presence, want.
func awaitPresence(t *testing.T, bases []string, ch string, want presence.Counts, names ...string) {
	t.Helper()
	if names == nil {
		names = []string{}
	}
	for _, base := range bases {
		var got presence.Snapshot
		testenv.WaitFor(t, settle, "presence on "+base, func() bool {
			got = readPresence(t, base, ch)
			return got.Observers == want && got.Total == want.Total() && slices.Equal(got.Names, names) && !got.Partial
		})
	}
}

// sseClient is a raw SSE stream that records every block.
type sseClient struct {
	cancel context.CancelFunc
	blocks chan sseBlock
}

type sseBlock struct{ event, id, data string }

func openStream(t *testing.T, u string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := streamClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET %s: %v %v", u, err, resp)
	}
	c := &sseClient{cancel: cancel, blocks: make(chan sseBlock, 256)}
	go func() {
		defer resp.Body.Close()
		defer close(c.blocks)
		r := bufio.NewReader(resp.Body)
		var b sseBlock
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case line == "":
				if b.data != "" {
					c.blocks <- b
				}
				b = sseBlock{}
			case strings.HasPrefix(line, "event: "):
				b.event = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				b.id = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				b.data = line[len("data: "):]
			}
		}
	}()
	t.Cleanup(cancel)
	return c
}

// next returns the next block with data.
func (c *sseClient) next(t *testing.T) sseBlock {
	t.Helper()
	select {
	case b, ok := <-c.blocks:
		if !ok {
			t.Fatal("the SSE stream ended")
		}
		return b
	case <-time.After(settle):
		t.Fatal("no SSE event")
	}
	return sseBlock{}
}

// nextPresence returns the next block, checking it is a presence event without id.
func (c *sseClient) nextPresence(t *testing.T) presence.Event {
	t.Helper()
	b := c.next(t)
	if b.event != "presence" || b.id != "" {
		t.Fatalf("SSE block %+v, want event: presence without id", b)
	}
	var e presence.Event
	if err := json.Unmarshal([]byte(b.data), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func dialWSPresence(t *testing.T, base, path string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(base, "http")+path, nil)
	if err != nil {
		t.Fatalf("dial %s%s: %v", base, path, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// keepPolling long-polls u in a loop (cookies kept, as a browser) until the test ends.
func keepPolling(t *testing.T, u string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Transport: streamClient.Transport}
		var cookie string
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			resp, err := client.Do(req)
			if err != nil {
				time.Sleep(reconnectPause)
				continue
			}
			for _, sc := range resp.Header.Values("Set-Cookie") {
				if strings.HasPrefix(sc, "announce-client=") {
					cookie = strings.SplitN(sc, ";", 2)[0]
				}
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				time.Sleep(reconnectPause)
			}
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// TestPresenceAcrossNodes: presence sums every node's observers, whichever
// node answers; a node that shuts down takes its observers out at once,
// and one that crashed (its entry no longer refreshed) ages out.
func TestPresenceAcrossNodes(t *testing.T) {
	addr := testenv.Redis(t)
	nodes := presenceNodes(t, addr, 2, nil)
	a, b := nodes[0], nodes[1]
	bases := urls(a, b)

	openStream(t, a.URL()+"/channels/room/events?name=alice")
	dialWSPresence(t, b.URL(), "/channels/room/ws?name=bob")
	dialWSPresence(t, b.URL(), "/channels/room/ws")
	keepPolling(t, b.URL()+"/channels/room/status?name=carol&timeout=0.1")
	awaitPresence(t, bases, "room", presence.Counts{Poll: 1, SSE: 1, WS: 2}, "alice", "bob", "carol")

	// A crashed node's entry, written as it would have left it: present
	// until its expiry, then gone.
	be, err := redis.NewPresence(redis.PresenceConfig{URL: "redis://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := be.Put(t.Context(), "crashed", map[string]presence.State{"room": {Counts: presence.Counts{WS: 3}, Names: []string{"zed"}}}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := readPresence(t, a.URL(), "room"); got.Observers.WS != 5 || !slices.Contains(got.Names, "zed") {
		t.Fatalf("with the crashed node's entry: %+v", got)
	}
	awaitPresence(t, bases, "room", presence.Counts{Poll: 1, SSE: 1, WS: 2}, "alice", "bob", "carol")

	// B shuts down: its observers leave the counts at once.
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	awaitPresence(t, []string{a.URL()}, "room", presence.Counts{SSE: 1}, "alice")
}

// TestPresenceEventsAcrossNodes: joins and leaves on one node reach the
// SSE and WebSocket observers of every node, with the service's counts,
// while message ids stay one sequence.
func TestPresenceEventsAcrossNodes(t *testing.T) {
	addr := testenv.Redis(t)
	nodes := presenceNodes(t, addr, 2, func(c *serve.Config) { c.Presence.Events = true })
	a, b := nodes[0], nodes[1]

	sam := openStream(t, a.URL()+"/channels/room/events?name=sam")
	if e := sam.nextPresence(t); e.Event != "join" || e.Name != "sam" || e.Total != 1 {
		t.Fatalf("own join: %+v", e)
	}
	awaitPresence(t, urls(a, b), "room", presence.Counts{SSE: 1}, "sam") // A's entry is in Redis

	wendy := dialWSPresence(t, b.URL(), "/channels/room/ws?name=wendy")
	want := presence.Event{Event: "join", Channel: "room", Name: "wendy", Transport: "ws", Observers: presence.Counts{SSE: 1, WS: 1}, Total: 2}
	if e := sam.nextPresence(t); e != want {
		t.Fatalf("A heard %+v, want %+v", e, want)
	}
	_ = wendy.SetReadDeadline(time.Now().Add(settle))
	_, data, err := wendy.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var own presence.Event
	if err := json.Unmarshal(data, &own); err != nil || own != want {
		t.Fatalf("wendy's own join: %s", data)
	}

	m := mustPublish(t, newLedger(), b.URL(), "room", "hello")
	if blk := sam.next(t); blk.event != "message" || blk.id != "1" || m.ID != 1 {
		t.Fatalf("after presence events: block %+v, message %+v", blk, m)
	}
	wendy.Close()
	if e := sam.nextPresence(t); e.Event != "leave" || e.Name != "wendy" || e.Observers != (presence.Counts{SSE: 1}) {
		t.Fatalf("A heard %+v, want wendy's leave", e)
	}
	if m := mustPublish(t, newLedger(), a.URL(), "room", "again"); m.ID != 2 {
		t.Fatalf("second message id %d", m.ID)
	}
	if blk := sam.next(t); blk.event != "message" || blk.id != "2" {
		t.Fatalf("block %+v", blk)
	}
}

// TestPresenceLeavesWhenNodeStops: the observers of a node that stops leave,
// and the other nodes' observers hear each of them go.
func TestPresenceLeavesWhenNodeStops(t *testing.T) {
	addr := testenv.Redis(t)
	nodes := presenceNodes(t, addr, 2, func(c *serve.Config) { c.Presence.Events = true })
	a, b := nodes[0], nodes[1]
	sam := openStream(t, a.URL()+"/channels/room/events?name=sam")
	if e := sam.nextPresence(t); e.Event != "join" || e.Name != "sam" {
		t.Fatalf("own join: %+v", e)
	}
	awaitPresence(t, urls(a, b), "room", presence.Counts{SSE: 1}, "sam")
	dialWSPresence(t, b.URL(), "/channels/room/ws?name=wendy")
	openStream(t, b.URL()+"/channels/room/events?name=leo")
	polled := make(chan error, 1)
	go func() { // a long-poll: present from its poll until its grace ends
		var m struct{ ID uint64 }
		polled <- get(context.Background(), b.URL()+"/channels/room/status?name=paul", &m)
	}()
	left := map[string]bool{}
	for len(left) < 3 {
		e := sam.nextPresence(t)
		if e.Event == "join" {
			left[e.Name] = false
		}
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e := sam.nextPresence(t)
		if e.Event != "leave" {
			t.Fatalf("A heard %+v, want leaves", e)
		}
		left[e.Name] = true
	}
	if !left["wendy"] || !left["leo"] || !left["paul"] {
		t.Fatalf("leaves heard: %v", left)
	}
	if err := <-polled; err != nil {
		t.Errorf("the long-poll on the stopping node: %v", err)
	}
}

// TestWebhooksPerNode: each node posts its own observers' events, named by
// node, and a node's shutdown reports its observers disconnected.
func TestWebhooksPerNode(t *testing.T) {
	const secret = "cluster-webhook-secret"
	var mu sync.Mutex
	var got []webhook.Event
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify(secret, body, r.Header.Get(webhook.HeaderSignature), time.Minute, time.Now()) {
			t.Errorf("unsigned or stale webhook %s", body)
		}
		var e webhook.Event
		_ = json.Unmarshal(body, &e)
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}))
	defer rcv.Close()
	events := func() []webhook.Event {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	has := func(typ, node, name string) bool {
		for _, e := range events() {
			if e.Type == typ && e.Node == node && e.Name == name {
				return true
			}
		}
		return false
	}
	addr := testenv.Redis(t)
	nodes := presenceNodes(t, addr, 2, func(c *serve.Config) {
		c.Presence.Webhooks = []string{rcv.URL}
		c.Presence.WebhookSecret = secret
	})
	a, b := nodes[0], nodes[1]
	dialWSPresence(t, a.URL(), "/channels/room/ws?name=ann")
	openStream(t, b.URL()+"/channels/room/events?name=ben")
	testenv.WaitFor(t, settle, "both connected", func() bool { return has("connected", "node-a", "ann") && has("connected", "node-b", "ben") })
	m := mustPublish(t, newLedger(), a.URL(), "room", "hi")
	testenv.WaitFor(t, settle, "published", func() bool {
		for _, e := range events() {
			if e.Type == "published" && e.ID == m.ID && e.Node == "node-a" {
				return true
			}
		}
		return false
	})
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	if !has("disconnected", "node-b", "ben") { // flushed before Shutdown returned
		t.Fatalf("B's shutdown did not report ben disconnected: %+v", events())
	}
	if has("disconnected", "node-a", "ann") {
		t.Fatal("ann, on A, reported disconnected")
	}
}
