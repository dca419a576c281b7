package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// A node subscribes to a channel's topic only while the channel has
// observers there: once they leave and the idle timeout passes it
// unsubscribes, and a new observer subscribes it again and receives.
func TestNodeWatchesOnlyObservedChannels(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	nodes := startCluster(t, r.Addr, 2, func(c *serve.Config) { c.IdleTimeout = 100 * time.Millisecond })
	a, b := nodes[0], nodes[1]
	rdb := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	t.Cleanup(func() { rdb.Close() })
	const ch = "idle"
	topic := "announce:{" + ch + "}" // see announce/redis/doc.go
	subscribers := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := rdb.PubSubNumSub(ctx, topic).Result()
		if err != nil {
			t.Fatalf("PUBSUB NUMSUB %s: %v", topic, err)
		}
		return n[topic]
	}
	watching := func(want int64) func() bool {
		return func() bool { return subscribers() == want }
	}

	l := newLedger()
	mustPublish(t, l, a.URL(), ch, "before anyone listens")
	if n := subscribers(); n != 0 {
		t.Fatalf("after a publish with no observers anywhere: %d subscribers of %s; want 0 (publishing needs no subscription)", n, topic)
	}

	o := newObserver(t, wsKind, ch, urls(b), ptr(1))
	waitConnected(t, []*observer{o})
	if n := subscribers(); n != 1 {
		t.Fatalf("with one observer on node B: %d subscribers of %s; want 1", n, topic)
	}
	mustPublish(t, l, a.URL(), ch, "first")
	waitReached(t, []*observer{o}, 2, "first")

	o.stop()
	testenv.WaitFor(t, settle, "node B to unsubscribe from "+topic, watching(0))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if chans, err := rdb.PubSubChannels(ctx, "announce:*").Result(); err != nil || len(chans) != 0 {
		t.Fatalf("PUBSUB CHANNELS announce:* = %v, %v; want none", chans, err)
	}

	// Missed while nobody watched: a new observer with its cursor gets it
	// from history, then live messages through a new subscription.
	mustPublish(t, l, a.URL(), ch, "while idle")
	o2 := newObserver(t, wsKind, ch, urls(b), ptr(2))
	waitConnected(t, []*observer{o2})
	if n := subscribers(); n != 1 {
		t.Fatalf("with a new observer on node B: %d subscribers of %s; want 1", n, topic)
	}
	for i := 4; i <= 6; i++ {
		mustPublish(t, l, a.URL(), ch, fmt.Sprintf("again %d", i))
	}
	waitReached(t, []*observer{o2}, 6, "again 6")
	checkClean(t, o2)
	checkExact(t, o2, l, o2.messages(), 3, 6)

	// A new observer racing the eviction, at many moments around the idle
	// timeout: it always receives what follows its cursor.
	o2.stop()
	for round := range 20 {
		time.Sleep(time.Duration(round) * 10 * time.Millisecond) // not an assertion: it varies the race
		next := l.maxID() + 1
		o := newObserver(t, []kind{wsKind, sseKind}[round%2], ch, urls(b), ptr(next-1))
		waitConnected(t, []*observer{o})
		content := fmt.Sprintf("round %d", round)
		mustPublish(t, l, a.URL(), ch, content)
		waitReached(t, []*observer{o}, next, content)
		checkClean(t, o)
		checkExact(t, o, l, o.messages(), next, next)
		o.stop()
	}
	testenv.WaitFor(t, settle, "node B to unsubscribe at last", watching(0))
}
