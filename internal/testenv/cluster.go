package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a private Redis Cluster of three masters and no replicas,
// for tests of Cluster mode; its servers stop when the test ends.
type RedisCluster struct {
	// Nodes are the three masters.
	Nodes []*RedisServer
}

// URL is the cluster's --redis URL, every master given as a seed.
func (c *RedisCluster) URL() string {
	u := "redis+cluster://" + c.Nodes[0].Addr
	for i, n := range c.Nodes[1:] {
		sep := "?"
		if i > 0 {
			sep = "&"
		}
		u += sep + "addr=" + n.Addr
	}
	return u
}

// StartRedisCluster starts three `redis-server --cluster-enabled yes` on
// free ports, joins them with `redis-cli --cluster create` (the 16384 slots
// split in three) and waits until every node reports cluster_state:ok.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	c := &RedisCluster{Nodes: createCluster(t, 3, 0, RedisOptions{})}
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	for _, n := range c.Nodes {
		if err := waitClusterOK(ctx, n.Addr); err != nil {
			t.Fatalf("testenv: cluster node %s: %v", n.Addr, err)
		}
	}
	return c
}

// createCluster starts n `redis-server --cluster-enabled yes` on free
// ports, each in its own directory (StartRedisWith's TempDir, so the
// cluster config files never clash), and joins them with `redis-cli
// --cluster create --cluster-replicas replicas`.
func createCluster(t testing.TB, n, replicas int, opts RedisOptions) []*RedisServer {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("testenv: redis-cli not found on PATH (%v): install the Debian package redis-tools", err)
	}
	opts.Args = append(opts.Args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "5000")
	var servers []*RedisServer
	args := []string{"--cluster", "create"}
	for range n {
		s := StartRedisWith(t, opts)
		servers = append(servers, s)
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+replicas)*redisStartTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	return servers
}

// waitClusterOK waits until addr reports cluster_state:ok and knows all
// three masters.
func waitClusterOK(ctx context.Context, addr string) error {
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	var last string
	for {
		info, err := client.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = info
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no cluster_state:ok: %s", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// MoveSlot moves the hash slot of key, with its keys, to master to (an
// index into Nodes), as `redis-cli --cluster reshard` would: the target
// imports, the owner migrates the keys, then every node learns the new
// owner.
func (c *RedisCluster) MoveSlot(t testing.TB, key string, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.Nodes))
	ids := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		defer clients[i].Close()
		id, err := clients[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatalf("testenv: CLUSTER MYID on %s: %v", n.Addr, err)
		}
		ids[i] = id
	}
	slot, err := clients[0].ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatalf("testenv: CLUSTER KEYSLOT: %v", err)
	}
	from := -1
	slots, err := clients[0].ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("testenv: CLUSTER SLOTS: %v", err)
	}
	for _, r := range slots {
		if int64(r.Start) <= slot && slot <= int64(r.End) {
			for i, n := range c.Nodes {
				if r.Nodes[0].Addr == n.Addr {
					from = i
				}
			}
		}
	}
	if from < 0 || from == to {
		t.Fatalf("testenv: slot %d of %q is on node %d; cannot move it to %d", slot, key, from, to)
	}
	must := func(c *redis.Client, args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("testenv: %v: %v", args, err)
		}
	}
	must(clients[to], "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from])
	must(clients[from], "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to])
	for {
		keys, err := clients[from].ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		if err != nil {
			t.Fatalf("testenv: CLUSTER GETKEYSINSLOT: %v", err)
		}
		if len(keys) == 0 {
			break
		}
		host, port, _ := strings.Cut(c.Nodes[to].Addr, ":")
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(clients[from], args...)
	}
	for _, i := range []int{to, from, 3 - to - from} {
		must(clients[i], "CLUSTER", "SETSLOT", slot, "NODE", ids[to])
	}
}
