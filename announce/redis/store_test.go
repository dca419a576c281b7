package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/announce/storetest"
	"github.com/announce/announce/internal/testenv"
)

var prefixes atomic.Int64

// uniquePrefix lets the tests of one run share a redis-server without seeing
// each other's keys, which also exercises Config.Prefix.
func uniquePrefix() string { return fmt.Sprintf("t%d:", prefixes.Add(1)) }

func openStore(t testing.TB, addr string, cfg redis.Config) *redis.Store {
	t.Helper()
	cfg.URL = "redis://" + addr
	s, err := redis.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// storeOpener opens, for the storetest suites, a store on addr under a
// fresh prefix (the suite closes it).
func storeOpener(addr string) func(t *testing.T, history int) announce.Store {
	return func(t *testing.T, history int) announce.Store {
		s, err := redis.Open(redis.Config{URL: "redis://" + addr, History: history, Prefix: uniquePrefix()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

// rawClient talks to the test's redis-server directly, to check what the
// store wrote.
func rawClient(t testing.TB, addr string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestStoreConformance(t *testing.T) {
	addr := testenv.Redis(t)
	storetest.Run(t, storeOpener(addr))
}

func TestOpenValidates(t *testing.T) {
	for name, cfg := range map[string]redis.Config{
		"NoURL":        {},
		"BadScheme":    {URL: "http://localhost:6379"},
		"BracePrefix":  {URL: "redis://localhost:6379", Prefix: "a{b}:"},
		"BadDatabase":  {URL: "redis://localhost:6379/x"},
		"UnknownParam": {URL: "redis://localhost:6379/0?bogus=1"},
		"NoScheme":     {URL: "localhost:6379"},
		"UnknownMode":  {URL: "redis+bogus://localhost:6379"},
		"NoMasterName": {URL: "redis+sentinel://localhost:26379"},
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := redis.Open(cfg); err == nil {
				_ = s.Close()
				t.Fatalf("Open(%+v) succeeded, want an error", cfg)
			}
		})
	}
}

// TestStoredJSONIsEncodingJSON checks that the JSON the script assembles is
// byte for byte what encoding/json makes of the returned Message, for content
// that encoding/json escapes and for a zero time (omitted by omitzero).
func TestStoredJSONIsEncodingJSON(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	s := openStore(t, addr, redis.Config{Prefix: prefix})
	raw := rawClient(t, addr)
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.FixedZone("X", -7*3600))
	for i, c := range []struct {
		content string
		at      time.Time
	}{
		{"Server maintenance at 22:00", at},
		{`<script>alert("x & y")</script>`, at},
		{"line\nbreak\ttab \\ back \u2028 \u00e9\U0001F600 \x01", at},
		{`{"json":"in content"}`, time.Time{}},
		{"whole second", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		m, err := s.Append(t.Context(), "json.ch:1", c.content, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != uint64(i+1) {
			t.Fatalf("id = %d, want %d", m.ID, i+1)
		}
		want, _ := json.Marshal(m)
		got, err := raw.LIndex(t.Context(), prefix+"{json.ch:1}:history", -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("stored JSON\n got %s\nwant %s", got, want)
		}
		cur, err := s.Current(t.Context(), "json.ch:1")
		if err != nil {
			t.Fatal(err)
		}
		if cur != m {
			t.Errorf("Current = %+v, want what Append returned, %+v", cur, m)
		}
	}
}

// TestKeyLayout pins the documented keys: operators inspect them with redis-cli.
func TestKeyLayout(t *testing.T) {
	addr := testenv.Redis(t)
	s := openStore(t, addr, redis.Config{}) // default prefix
	if _, err := s.Append(t.Context(), "news", "hello", time.Now()); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, addr)
	keys, err := raw.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"announce:{news}:id": true, "announce:{news}:history": true, "announce:channels": true}
	if len(keys) != len(want) || !want[keys[0]] || !want[keys[1]] || !want[keys[2]] {
		t.Fatalf("keys = %q, want %v", keys, want)
	}
}

// TestUnavailableWhenRedisIsDown checks the 503 promise: with Redis gone,
// every operation fails with announce.ErrUnavailable well within 2 s.
func TestUnavailableWhenRedisIsDown(t *testing.T) {
	srv := testenv.StartRedis(t)
	s := openStore(t, srv.Addr, redis.Config{Prefix: uniquePrefix()})
	if _, err := s.Append(t.Context(), "down", "before", time.Now()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	checkUnavailable(t, s, 2*time.Second)

	srv.Start() // empty again: testenv's server keeps no data
	testenv.WaitFor(t, 5*time.Second, "Append after restart", func() bool {
		m, err := s.Append(t.Context(), "down", "after", time.Now())
		return err == nil && m.ID == 1
	})
}

// TestUnavailableWhenRedisHangs covers a Redis that accepts connections but
// never answers (a partition, a stuck server): OpTimeout still bounds each op.
func TestUnavailableWhenRedisHangs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() }) // hold it open, say nothing
		}
	}()
	s := openStore(t, l.Addr().String(), redis.Config{OpTimeout: 300 * time.Millisecond})
	checkUnavailable(t, s, time.Second)
}

func checkUnavailable(t *testing.T, s *redis.Store, within time.Duration) {
	t.Helper()
	ops := map[string]func(ctx context.Context) error{
		"Append": func(ctx context.Context) error {
			_, err := s.Append(ctx, "down", "lost", time.Now())
			return err
		},
		"Current": func(ctx context.Context) error { _, err := s.Current(ctx, "down"); return err },
		"Since":   func(ctx context.Context) error { _, err := s.Since(ctx, "down", 0, 0); return err },
		"Ping":    s.Ping,
	}
	for name, op := range ops {
		start := time.Now()
		err := op(t.Context())
		took := time.Since(start)
		if !errors.Is(err, announce.ErrUnavailable) {
			t.Errorf("%s with Redis unreachable: err = %v, want announce.ErrUnavailable", name, err)
		}
		if took > within {
			t.Errorf("%s with Redis unreachable took %v, want at most %v", name, took, within)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	s := openStore(b, testenv.Redis(b), redis.Config{})
	storetest.BenchAppend(b, s)
}

func TestStoreAdminConformance(t *testing.T) {
	addr := testenv.Redis(t)
	storetest.RunAdmin(t, storeOpener(addr))
}
