package redis_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/internal/testenv"
)

// On Sentinel a publish whose replica did not confirm it answers 503, but
// its Idempotency-Key record is already on the master. A retry must not
// acknowledge that message until a replica has it: a failover would lose
// it. With the replica frozen the retry answers 503 too; once the replica
// is back it replays the very message.
func TestSentinelReplayWaitsForTheReplica(t *testing.T) {
	s := testenv.StartSentinel(t)
	prefix := uniquePrefix()
	st, err := redis.Open(redis.Config{URL: s.URL, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	idem := st.Idempotency(0)
	replica := s.Redis[0]
	if replica.Addr == s.Master() {
		replica = s.Redis[1]
	}
	var runs atomic.Int64
	ctx := context.Background()
	if _, _, err := idem.Do(ctx, "ch", "warm", "up", publisher(st, "ch", "up", &runs)); err != nil {
		t.Fatalf("publish with the replica up: %v", err)
	}

	replica.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			replica.Thaw()
		}
	}()
	// The master still takes writes for min-replicas-max-lag (2 s) after
	// the replica's last ack, so this append runs and only its WAIT fails.
	_, _, err = idem.Do(ctx, "ch", "k", "hello", publisher(st, "ch", "hello", &runs))
	if !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("publish with the replica frozen: %v, want unavailable", err)
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("publish ran %d times, want 2", n)
	}
	rec, err := rawClient(t, s.Master()).Get(ctx, prefix+"{ch}:idem:k").Result()
	if err != nil || !strings.HasPrefix(rec, `{"message":`) {
		t.Fatalf("the key holds %q, %v; want the record the append wrote before its WAIT failed", rec, err)
	}
	env, replayed, err := idem.Do(ctx, "ch", "k", "hello", publisher(st, "ch", "hello", &runs))
	if err == nil {
		t.Fatalf("retry with the replica frozen answered %+v (replayed %v): acknowledged before any replica had it", env.Message, replayed)
	}
	if !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("retry with the replica frozen: %v, want unavailable", err)
	}
	replica.Thaw()
	thawed = true

	deadline := time.Now().Add(30 * time.Second)
	for {
		env, replayed, err = idem.Do(ctx, "ch", "k", "hello", publisher(st, "ch", "hello", &runs))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("retry after the replica is back: %v", err)
	}
	if env.ID != 2 || env.Content != "hello" {
		t.Fatalf("retry answered %+v (replayed %v), want id 2 %q", env.Message, replayed, "hello")
	}
	if cur, err := st.Current(ctx, "ch"); err != nil || cur.ID != 2 {
		t.Fatalf("current is %+v, %v; want id 2: the key published once", cur, err)
	}
}
