package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// askOnce runs one command on the Redis server at addr through a client of
// its own, within two seconds: for polls of a server's state while it may
// be down, failing over or restarting.
func askOnce[T any](addr string, do func(context.Context, *redis.Client) (T, error)) (T, error) {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return do(ctx, cl)
}

// serverAt is the server of servers listening on addr.
func serverAt(t testing.TB, servers []*RedisServer, addr string) *RedisServer {
	t.Helper()
	for _, s := range servers {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("testenv: no Redis server at %s", addr)
	return nil
}
