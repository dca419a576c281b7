package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// ReplicatedCluster is a private Redis Cluster of three masters, each with
// one replica (appendonly yes), for tests of Cluster failover.
type ReplicatedCluster struct {
	// Servers are the six data servers; which are masters changes with
	// every failover.
	Servers []*RedisServer

	t testing.TB
}

// URL is the cluster's --redis URL, every server given as a seed.
func (c *ReplicatedCluster) URL() string {
	return (&RedisCluster{Nodes: c.Servers}).URL()
}

// StartReplicatedCluster starts six `redis-server --cluster-enabled yes`,
// joins them with `redis-cli --cluster create --cluster-replicas 1` and
// waits until every node reports cluster_state:ok and every replica is in
// sync with its master.
func StartReplicatedCluster(t testing.TB) *ReplicatedCluster {
	t.Helper()
	c := &ReplicatedCluster{t: t, Servers: createCluster(t, 6, 1, RedisOptions{AppendOnly: true})}
	for _, s := range c.Servers {
		waitUntil(t, "cluster node "+s.Addr+" to be ok, knowing six nodes, in sync", func() (bool, error) {
			info, err := clusterCommand(s.Addr, "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:6") {
				return false, err
			}
			repl, err := redisInfo(s.Addr, "replication")
			if err != nil || !strings.Contains(repl, "role:master") && !strings.Contains(repl, "master_link_status:up") {
				return false, err
			}
			// Gossip tells every node of every replica, a moment later.
			slots, err := slotsOf(s.Addr)
			for _, r := range slots {
				if len(r.Nodes) < 2 {
					return false, err
				}
			}
			return len(slots) == 3, err
		})
	}
	return c
}

// ReplicaOf returns the server that replicates the master of key's slot.
func (c *ReplicatedCluster) ReplicaOf(key string) *RedisServer {
	c.t.Helper()
	slots, err := c.slots()
	if err != nil {
		c.t.Fatalf("testenv: CLUSTER SLOTS: %v", err)
	}
	slot := keySlot(c.t, c.Servers[0].Addr, key)
	for _, r := range slots {
		if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 1 {
			return c.server(r.Nodes[1].Addr)
		}
	}
	c.t.Fatalf("testenv: no replica serves slot %d of %q: %+v", slot, key, slots)
	return nil
}

// Failover runs CLUSTER FAILOVER on the replica of key's slot master, a
// manual failover: the master stops taking writes until its replica has
// caught up, then they swap. It waits until every server names the
// replica as the slot's master and the old master replicates it.
func (c *ReplicatedCluster) Failover(key string) (promoted *RedisServer) {
	c.t.Helper()
	replica := c.ReplicaOf(key)
	if _, err := clusterCommand(replica.Addr, "FAILOVER"); err != nil {
		c.t.Fatalf("testenv: CLUSTER FAILOVER on %s: %v", replica.Addr, err)
	}
	slot := keySlot(c.t, c.Servers[0].Addr, key)
	for _, s := range c.Servers {
		waitUntil(c.t, fmt.Sprintf("%s to name %s master of slot %d", s.Addr, replica.Addr, slot), func() (bool, error) {
			slots, err := slotsOf(s.Addr)
			for _, r := range slots {
				if int64(r.Start) <= slot && slot <= int64(r.End) {
					return r.Nodes[0].Addr == replica.Addr && len(r.Nodes) > 1, err
				}
			}
			return false, err
		})
	}
	return replica
}

func (c *ReplicatedCluster) slots() ([]redis.ClusterSlot, error) { return slotsOf(c.Servers[0].Addr) }

// slotsOf is CLUSTER SLOTS on addr.
func slotsOf(addr string) ([]redis.ClusterSlot, error) {
	return askOnce(addr, func(ctx context.Context, cl *redis.Client) ([]redis.ClusterSlot, error) {
		return cl.ClusterSlots(ctx).Result()
	})
}

func (c *ReplicatedCluster) server(addr string) *RedisServer { return serverAt(c.t, c.Servers, addr) }

// clusterCommand sends CLUSTER sub to addr and returns its text answer.
func clusterCommand(addr, sub string) (string, error) {
	return askOnce(addr, func(ctx context.Context, cl *redis.Client) (string, error) {
		return cl.Do(ctx, "CLUSTER", sub).Text()
	})
}

func keySlot(t testing.TB, addr, key string) int64 {
	t.Helper()
	slot, err := askOnce(addr, func(ctx context.Context, cl *redis.Client) (int64, error) {
		return cl.ClusterKeySlot(ctx, key).Result()
	})
	if err != nil {
		t.Fatalf("testenv: CLUSTER KEYSLOT: %v", err)
	}
	return slot
}
