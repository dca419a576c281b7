package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/announce/storetest"
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
	st := openSentinelStore(t, s, prefix)
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
	_, _, err := idem.Do(ctx, "ch", "k", "hello", publisher(st, "ch", "hello", &runs))
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

// openSentinelStore opens a store with prefix on s, closed when t ends.
func openSentinelStore(t testing.TB, s *testenv.Sentinel, prefix string) *redis.Store {
	t.Helper()
	st, err := redis.Open(redis.Config{URL: s.URL, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// The store's contract holds on Sentinel, where writes wait for the
// replica and reads stop at the published watermark.
func TestSentinelStoreConformance(t *testing.T) {
	s := testenv.StartSentinel(t)
	open := func(t *testing.T, history int) announce.Store {
		st, err := redis.Open(redis.Config{URL: s.URL, History: history, Prefix: uniquePrefix()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return st
	}
	storetest.Run(t, open)
	storetest.RunAdmin(t, open)
	storetest.RunSchedule(t, open)
}

// On Sentinel a message reaches pub/sub and history readers only once a
// replica has it. With the replica frozen an append is stored but answers
// 503 and is not published: a marker PUBLISHed after it arrives first, a
// history read stops before it and the current message cannot be read
// (answering the older one would look like a sequence gone back). Once
// the replica is back, the next append publishes the held message before
// its own, in id order, each once.
func TestSentinelPublishesOnlyReplicated(t *testing.T) {
	s := testenv.StartSentinel(t)
	prefix := uniquePrefix()
	st := openSentinelStore(t, s, prefix)
	master := rawClient(t, s.Master())
	replica := s.Redis[0]
	if replica.Addr == s.Master() {
		replica = s.Redis[1]
	}
	ctx := context.Background()
	topic := prefix + "{ch}"
	sub := master.Subscribe(ctx, topic)
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		m, err := sub.ReceiveMessage(rctx)
		if err != nil {
			t.Fatalf("waiting for a message on %s: %v", topic, err)
		}
		return m.Payload
	}
	wantID := func(payload string, id uint64, content string) {
		t.Helper()
		var m announce.Message
		if err := json.Unmarshal([]byte(payload), &m); err != nil || m.ID != id || m.Content != content {
			t.Fatalf("published %q, want id %d %q", payload, id, content)
		}
	}
	if _, err := st.Append(ctx, "ch", "one", time.Now()); err != nil {
		t.Fatalf("append with the replica up: %v", err)
	}
	wantID(next(), 1, "one")

	replica.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			replica.Thaw()
		}
	}()
	// Within min-replicas-max-lag (2 s) the master still takes the write.
	if _, err := st.Append(ctx, "ch", "two", time.Now()); !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("append with the replica frozen: %v, want unavailable", err)
	}
	if n, err := master.Get(ctx, prefix+"{ch}:id").Int(); err != nil || n != 2 {
		t.Fatalf("id key %d %v, want 2: the append ran, only its WAIT failed", n, err)
	}
	if err := master.Publish(ctx, topic, "marker").Err(); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "marker" {
		t.Fatalf("published %q before the marker; the unreplicated message must not be", got)
	}
	if msgs, err := st.Since(ctx, "ch", 0, 0); err != nil || len(msgs) != 1 || msgs[0].ID != 1 {
		t.Fatalf("history with the replica frozen: %+v %v, want only id 1", msgs, err)
	}
	if cur, err := st.Current(ctx, "ch"); !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("current with the replica frozen: %+v %v, want unavailable", cur, err)
	}
	replica.Thaw()
	thawed = true

	var three announce.Message
	testenv.WaitFor(t, 30*time.Second, "an append to succeed with the replica back", func() bool {
		var err error
		three, err = st.Append(ctx, "ch", "three", time.Now())
		return err == nil
	})
	wantID(next(), 2, "two")
	for id := uint64(3); id <= three.ID; id++ { // attempts that failed their WAIT are held too
		wantID(next(), id, "three")
	}
	msgs, err := st.Since(ctx, "ch", 0, 0)
	if err != nil || len(msgs) != int(three.ID) {
		t.Fatalf("history after: %+v %v, want ids 1..%d", msgs, err, three.ID)
	}
	if cur, err := st.Current(ctx, "ch"); err != nil || cur.ID != three.ID {
		t.Fatalf("current after: %+v %v, want id %d", cur, err, three.ID)
	}
	if w, err := master.Get(ctx, prefix+"{ch}:published").Uint64(); err != nil || w != three.ID {
		t.Fatalf("published watermark %d %v, want %d", w, err, three.ID)
	}
}

// BenchmarkAppendLatency is one publisher's append after another, on one
// Redis and on Sentinel, where each append adds WAIT 1 for the replica and
// the publishing script's round trip: ns/op is the latency. Every server
// runs appendonly yes, appendfsync always, as the Sentinel setup does.
func BenchmarkAppendLatency(b *testing.B) {
	for _, mode := range []string{"redis", "sentinel"} {
		b.Run(mode, func(b *testing.B) {
			var st *redis.Store
			if mode == "sentinel" {
				st = openSentinelStore(b, testenv.StartSentinel(b), uniquePrefix())
			} else {
				st = openStore(b, testenv.StartRedisWith(b, testenv.RedisOptions{AppendOnly: true}).Addr, redis.Config{})
			}
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := st.Append(ctx, "bench", "a message of some length", time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
