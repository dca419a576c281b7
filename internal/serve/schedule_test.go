package serve_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// postJSON posts body to path and decodes the answer, which must have status want.
func postJSON(t *testing.T, url, body string, want int, v any) {
	t.Helper()
	resp, err := httpClient.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s %s: %s, want %d: %s", url, body, resp.Status, want, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("POST %s: %q: %v", url, b, err)
	}
}

type scheduledAnswer struct {
	Scheduled struct {
		ID string    `json:"id"`
		At time.Time `json:"at"`
	} `json:"scheduled"`
}

func schedule(t *testing.T, base, channel, content string, at time.Time) time.Time {
	t.Helper()
	var a scheduledAnswer
	body, _ := json.Marshal(map[string]string{"content": content, "at": at.Format(time.RFC3339Nano)})
	postJSON(t, base+"/channels/"+channel+"/messages", string(body), http.StatusAccepted, &a)
	return a.Scheduled.At
}

// A schedule due while the node is down fires once when it comes back, late;
// so does an expiry.
func TestScheduleSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	first := start(t, serve.Config{DataDir: dir})
	at := schedule(t, first.URL(), "restart", "while you were out", time.Now().Add(time.Second))
	var brief announce.Message
	postJSON(t, first.URL()+"/channels/expiring/messages", `{"content":"brief","ttl":"1s"}`, http.StatusCreated, &brief)
	shutdown(t, first)
	if time.Now().After(at) {
		t.Skip("the node took longer than the delay to stop; nothing to test") // very slow machine
	}

	time.Sleep(time.Until(at.Add(200 * time.Millisecond)))
	second := start(t, serve.Config{DataDir: dir})
	testenv.WaitFor(t, 10*time.Second, "the missed schedule to fire", func() bool {
		return getChannel(t, second.URL(), "restart").Current.ID == 1
	})
	testenv.WaitFor(t, 10*time.Second, "the missed expiry to fire", func() bool {
		return getChannel(t, second.URL(), "expiring").Current.ID == 2
	})
	// A later schedule, due more than a poll from now: the scheduler fires
	// in due order, so once it fired, a second firing of the missed one
	// would have come before it.
	schedule(t, second.URL(), "restart", "marker", time.Now().Add(1500*time.Millisecond))
	testenv.WaitFor(t, 10*time.Second, "the later schedule to fire", func() bool {
		return getChannel(t, second.URL(), "restart").Current.ID >= 2
	})
	log := history(t, second.URL(), "restart")
	if len(log) != 2 || log[0].Content != "while you were out" || log[0].Time.Before(at.Add(200*time.Millisecond)) || log[1].Content != "marker" {
		t.Fatalf("log after restart: %+v; want the message once, with its late firing time, then the marker", log)
	}
	exp := history(t, second.URL(), "expiring")
	if len(exp) != 2 || exp[1].Content != "" || exp[1].Expired != brief.ID {
		t.Fatalf("expiring log after restart: %+v", exp)
	}
	var list struct {
		Scheduled []any `json:"scheduled"`
	}
	getJSON(t, second.URL()+"/channels/restart/scheduled", &list)
	if len(list.Scheduled) != 0 {
		t.Fatalf("still scheduled after firing: %+v", list)
	}
}

// sseMessages follows channel's event stream on base and sends every
// message on the returned channel until ctx ends.
func sseMessages(t *testing.T, ctx context.Context, base, channel string) <-chan announce.Message {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/channels/"+channel+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE on %s: %s", base, resp.Status)
	}
	out := make(chan announce.Message, 256)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m announce.Message
				if json.Unmarshal([]byte(data), &m) == nil && m.ID > 0 {
					out <- m
				}
			}
		}
	}()
	return out
}

// Schedules made on two nodes sharing Redis, all due at the same moment,
// fire exactly once each (both nodes try: each node's timer fires every
// due schedule, its own and the other's), and every node's observers get
// every message once. A TTL set on one node expires on both.
func TestScheduleFiresOnceAcrossRedisNodes(t *testing.T) {
	scheduleFiresOnceAcross(t, "redis://"+testenv.Redis(t))
}

// On Redis Cluster, where a channel's schedules live in its slot and an
// index finds the due channels.
func TestScheduleFiresOnceAcrossRedisClusterNodes(t *testing.T) {
	scheduleFiresOnceAcross(t, testenv.StartRedisCluster(t).URL())
}

// scheduleFiresOnceAcross: 20 schedules posted on two nodes of the Redis
// at url fire once each, in id order on both nodes, none early; a TTL
// set on one node expires on the other too.
func scheduleFiresOnceAcross(t *testing.T, url string) {
	a := start(t, serve.Config{Redis: url})
	b := start(t, serve.Config{Redis: url})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	onA := sseMessages(t, ctx, a.URL(), "once")
	onB := sseMessages(t, ctx, b.URL(), "once")
	testenv.WaitFor(t, 5*time.Second, "both observers", func() bool {
		return getChannel(t, a.URL(), "once").Observers["sse"] == 1 && getChannel(t, b.URL(), "once").Observers["sse"] == 1
	})

	const n = 20
	at := time.Now().Add(700 * time.Millisecond)
	var ats sync.Map
	var wg sync.WaitGroup
	for i := range n {
		node := a
		if i%2 == 1 {
			node = b
		}
		wg.Go(func() {
			content := fmt.Sprint("m", i)
			body, _ := json.Marshal(map[string]string{"content": content, "at": at.Format(time.RFC3339Nano)})
			resp, err := httpClient.Post(node.URL()+"/channels/once/messages", "application/json", strings.NewReader(string(body)))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var sa scheduledAnswer
			if err := json.NewDecoder(resp.Body).Decode(&sa); err != nil || resp.StatusCode != http.StatusAccepted {
				t.Errorf("schedule %s: %s (%v)", content, resp.Status, err)
			}
			ats.Store(content, sa.Scheduled.At)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	for name, ch := range map[string]<-chan announce.Message{"A": onA, "B": onB} {
		seen := map[string]bool{}
		for want := uint64(1); want <= n; want++ {
			select {
			case m := <-ch:
				if m.ID != want || seen[m.Content] {
					t.Fatalf("node %s got id %d %q, want id %d and no content twice", name, m.ID, m.Content, want)
				}
				seen[m.Content] = true
				if scheduled, _ := ats.Load(m.Content); m.Time.Before(scheduled.(time.Time)) {
					t.Fatalf("%q fired at %v, before its time %v", m.Content, m.Time, scheduled)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("node %s got %d of %d messages", name, want-1, n)
			}
		}
	}
	markAfterAPoll(t, []*serve.Node{a, b}, "once", onA, onB, n)
	if log := history(t, a.URL(), "once"); len(log) != n+2 {
		t.Fatalf("history holds %d messages, want %d: a schedule fired twice or not at all", len(log), n+2)
	}

	// A TTL set on B expires on A too.
	var brief announce.Message
	postJSON(t, b.URL()+"/channels/once/messages", `{"content":"brief","ttl":"300ms"}`, http.StatusCreated, &brief)
	for name, ch := range map[string]<-chan announce.Message{"A": onA, "B": onB} {
		for _, want := range []announce.Message{brief, {ID: brief.ID + 1, Channel: "once", Expired: brief.ID}} {
			select {
			case m := <-ch:
				if m.ID != want.ID || m.Content != want.Content || m.Expired != want.Expired {
					t.Fatalf("node %s got %+v, want %+v", name, m, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("node %s never got %+v", name, want)
			}
		}
	}
	markAfterAPoll(t, []*serve.Node{a, b}, "once", onA, onB, n+4)
	if log := history(t, a.URL(), "once"); len(log) != n+6 {
		t.Fatalf("history holds %d messages, want %d: the expiry fired twice", len(log), n+6)
	}
}

// markAfterAPoll schedules a marker on each node, due more than a poll
// from now, and waits until both observers got both markers as the next
// messages after id last. Each node's scheduler fires in due order, its own
// marker at the latest: a second firing of something due earlier would
// have come before them.
func markAfterAPoll(t *testing.T, nodes []*serve.Node, channel string, onA, onB <-chan announce.Message, last uint64) {
	t.Helper()
	at := time.Now().Add(1500 * time.Millisecond)
	for i, nd := range nodes {
		schedule(t, nd.URL(), channel, fmt.Sprint("marker-", i), at)
	}
	for name, ch := range map[string]<-chan announce.Message{"A": onA, "B": onB} {
		for want := last + 1; want <= last+uint64(len(nodes)); want++ {
			select {
			case m := <-ch:
				if m.ID != want || !strings.HasPrefix(m.Content, "marker-") {
					t.Fatalf("node %s got %+v, want marker id %d: something fired twice", name, m, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("node %s never got marker id %d", name, want)
			}
		}
	}
}
