package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// channelPerMaster returns one channel name whose slot each master of the
// cluster serves, with announce's default key prefix.
func channelPerMaster(t *testing.T, cc *goredis.ClusterClient) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for i := 0; len(out) < 3; i++ {
		if i > 1000 {
			t.Fatalf("no channel for every master: %v", seen)
		}
		ch := fmt.Sprintf("shard-%d", i)
		node, err := cc.MasterForKey(t.Context(), "announce:{"+ch+"}")
		if err != nil {
			t.Fatal(err)
		}
		if addr := node.Options().Addr; !seen[addr] {
			seen[addr] = true
			out = append(out, ch)
		}
	}
	return out
}

// Two nodes on a 3-master Redis Cluster are one service: on a channel of
// each shard, messages published alternately on both nodes reach the
// observers of every transport on both nodes as exactly ids 1..N, in
// order; an Idempotency-Key retried on the other node replays; presence
// adds up over the nodes; a raw
// PUBLISH sent to any cluster node is ingested once.
func TestRedisClusterTwoNodes(t *testing.T) {
	t.Parallel()
	c := testenv.StartRedisCluster(t)
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{c.Nodes[0].Addr}})
	t.Cleanup(func() { _ = cc.Close() })
	nodes := make([]*node, 2)
	for i := range nodes {
		cfg := serve.Config{Redis: c.URL(), History: 1000, RedisSubscribe: []string{"raw", "raw.*"}}
		cfg.Presence.Node = fmt.Sprintf("node-%d", i)
		nodes[i] = startNode(t, cfg)
	}
	channels := channelPerMaster(t, cc)
	obs := map[string][]*observer{}
	for _, ch := range channels {
		obs[ch] = observeEverywhere(t, ch, nodes, ptr(0))
	}

	const n = 20
	ledgers := map[string]*ledger{}
	for _, ch := range channels {
		ledgers[ch] = newLedger()
	}
	for i := range n {
		for j, ch := range channels {
			m := mustPublish(t, ledgers[ch], nodes[(i+j)%2].URL(), ch, fmt.Sprintf("%s %d", ch, i))
			if m.ID != uint64(i+1) {
				t.Fatalf("publish %d on %s got id %d", i, ch, m.ID)
			}
		}
	}
	for _, ch := range channels {
		l := ledgers[ch]
		waitReached(t, obs[ch], n, l.content(n))
		if unacked := checkAll(t, obs[ch], l, n); unacked > 0 {
			t.Errorf("%s: %d messages delivered that no publisher was told about", ch, unacked)
		}
	}

	// An Idempotency-Key retried on the other node replays the first answer.
	first, err := publishIdem(nodes[0].URL(), channels[1], "k-1", "once")
	if err != nil || first.status != http.StatusCreated || first.msg.ID != n+1 {
		t.Fatalf("publish with a key: %+v, %v; want 201 id %d", first, err, n+1)
	}
	again, err := publishIdem(nodes[1].URL(), channels[1], "k-1", "once")
	if err != nil || !again.replayed || again.msg != first.msg {
		t.Fatalf("retry on the other node: %+v, %v; want a replay of %+v", again, err, first.msg)
	}

	// Presence: each node's entry in the channel's slot, events by plain
	// PUBLISH, which a Cluster broadcasts.
	openStream(t, nodes[0].URL()+"/channels/room/events?name=alice")
	dialWSPresence(t, nodes[1].URL(), "/channels/room/ws?name=bob")
	awaitPresence(t, urls(nodes...), "room", presence.Counts{SSE: 1, WS: 1}, "alice", "bob")

	// Plain PUBLISH reaches every cluster node, so the ingesting node hears
	// it wherever its subscription is and whichever node gets it.
	clients := make([]*goredis.Client, len(c.Nodes))
	for i, rn := range c.Nodes {
		clients[i] = redisClient(t, rn.Addr)
	}
	testenv.WaitFor(t, settle, "one node to ingest, subscribed", func() bool {
		var subs int64
		for _, rc := range clients {
			n, err := rc.PubSubNumSub(context.Background(), "raw").Result()
			if err != nil {
				return false
			}
			subs += n["raw"]
		}
		lead := metric(t, nodes[0].URL(), "announce_ingest_leading") + metric(t, nodes[1].URL(), "announce_ingest_leading")
		return lead == 1 && subs == 1
	})
	for i, rc := range clients {
		for _, ch := range []string{"raw", "raw.pattern"} {
			if err := rc.Publish(t.Context(), ch, fmt.Sprintf("%s via %d", ch, i)).Err(); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, settle, fmt.Sprintf("PUBLISH %s on cluster node %d ingested", ch, i), func() bool {
				m := current(t, nodes[(i+1)%2], ch)
				return m.ID == uint64(i+1) && m.Content == fmt.Sprintf("%s via %d", ch, i)
			})
		}
	}
}
