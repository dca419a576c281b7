//go:build unix

package serve_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/internal/testenv"
)

// takeoverLimit is how soon after the ingesting node dies another must
// ingest (the promise); the default 5 s lease plus a 1 s retry
// leave room for a loaded machine.
const takeoverLimit = 10 * time.Second

// metricValue reads one unlabelled sample of s's /metrics; ok is false
// when the server does not answer.
func metricValue(s *server, name string) (float64, bool) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(s.URL + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// leading reports whether s holds the ingest lease.
func leading(s *server) bool {
	v, ok := metricValue(s, "announce_ingest_leading")
	return ok && v == 1
}

// Two `announce serve` processes ingest the same raw channel; after kill -9
// of the one ingesting, the other ingests within takeoverLimit, and every
// PUBLISH from then on is one message, with the next id.
func TestProcessRawIngestTakeover(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	rc := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	defer rc.Close()
	args := []string{"--redis", "redis://" + r.Addr + "/0", "--redis-subscribe", "chat"}
	nodes := []*server{startServer(t, t.TempDir(), args...), startServer(t, t.TempDir(), args...)}

	var leader, other *server
	testenv.WaitFor(t, 30*time.Second, "one node to ingest", func() bool {
		a, b := leading(nodes[0]), leading(nodes[1])
		switch {
		case a && !b:
			leader, other = nodes[0], nodes[1]
		case b && !a:
			leader, other = nodes[1], nodes[0]
		default:
			return false
		}
		return true
	})
	for i := 1; i <= 5; i++ {
		if n, err := rc.Publish(t.Context(), "chat", fmt.Sprintf("before %d", i)).Result(); err != nil || n != 1 {
			t.Fatalf("PUBLISH: %d receivers, %v; want the ingesting node alone", n, err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "the 5 messages", func() bool { return getChannel(t, other.URL, "chat").Current.ID == 5 })

	leader.kill()
	killed := time.Now()
	testenv.WaitFor(t, 2*takeoverLimit, "the other node to take over", func() bool { return leading(other) })
	took := time.Since(killed)
	t.Logf("took over %v after the kill", took.Round(time.Millisecond))
	if took > takeoverLimit {
		t.Fatalf("the other node took over %v after the kill, want within %v", took.Round(time.Millisecond), takeoverLimit)
	}
	for i := 1; i <= 5; i++ {
		if n, err := rc.Publish(t.Context(), "chat", fmt.Sprintf("after %d", i)).Result(); err != nil || n != 1 {
			t.Fatalf("PUBLISH after the takeover: %d receivers, %v", n, err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "the 5 messages after the takeover", func() bool {
		return getChannel(t, other.URL, "chat").Current.ID == 10
	})
	got := history(t, other.URL, "chat")
	for i, m := range got {
		want := fmt.Sprintf("before %d", i+1)
		if i >= 5 {
			want = fmt.Sprintf("after %d", i-4)
		}
		if m.ID != uint64(i+1) || m.Content != want {
			t.Fatalf("history[%d] = id %d %q, want id %d %q", i, m.ID, m.Content, i+1, want)
		}
	}
}
