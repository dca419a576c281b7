package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// publishUntilAcked publishes on base until a 201, each attempt with its
// own content (so one stored despite a 503 is told apart), for at most
// settle; it returns the acknowledged id.
func publishUntilAcked(t *testing.T, l *ledger, base, ch, content string) uint64 {
	t.Helper()
	deadline := time.Now().Add(settle)
	for try := 0; ; try++ {
		c := fmt.Sprintf("%s (try %d)", content, try)
		l.attempt(c)
		p := publish(context.Background(), base, ch, c)
		if p.fail == nil && p.status == http.StatusCreated {
			if err := l.ack(p.msg); err != nil {
				t.Fatal(err)
			}
			return p.msg.ID
		}
		if p.fail == nil && p.status != http.StatusServiceUnavailable {
			t.Fatalf("publishing %q: status %d %q, want 201 or 503", c, p.status, p.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 201 within %v publishing %q: last status %d %q %v", settle, c, p.status, p.err, p.fail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two nodes on a Sentinel URL follow a forced failover (SENTINEL FAILOVER)
// and one after kill -9 of the master: publishing answers 201 again, the
// id sequence goes on, and observers of every transport on both nodes get
// every acknowledged message once, in order, gaps recovered from history.
// Nothing acknowledged is lost because a publish on Sentinel is
// acknowledged, and published to the nodes, once a replica has it (WAIT 1),
// and history reads serve nothing a replica has not confirmed: no id
// anybody saw is given again by the new master.
// The function library replicated with the data, so FCALL works on the new
// master too.
func TestSentinelFailoverFollowed(t *testing.T) {
	t.Parallel()
	s := testenv.StartSentinel(t)
	nodes := make([]*node, 2)
	for i := range nodes {
		nodes[i] = startNode(t, serve.Config{Redis: s.URL, History: 1000})
	}
	const ch = "sentinel"
	obs := observeEverywhere(t, ch, nodes, ptr(0))
	l := newLedger()
	var last uint64
	round := func(name string) {
		for i := range 10 {
			last = publishUntilAcked(t, l, nodes[i%2].URL(), ch, fmt.Sprintf("%s %d", name, i))
		}
	}
	round("before")
	s.Failover()
	round("after SENTINEL FAILOVER")
	s.KillMaster()
	round("after kill -9")

	fc := goredis.NewFailoverClient(&goredis.FailoverOptions{MasterName: testenv.SentinelMaster, SentinelAddrs: s.Sentinels})
	defer fc.Close()
	id, err := fc.FCall(t.Context(), "announce_publish", []string{ch}, "through FCALL").Int64()
	if err != nil || uint64(id) <= last {
		t.Fatalf("FCALL on the new master: %d %v, want an id above %d", id, err, last)
	}
	l.attempt("through FCALL")
	waitAtLeast(t, obs, uint64(id))
	unacked := checkAll(t, obs, l, uint64(id))
	t.Logf("%d acknowledged, %d stored without an acknowledgement (503 with the outcome unknown)", l.count(), unacked/len(obs))
}
