package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// redisStartTimeout bounds how long Start waits for a new redis-server to
// answer PING. A healthy one answers in milliseconds; the margin is for
// loaded CI machines running tests in parallel under -race.
const redisStartTimeout = 20 * time.Second

// RedisServer is a private redis-server for one test: loopback only, its
// working directory a t.TempDir. Stop and Start take it down and bring it
// back on the same address, for tests of what clients do when Redis goes
// away. Without persistence (the default) it starts empty each time; with
// RedisOptions.AppendOnly it reloads what it had acknowledged.
type RedisServer struct {
	// Addr is "127.0.0.1:port", fixed for the server's whole life.
	Addr string

	t    testing.TB
	bin  string
	port int
	dir  string
	opts RedisOptions

	mu   sync.Mutex
	proc *redisProcess // nil while stopped
}

// redisProcess is one run of redis-server.
type redisProcess struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // the result of cmd.Wait; valid after done is closed
}

// Redis starts a private redis-server for t and returns its address
// ("127.0.0.1:port"). The server is stopped when the test ends.
func Redis(t testing.TB) (addr string) {
	t.Helper()
	return StartRedis(t).Addr
}

// RedisOptions configures StartRedisWith. The zero value is StartRedis's
// server: no persistence at all.
type RedisOptions struct {
	// AppendOnly runs Redis with --appendonly yes --appendfsync always: every
	// write is on disk before Redis acknowledges it, and the data directory
	// is kept across Stop and Start, so a Stop (SIGKILL) loses nothing that
	// was acknowledged. For tests of durability across a Redis crash.
	AppendOnly bool
	// Args are more redis-server arguments, e.g. --replicaof or
	// --cluster-enabled.
	Args []string
}

// StartRedis starts a private redis-server for t without persistence, waits
// until it answers PING, and stops it when the test ends. It fails the test
// if redis-server is not installed.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisWith is StartRedis with options.
func StartRedisWith(t testing.TB, opts RedisOptions) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testenv: redis-server not found on PATH (%v): run `make test`, "+
			"which installs it, or install the Debian package redis-server "+
			"(apt-get install redis-server)", err)
	}
	dir := t.TempDir()

	// FreePort can race with another process taking the port before
	// redis-server binds it; then redis-server exits at once, and a new port
	// is worth a try.
	var lastErr error
	for range 5 {
		port := FreePort(t)
		s := &RedisServer{
			Addr: "127.0.0.1:" + strconv.Itoa(port),
			t:    t,
			bin:  bin,
			port: port,
			dir:  dir,
			opts: opts,
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("testenv: %v", lastErr)
	return nil
}

// Start starts the server again on its address after Stop: empty, or with
// RedisOptions.AppendOnly with everything it had acknowledged. It does
// nothing if the server runs. It fails the test if the server does not come up.
func (s *RedisServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
}

// StartReplicaOf is Start with the server replicating master (--replicaof
// after its own arguments, so it wins over one of those).
func (s *RedisServer) StartReplicaOf(master string) {
	s.t.Helper()
	host, port, _ := strings.Cut(master, ":")
	if err := s.start("--replicaof", host, port); err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
}

// Output is the end (at most max bytes) of the running server's log.
func (s *RedisServer) Output(max int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return "(stopped)"
	}
	out := s.proc.out.String()
	return out[len(out)-min(len(out), max):]
}

// Stop kills the server (SIGKILL, as a crash would) and waits until it has
// exited, so its port is free when Stop returns. It does nothing if the
// server is stopped.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// start runs redis-server, with extra arguments after its own, and waits
// until it answers PING.
func (s *RedisServer) start(extra ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}

	out := new(syncBuffer)
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "", // no RDB snapshots: with AppendOnly the AOF alone is the data
		"--daemonize", "no",
		"--dir", s.dir,
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(append(args, s.opts.Args...), extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	p := &redisProcess{cmd: cmd, out: out, done: make(chan struct{})}
	if err := StartProcess(cmd, &p.err, p.done); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}

	if err := waitForPing(s.Addr, p); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("redis-server on %s did not come up: %w\nits output:\n%s",
			s.Addr, err, out.String())
	}
	s.proc = p
	return nil
}

// waitForPing waits until addr answers PING with PONG, the process exits, or
// redisStartTimeout passes.
//
// It probes with a plain TCP dial until the port accepts, because a go-redis
// client would log every refused dial and, after enough of them, pause its
// pool between probes. Each PING then uses a fresh client, so no pool state
// carries over from one attempt to the next.
func waitForPing(addr string, p *redisProcess) error {
	deadline := time.Now().Add(redisStartTimeout)
	var lastErr error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %v", p.err)
		default:
		}
		if lastErr = pingOnce(addr); lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", redisStartTimeout, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pingOnce sends one PING to addr.
func pingOnce(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	conn.Close()

	client := redis.NewClient(&redis.Options{
		Addr:            addr,
		DialTimeout:     time.Second,
		ReadTimeout:     time.Second,
		WriteTimeout:    time.Second,
		MaxRetries:      -1, // waitForPing retries, and wants each failure now
		DialerRetries:   1,
		PoolSize:        1,
		DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return client.Ping(ctx).Err()
}

// syncBuffer collects a child process's output; it is safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
