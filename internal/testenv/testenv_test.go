package testenv_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/announce/announce/internal/testenv"
)

func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func ping(c *redis.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

func TestFreePort(t *testing.T) {
	port := testenv.FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort = %d, want a TCP port", port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("listening on the free port %d: %v", port, err)
	}
	l.Close()
}

func TestRedis(t *testing.T) {
	t.Parallel()
	addr := testenv.Redis(t)
	c := newClient(t, addr)
	if err := ping(c); err != nil {
		t.Fatalf("PING %s: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k = %q, %v; want %q", got, err, "v")
	}
}

func TestRedisStopStart(t *testing.T) {
	t.Parallel()
	s := testenv.StartRedis(t)
	c := newClient(t, s.Addr)
	if err := ping(c); err != nil {
		t.Fatalf("PING before Stop: %v", err)
	}

	s.Stop()
	if err := ping(c); err == nil {
		t.Fatalf("PING after Stop succeeded; want an error")
	}
	s.Stop() // idempotent

	s.Start()
	if err := ping(c); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	s.Start() // no-op while running
	if err := ping(c); err != nil {
		t.Fatalf("PING after a second Start: %v", err)
	}
}

func TestTwoRedisServersAreIndependent(t *testing.T) {
	t.Parallel()
	a, b := testenv.Redis(t), testenv.Redis(t)
	if a == b {
		t.Fatalf("two servers share the address %s", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := newClient(t, a).Set(ctx, "only-on-a", "1", 0).Err(); err != nil {
		t.Fatalf("SET on a: %v", err)
	}
	if n, err := newClient(t, b).Exists(ctx, "only-on-a").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS on b = %d, %v; want 0", n, err)
	}
}

func TestChromium(t *testing.T) {
	if path := testenv.Chromium(t); path == "" {
		t.Fatal("Chromium returned an empty path")
	}
}

func TestBrowserContext(t *testing.T) {
	t.Parallel()
	ctx := testenv.BrowserContext(t)
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("BrowserContext has a deadline; want none")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(`data:text/html,<title>announce testenv</title><p id="p">hello</p>`),
	); err != nil {
		t.Fatalf("navigating to a data: URL: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
	if err != nil {
		t.Fatalf("reading document.title: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("p")))
	if err != nil {
		t.Fatalf("reading #p: %v", err)
	}
	if title != "announce testenv" || text != "hello" {
		t.Fatalf("title, text = %q, %q; want %q, %q", title, text, "announce testenv", "hello")
	}
}

func TestRedisWithoutPersistenceStartsEmpty(t *testing.T) {
	t.Parallel()
	s := testenv.StartRedis(t)
	c := newClient(t, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Stop()
	s.Start()
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after a restart = %d, %v; want 0 (no persistence)", n, err)
	}
}

func TestRedisAppendOnlySurvivesKill(t *testing.T) {
	t.Parallel()
	s := testenv.StartRedisWith(t, testenv.RedisOptions{AppendOnly: true})
	c := newClient(t, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := c.ConfigGet(ctx, "appendfsync").Result(); err != nil || got["appendfsync"] != "always" {
		t.Fatalf("CONFIG GET appendfsync = %v, %v; want always", got, err)
	}
	for i := range 100 {
		if err := c.RPush(ctx, "list", i).Err(); err != nil {
			t.Fatalf("RPUSH: %v", err)
		}
	}
	s.Stop() // SIGKILL: only what is on disk survives
	s.Start()
	if n, err := c.LLen(ctx, "list").Result(); err != nil || n != 100 {
		t.Fatalf("LLEN list after kill and restart = %d, %v; want 100 (every acknowledged write)", n, err)
	}
	s.Stop()
	s.Start() // and again: the data dir is kept across every restart
	if n, err := c.LLen(ctx, "list").Result(); err != nil || n != 100 {
		t.Fatalf("LLEN list after a second restart = %d, %v; want 100", n, err)
	}
}

func TestSentinelFailover(t *testing.T) {
	s := testenv.StartSentinel(t)
	first := s.Master()
	if first != s.Redis[0].Addr {
		t.Fatalf("master %s, want %s", first, s.Redis[0].Addr)
	}
	s.Failover()
	if got := s.Master(); got != s.Redis[1].Addr {
		t.Fatalf("after SENTINEL FAILOVER the master is %s, want %s", got, s.Redis[1].Addr)
	}
	s.KillMaster()
	if got := s.Master(); got != s.Redis[0].Addr {
		t.Fatalf("after killing the master the master is %s, want %s", got, s.Redis[0].Addr)
	}
}
