package redis_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/announce/storetest"
	"github.com/announce/announce/internal/testenv"
)

// spreadChannels returns channel names, at least two on each of the
// cluster's masters, so a test exercises every shard.
func spreadChannels(t *testing.T, cc *goredis.ClusterClient, prefix string) []string {
	t.Helper()
	perMaster := map[string]int{}
	var out []string
	for i := 0; len(perMaster) < 3 || minCount(perMaster) < 2; i++ {
		if i > 1000 {
			t.Fatalf("channels do not spread over 3 masters: %v", perMaster)
		}
		ch := fmt.Sprintf("spread-%d", i)
		node, err := cc.MasterForKey(t.Context(), prefix+"{"+ch+"}")
		if err != nil {
			t.Fatal(err)
		}
		perMaster[node.Options().Addr]++
		out = append(out, ch)
	}
	return out
}

func minCount(m map[string]int) int {
	low := -1
	for _, n := range m {
		if low < 0 || n < low {
			low = n
		}
	}
	return low
}

// TestCluster runs, on one 3-master Redis Cluster, the store conformance
// suites and the checks that matter on Cluster: sharded pub/sub reaching
// every node's broker from every shard, the function library on every
// master, idempotency keys in their channel's slot.
func TestCluster(t *testing.T) {
	c := testenv.StartRedisCluster(t)
	url := c.URL()
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{c.Nodes[0].Addr}})
	t.Cleanup(func() { _ = cc.Close() })

	opener := func(t *testing.T, history int) announce.Store {
		s, err := redis.Open(redis.Config{URL: url, History: history, Prefix: uniquePrefix()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
	t.Run("Conformance", func(t *testing.T) { storetest.Run(t, opener) })
	t.Run("Schedule", func(t *testing.T) { storetest.RunSchedule(t, opener) })
	t.Run("Admin", func(t *testing.T) { storetest.RunAdmin(t, opener) })

	// Schedules made while two other nodes poll Due and fire are each
	// found and fired once: Due settling a channel's index entry while a
	// schedule comes in does not drop it.
	t.Run("ScheduleWhileFiring", func(t *testing.T) {
		st, err := redis.Open(redis.Config{URL: url, Prefix: uniquePrefix()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		const total, channels = 300, 5
		var fired atomic.Int64
		fire := func() (int, error) {
			due, _, err := st.Due(context.Background(), time.Now(), 0)
			for _, sc := range due {
				if _, ok, err := st.Fire(context.Background(), announce.Firing{Scheduled: sc, Claim: true, Time: time.Now()}); err != nil {
					return 0, err
				} else if ok {
					fired.Add(1)
				}
			}
			return len(due), err
		}
		stop := make(chan struct{})
		errs := make(chan error, 2)
		for range 2 { // two polling nodes
			go func() {
				for {
					select {
					case <-stop:
						errs <- nil
						return
					default:
					}
					if _, err := fire(); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for i := range total {
			sc := announce.Scheduled{ID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i),
				Channel: fmt.Sprintf("race-%d", i%channels), Content: fmt.Sprint(i),
				At: time.Now().Add(-time.Millisecond).UTC().Truncate(time.Millisecond)}
			if err := st.Schedule(context.Background(), sc, 0); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for {
			n, err := fire()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		if n := fired.Load(); n != total {
			t.Fatalf("%d of %d schedules fired: the index lost some", n, total)
		}
	})

	t.Run("BrokersOnEveryShard", func(t *testing.T) {
		prefix := uniquePrefix()
		nodes := []*node{newClusterNode(t, url, prefix), newClusterNode(t, url, prefix)}
		channels := spreadChannels(t, cc, prefix)
		for _, n := range nodes {
			for _, ch := range channels {
				n.watch(t, ch)
			}
		}
		const each = 5
		for i := range each {
			for j, ch := range channels {
				m, err := nodes[(i+j)%2].store.Append(t.Context(), ch, fmt.Sprintf("%s %d", ch, i), time.Now())
				if err != nil || m.ID != uint64(i+1) {
					t.Fatalf("Append on %s: %+v, %v; want id %d", ch, m, err, i+1)
				}
			}
		}
		for k, n := range nodes {
			for _, ch := range channels {
				got := n.sink.waitMessages(t, ch, each)
				for i, m := range got {
					if m.ID != uint64(i+1) || m.Content != fmt.Sprintf("%s %d", ch, i) {
						t.Fatalf("node %d, %s: delivered %+v at %d", k, ch, got, i)
					}
				}
			}
			if !n.broker.Healthy() || n.broker.Ping(t.Context()) != nil {
				t.Errorf("node %d: broker not healthy: %v", k, n.broker.Ping(t.Context()))
			}
		}
		// A delete is announced on the channel's shard to every node.
		if err := nodes[0].store.Delete(t.Context(), channels[1]); err != nil {
			t.Fatal(err)
		}
		for k, n := range nodes {
			testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("node %d told of the delete", k), func() bool {
				n.sink.mu.Lock()
				defer n.sink.mu.Unlock()
				return slices.Contains(n.sink.deleted, channels[1])
			})
		}
		// Unwatched, a channel's shard subscription is gone.
		nodes[0].broker.Unwatch(channels[0])
		nodes[1].broker.Unwatch(channels[0])
		testenv.WaitFor(t, 5*time.Second, "no shard subscriber left", func() bool {
			n, err := cc.PubSubShardNumSub(t.Context(), prefix+"{"+channels[0]+"}").Result()
			return err == nil && n[prefix+"{"+channels[0]+"}"] == 0
		})
	})

	t.Run("FunctionOnEveryMaster", func(t *testing.T) {
		st, err := redis.Open(redis.Config{URL: url, History: 10})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		lib, err := st.LoadLibrary(t.Context(), 100, time.Hour)
		if err != nil {
			t.Fatalf("LoadLibrary: %v", err)
		}
		t.Cleanup(func() { _ = lib.Close() })
		n := newClusterNode(t, url, redis.DefaultPrefix)
		channels := spreadChannels(t, cc, redis.DefaultPrefix)
		for _, ch := range channels {
			n.watch(t, ch)
			if _, err := st.Append(t.Context(), ch, "over http", time.Now()); err != nil {
				t.Fatal(err)
			}
			id, err := cc.FCall(t.Context(), "announce_publish", []string{ch}, "from "+ch).Int64()
			if err != nil || id != 2 {
				t.Fatalf("FCALL on %s: %d, %v; want id 2", ch, id, err)
			}
			if _, err := cc.FCall(t.Context(), "announce_publish", []string{ch}, strings.Repeat("x", 101)).Result(); err == nil {
				t.Fatalf("FCALL of oversized content on %s succeeded", ch)
			}
		}
		for _, ch := range channels {
			if got := n.sink.waitMessages(t, ch, 2); got[1].ID != 2 || got[1].Content != "from "+ch {
				t.Fatalf("%s: delivered %+v", ch, got)
			}
		}
	})

	// A resharding moves a watched channel's slot to another master: the
	// store's ops answer 503 at most until the client learns the new
	// owner, and the broker follows the channel to its new shard, the
	// messages published meanwhile recovered by a resync.
	t.Run("SlotMoves", func(t *testing.T) {
		prefix := uniquePrefix()
		n := newClusterNode(t, url, prefix, redis.BrokerConfig{PingInterval: 100 * time.Millisecond})
		ch := "moving"
		n.watch(t, ch)
		if _, err := n.store.Append(t.Context(), ch, "before", time.Now()); err != nil {
			t.Fatal(err)
		}
		n.sink.waitMessages(t, ch, 1)
		owner, err := cc.MasterForKey(t.Context(), prefix+"{"+ch+"}")
		if err != nil {
			t.Fatal(err)
		}
		to := 0
		if c.Nodes[0].Addr == owner.Options().Addr {
			to = 1
		}
		c.MoveSlot(t, prefix+"{"+ch+"}", to)
		var m announce.Message
		testenv.WaitFor(t, 10*time.Second, "an append after the move", func() bool {
			m, err = n.store.Append(t.Context(), ch, "after", time.Now())
			return err == nil
		})
		if m.ID != 2 {
			t.Fatalf("append after the move got id %d, want 2: the id key moved with the slot", m.ID)
		}
		testenv.WaitFor(t, 10*time.Second, "the resync after the move", func() bool { return n.sink.resynced(ch) > 0 })
		// The resync is the sink's to act on (the hub reads the history);
		// live messages from now on come from the new shard.
		if _, err := n.store.Append(t.Context(), ch, "live", time.Now()); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, "the live message from the new shard", func() bool {
			got := n.sink.messages(ch)
			return len(got) > 0 && got[len(got)-1].Content == "live"
		})
		if err := n.broker.Ping(t.Context()); err != nil {
			t.Errorf("broker after the move: %v", err)
		}
		if r := n.broker.Reconnects(); r != 0 {
			t.Errorf("the move cost %d reconnects, want none: it is a watch on one shard and an unwatch on the other", r)
		}
	})

	t.Run("Idempotency", func(t *testing.T) {
		prefix := uniquePrefix()
		a, err := redis.Open(redis.Config{URL: url, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		idem := a.Idempotency(0)
		var runs atomic.Int64
		for _, ch := range spreadChannels(t, cc, prefix) {
			for try := range 2 {
				e, replayed, err := idem.Do(context.Background(), ch, "k", "hello", publisher(a, ch, "hello", &runs))
				if err != nil || e.ID != 1 || replayed != (try == 1) {
					t.Fatalf("%s try %d: %+v, replayed %v, %v", ch, try, e, replayed, err)
				}
			}
		}
	})
}

// newClusterNode is newNode on a Cluster URL; bcfg, if given, adjusts the broker.
func newClusterNode(t *testing.T, url, prefix string, bcfg ...redis.BrokerConfig) *node {
	t.Helper()
	n := &node{sink: new(sink)}
	st, err := redis.Open(redis.Config{URL: url, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	n.store = st
	var cfg redis.BrokerConfig
	if len(bcfg) > 0 {
		cfg = bcfg[0]
	}
	cfg.URL, cfg.Prefix = url, prefix
	n.startBroker(t, cfg)
	return n
}
