package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the Sentinel setup monitors.
const SentinelMaster = "announce"

// Sentinel is a Redis Sentinel setup for one test: a master, a replica and
// three sentinels (quorum 2) on free loopback ports, tuned to fail over
// within a few seconds (down after 1 s).
type Sentinel struct {
	// Redis holds the two data servers, the master first at the start.
	Redis [2]*RedisServer
	// Sentinels are the sentinels' addresses.
	Sentinels []string
	// URL is the --redis URL reaching the master through the sentinels.
	URL string

	t    testing.TB
	logs []*syncBuffer // the sentinels' output, for a failure's message
}

// failoverTimeout bounds a failover's wait for a new master. A sentinel
// that finds no replica good enough (one back a moment ago, not yet
// re-checked) aborts and tries again after twice its failover-timeout
// (8 s here), so a failover may take a few attempts on a loaded machine.
const failoverTimeout = 2 * time.Minute

// StartSentinel starts the setup, waits until every sentinel knows the
// replica and the other sentinels, and stops it all when the test ends. It
// fails the test if redis-sentinel is not installed.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-sentinel")
	if err != nil {
		t.Fatalf("testenv: redis-sentinel not found on PATH (%v): run `make test`, which installs it, "+
			"or install the Debian package redis-sentinel", err)
	}
	// A master refuses writes while no replica follows it: the old master,
	// once the sentinels promoted its replica, takes no write that the
	// failover would throw away (see docs/operations.md).
	safe := []string{"--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"}
	master := StartRedisWith(t, RedisOptions{AppendOnly: true, Args: safe})
	host, port, _ := strings.Cut(master.Addr, ":")
	replica := StartRedisWith(t, RedisOptions{AppendOnly: true, Args: append([]string{"--replicaof", host, port}, safe...)})
	s := &Sentinel{Redis: [2]*RedisServer{master, replica}, t: t}
	waitUntil(t, "the replica to sync", func() (bool, error) {
		info, err := redisInfo(replica.Addr, "replication")
		return strings.Contains(info, "master_link_status:up"), err
	})
	for range 3 {
		addr, out := startSentinelProcess(t, bin, master.Addr)
		s.Sentinels = append(s.Sentinels, addr)
		s.logs = append(s.logs, out)
	}
	s.URL = "redis+sentinel://" + s.Sentinels[0] + "/0?master_name=" + SentinelMaster +
		"&addr=" + s.Sentinels[1] + "&addr=" + s.Sentinels[2]
	for _, a := range s.Sentinels {
		waitUntil(t, "sentinel "+a+" to know its peers and the replica", func() (bool, error) {
			c := sentinelClient(a)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			peers, err := c.Sentinels(ctx, SentinelMaster).Result()
			if err != nil {
				return false, err
			}
			replicas, err := c.Replicas(ctx, SentinelMaster).Result()
			return len(peers) == 2 && len(replicas) == 1, err
		})
	}
	return s
}

// Master returns the address the sentinels name as master now.
func (s *Sentinel) Master() string {
	s.t.Helper()
	c := sentinelClient(s.Sentinels[0])
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		s.t.Fatalf("testenv: SENTINEL get-master-addr-by-name: %v", err)
	}
	return addr[0] + ":" + addr[1]
}

// Server returns the data server at addr.
func (s *Sentinel) Server(addr string) *RedisServer { return serverAt(s.t, s.Redis[:], addr) }

// Failover forces a failover (SENTINEL FAILOVER) and waits until the other
// data server is master and a replica is in sync with the master. A sentinel may
// refuse the command (INPROG, NOGOODSLAVE right after a previous
// failover) or accept it and then abort, having found no good replica:
// it is asked again until a new master is named.
func (s *Sentinel) Failover() {
	s.t.Helper()
	old := s.Master()
	c := sentinelClient(s.Sentinels[0])
	defer c.Close()
	s.waitFor("SENTINEL FAILOVER to name a new master", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.Failover(ctx, SentinelMaster).Err()
		cancel()
		if err != nil {
			time.Sleep(500 * time.Millisecond)
			return false, err
		}
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if ok, err := s.promoted(old); ok || err != nil {
				return ok, err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false, fmt.Errorf("accepted, but %s is still master after 20 s", old)
	})
	s.waitSynced()
}

// KillMaster kills the master (SIGKILL), waits until the sentinels have
// promoted the replica, then starts the old master again as the new one's
// replica, as an operator would, and waits until the master has a replica
// in sync (until then it refuses writes). Started as it was, a master, it would
// wait for a sentinel to turn it into a replica, which on a loaded machine
// was seen not to happen within two minutes. A failure shows every
// sentinel's and data server's log.
func (s *Sentinel) KillMaster() {
	s.t.Helper()
	old := s.Master()
	srv := s.Server(old)
	srv.Stop()
	s.waitFor("a new master", func() (bool, error) { return s.promoted(old) })
	srv.StartReplicaOf(s.Master())
	s.waitSynced()
}

// promoted reports whether the sentinels name a master other than old
// and it says it is one.
func (s *Sentinel) promoted(old string) (bool, error) {
	now := s.Master()
	if now == old {
		return false, nil
	}
	info, err := redisInfo(now, "replication")
	return strings.Contains(info, "role:master"), err
}

// waitSynced waits until the sentinels' master is one and the other data
// server replicates it, in sync. Usually the replica is the old master;
// but sentinels with a stale view may fail over once more meanwhile,
// back to a server that had just come back as a replica.
func (s *Sentinel) waitSynced() {
	s.t.Helper()
	s.waitFor("the master's replica to be in sync", func() (bool, error) {
		m := s.Master()
		info, err := redisInfo(m, "replication")
		if err != nil || !strings.Contains(info, "role:master") {
			return false, err
		}
		_, port, _ := strings.Cut(m, ":")
		for _, r := range s.Redis {
			if r.Addr == m {
				continue
			}
			info, err := redisInfo(r.Addr, "replication")
			if err != nil || !strings.Contains(info, "role:slave") ||
				!strings.Contains(info, "master_port:"+port+"\r") || !strings.Contains(info, "master_link_status:up") {
				return false, err
			}
		}
		return true, nil
	})
}

// waitFor polls cond for up to failoverTimeout, failing the test with the
// end of a sentinel's log.
func (s *Sentinel) waitFor(what string, cond func() (bool, error)) {
	s.t.Helper()
	deadline := time.Now().Add(failoverTimeout)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for i, l := range s.logs {
				out := l.String()
				fmt.Fprintf(&b, "\nsentinel %s log ends:\n%s", s.Sentinels[i], out[max(0, len(out)-1500):])
			}
			for _, r := range s.Redis {
				info, _ := redisInfo(r.Addr, "replication")
				fmt.Fprintf(&b, "\nredis %s: %s\nlog ends:\n%s", r.Addr, info, r.Output(1500))
			}
			s.t.Fatalf("testenv: waited %v for %s (last error: %v)%s", failoverTimeout, what, err, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startSentinelProcess(t testing.TB, bin, master string) (string, *syncBuffer) {
	t.Helper()
	host, port, _ := strings.Cut(master, ":")
	var lastErr error
	for range 5 {
		sport := FreePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 2\n",
			sport, dir, SentinelMaster, host, port) +
			fmt.Sprintf("sentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 4000\n"+
				"sentinel parallel-syncs %[1]s 1\n", SentinelMaster)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		out := new(syncBuffer)
		cmd := exec.Command(bin, conf)
		cmd.Stdout, cmd.Stderr = out, out
		p := &redisProcess{cmd: cmd, out: out, done: make(chan struct{})}
		if err := StartProcess(cmd, &p.err, p.done); err != nil {
			t.Fatalf("testenv: starting redis-sentinel: %v", err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-p.done
		})
		addr := "127.0.0.1:" + strconv.Itoa(sport)
		if lastErr = waitForPing(addr, p); lastErr == nil {
			return addr, out
		}
		lastErr = fmt.Errorf("%w\nits output:\n%s", lastErr, out.String())
	}
	t.Fatalf("testenv: redis-sentinel did not come up: %v", lastErr)
	return "", nil
}

func sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
}

// redisInfo returns one section of INFO from addr.
func redisInfo(addr, section string) (string, error) {
	return askOnce(addr, func(ctx context.Context, cl *redis.Client) (string, error) {
		return cl.Info(ctx, section).Result()
	})
}

// waitUntil polls cond until it holds, failing the test after a minute.
func waitUntil(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: waited a minute for %s (last error: %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
