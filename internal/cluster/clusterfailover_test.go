package cluster_test

import (
	"fmt"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// Two nodes on a Redis Cluster of three masters with a replica each follow
// a manual failover (CLUSTER FAILOVER on a replica) of one master: on a
// channel of every shard, publishing answers 201 again, the channel of the
// failed-over shard goes on with its id sequence, and observers of every
// transport on both nodes get every acknowledged message once, in order,
// what the subscription moved missed recovered from history. A manual
// failover waits for the replica to catch up, so nothing acknowledged is
// lost (an unplanned one may: announce does not WAIT on Cluster, see
// docs/operations.md).
func TestRedisClusterFailoverFollowed(t *testing.T) {
	t.Parallel()
	c := testenv.StartReplicatedCluster(t)
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{c.Servers[0].Addr}})
	t.Cleanup(func() { _ = cc.Close() })
	nodes := make([]*node, 2)
	for i := range nodes {
		nodes[i] = startNode(t, serve.Config{Redis: c.URL(), History: 1000})
	}
	channels := channelPerMaster(t, cc)
	obs := map[string][]*observer{}
	ledgers := map[string]*ledger{}
	for _, ch := range channels {
		obs[ch] = observeEverywhere(t, ch, nodes, ptr(0))
		ledgers[ch] = newLedger()
	}
	last := map[string]uint64{}
	round := func(name string) {
		for i := range 10 {
			for j, ch := range channels {
				id := publishUntilAcked(t, ledgers[ch], nodes[(i+j)%2].URL(), ch, fmt.Sprintf("%s %s %d", ch, name, i))
				if id <= last[ch] {
					t.Fatalf("%s: id %d after %d: the sequence went back", ch, id, last[ch])
				}
				last[ch] = id
			}
		}
	}
	round("before")
	failed := channels[0]
	promoted := c.Failover("announce:{" + failed + "}")
	t.Logf("%s's master failed over to %s", failed, promoted.Addr)
	round("after CLUSTER FAILOVER")
	for _, ch := range channels {
		waitAtLeast(t, obs[ch], last[ch])
		if unacked := checkAll(t, obs[ch], ledgers[ch], last[ch]); unacked > 0 {
			t.Logf("%s: %d messages stored without an acknowledgement (503 with the outcome unknown)", ch, unacked/len(obs[ch]))
		}
	}
}
