package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// redisClient is a plain Redis client of the test, as a backend would use.
func redisClient(t testing.TB, addr string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ingestingNode waits until exactly one of nodes holds the ingest lease
// and Redis counts its subscription to name, and returns it.
func ingestingNode(t testing.TB, rc *goredis.Client, name string, nodes []*node) *node {
	t.Helper()
	var leader *node
	testenv.WaitFor(t, settle, "one node to ingest", func() bool {
		leader = nil
		leading := 0
		for _, n := range nodes {
			if metric(t, n.URL(), "announce_ingest_leading") == 1 {
				leading++
				leader = n
			}
		}
		subs, err := rc.PubSubNumSub(context.Background(), name).Result()
		return leading == 1 && err == nil && subs[name] == 1
	})
	return leader
}

// observeStreams attaches a WebSocket, an SSE and a log observer of ch to
// each node, from the start.
func observeStreams(t *testing.T, ch string, nodes []*node) []*observer {
	t.Helper()
	var obs []*observer
	for _, n := range nodes {
		for _, k := range []kind{wsKind, sseKind, logKind} {
			obs = append(obs, newObserver(t, k, ch, []string{n.URL()}, ptr(0)))
		}
	}
	waitConnected(t, obs)
	return obs
}

// checkIDs asserts that o received ids 1..len(contents), in order, once
// each, id i carrying contents[i-1].
func checkIDs(t *testing.T, o *observer, contents []string) {
	t.Helper()
	got := o.messages()
	if len(got) != len(contents) {
		t.Errorf("%s: %d messages, want %d\n%s", o.name, len(got), len(contents), o.report())
		return
	}
	for i, m := range got {
		if m.ID != uint64(i+1) || m.Content != contents[i] {
			t.Errorf("%s: message %d is id %d %q, want id %d %q", o.name, i, m.ID, m.Content, i+1, contents[i])
			return
		}
	}
}

// Two nodes started with the same --redis-subscribe list: 50 raw
// PUBLISHes become ids 1..50 on every observer of both nodes, each once.
func TestRawIngestTwoNodesExactlyOnce(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	nodes := startCluster(t, r.Addr, 2, func(c *serve.Config) { c.RedisSubscribe = []string{"chat", "feed.*"} })
	rc := redisClient(t, r.Addr)
	ingestingNode(t, rc, "chat", nodes)
	obs := observeStreams(t, "chat", nodes)

	var contents []string
	for i := range 50 {
		c := fmt.Sprintf("[12:00:%02d] alice: hi %d", i, i)
		contents = append(contents, c)
		if n, err := rc.Publish(t.Context(), "chat", c).Result(); err != nil || n != 1 {
			t.Fatalf("PUBLISH chat: %d receivers, %v; want the one ingesting node", n, err)
		}
	}
	waitReached(t, obs, 50, contents[49])
	for _, o := range obs {
		checkClean(t, o)
		checkIDs(t, o, contents)
	}
	// A pattern name: each channel it matches has its own sequence.
	for _, ch := range []string{"feed.sports", "feed.news", "feed.sports"} {
		if err := rc.Publish(t.Context(), ch, "on "+ch).Err(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, settle, "feed.sports to reach id 2", func() bool { return current(t, nodes[1], "feed.sports").ID == 2 })
	if news := current(t, nodes[0], "feed.news"); news.ID != 1 || news.Content != "on feed.news" {
		t.Fatalf("feed.news: %+v, want id 1", news)
	}
	// The counter moves just after the append, which the checks above saw.
	var total float64
	testenv.WaitFor(t, settle, "the ingest counters to reach 53", func() bool {
		total = metric(t, nodes[0].URL(), "announce_ingested_total") + metric(t, nodes[1].URL(), "announce_ingested_total")
		return total >= 53
	})
	if total != 53 {
		t.Fatalf("the nodes ingested %v messages in all, want 53", total)
	}
}

// Payloads that are no valid content and names that are no channel are
// dropped and counted by reason; the node stays healthy and the next
// valid PUBLISH gets the next id.
func TestRawIngestDropsInvalid(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	nodes := startCluster(t, r.Addr, 1, func(c *serve.Config) {
		c.RedisSubscribe = []string{"chat", "feed*"}
		c.MaxMessage = 16
	})
	rc := redisClient(t, r.Addr)
	n := ingestingNode(t, rc, "chat", nodes)
	raw := []struct{ channel, payload string }{
		{"chat", "first"},
		{"chat", ""},
		{"chat", "\xff\xfe"},
		{"chat", strings.Repeat("x", 17)},
		{"feed bad", "x"},
		{"feed/" + strings.Repeat("y", 70), "x"},
		{"chat", "second"},
	}
	for _, m := range raw {
		if err := rc.Publish(t.Context(), m.channel, m.payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var cur announce.Message
	testenv.WaitFor(t, settle, "the second valid message", func() bool {
		cur = current(t, n, "chat")
		return cur.Content == "second"
	})
	if cur.ID != 2 {
		t.Fatalf("the second valid message has id %d, want 2", cur.ID)
	}
	want := map[string]float64{"empty": 1, "not_utf8": 1, "too_large": 1, "bad_channel": 2, "unavailable": 0}
	for reason, v := range want {
		name := `announce_ingest_dropped_total{reason="` + reason + `"}`
		if got := metric(t, n.URL(), name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	if got := status(n.URL(), "/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz after drops: %d", got)
	}
}

// The seed backends' own lines, unchanged but for the address: PHP's
// $redis->publish and Flask's r.publish reach announce observers; and both
// languages publish with an acknowledgement through FCALL.
func TestRawIngestFromPHPAndPython(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	host, port, _ := strings.Cut(r.Addr, ":")
	nodes := startCluster(t, r.Addr, 1, func(c *serve.Config) { c.RedisSubscribe = []string{"channel", "chat"} })
	ingestingNode(t, redisClient(t, r.Addr), "channel", nodes)
	obs := observeStreams(t, "channel", nodes)
	chat := observeStreams(t, "chat", nodes)

	php := fmt.Sprintf(`$redis = new Redis(); $redis->pconnect("%s", %s); $ret = $redis->publish("channel", "data from PHP"); var_dump($ret);`, host, port)
	if out := run(t, "php", "-r", php); strings.TrimSpace(out) != "int(1)" {
		t.Fatalf("php publish printed %q, want int(1) (one subscriber: the ingesting node)", out)
	}
	py := fmt.Sprintf("import redis\nr = redis.Redis(host=%q, port=%s)\nr.publish('chat', u'[%%s] %%s: %%s' %% ('12:00:00', 'alice', 'hi'))\n", host, port)
	run(t, "/usr/bin/python3", "-c", py)
	waitReached(t, obs, 1, "data from PHP")
	waitReached(t, chat, 1, "[12:00:00] alice: hi")

	phpFCall := fmt.Sprintf(`$redis = new Redis(); $redis->connect("%s", %s); var_dump($redis->rawCommand("FCALL", "announce_publish", 1, "channel", "acknowledged from PHP"));`, host, port)
	if out := run(t, "php", "-r", phpFCall); strings.TrimSpace(out) != "int(2)" {
		t.Fatalf("php fcall printed %q, want int(2)", out)
	}
	pyFCall := fmt.Sprintf("import redis\nr = redis.Redis(host=%q, port=%s)\nprint(r.fcall('announce_publish', 1, 'chat', 'acknowledged from Python'))\n", host, port)
	if out := run(t, "/usr/bin/python3", "-c", pyFCall); strings.TrimSpace(out) != "2" {
		t.Fatalf("python fcall printed %q, want 2", out)
	}
	waitReached(t, obs, 2, "acknowledged from PHP")
	waitReached(t, chat, 2, "acknowledged from Python")
	cli := run(t, "redis-cli", "-h", host, "-p", port, "FCALL", "announce_publish", "1", "chat", "from redis-cli")
	if id, err := strconv.Atoi(strings.TrimSpace(cli)); err != nil || id != 3 {
		t.Fatalf("redis-cli FCALL printed %q, want 3", cli)
	}
	cli = run(t, "redis-cli", "-h", host, "-p", port, "FCALL", "announce_publish", "1", "chat", "")
	if !strings.Contains(cli, "content is empty") {
		t.Fatalf("redis-cli FCALL of empty content printed %q, want the error", cli)
	}
	waitReached(t, chat, 3, "from redis-cli")
}

// current is ch's current message in the store n uses.
func current(t testing.TB, n *node, ch string) announce.Message {
	t.Helper()
	m, err := n.Hub().Store().Current(context.Background(), ch)
	if err != nil {
		t.Fatalf("current message of %s: %v", ch, err)
	}
	return m
}

// run runs a command to completion (at most a minute) and returns its stdout.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}
