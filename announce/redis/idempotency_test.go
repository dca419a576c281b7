package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/internal/testenv"
)

// publisher returns a publish func appending content to st, and counts its runs.
func publisher(st *redis.Store, channel, content string, runs *atomic.Int64) func(context.Context) (*announce.Envelope, error) {
	return func(ctx context.Context) (*announce.Envelope, error) {
		runs.Add(1)
		m, err := st.Append(ctx, channel, content, time.Now())
		if err != nil {
			return nil, err
		}
		return announce.NewEnvelope(m), nil
	}
}

func TestIdempotencyRetryReplays(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	// Two stores on one prefix stand for two nodes.
	a := openStore(t, addr, redis.Config{Prefix: prefix})
	b := openStore(t, addr, redis.Config{Prefix: prefix})
	ia, ib := a.Idempotency(0), b.Idempotency(0)
	ctx := context.Background()
	var runs atomic.Int64

	first, replayed, err := ia.Do(ctx, "ch", "k1", "hello", publisher(a, "ch", "hello", &runs))
	if err != nil || replayed || first.ID != 1 {
		t.Fatalf("first Do: %+v, replayed %v, %v", first, replayed, err)
	}
	for i, idem := range []*redis.Idempotency{ia, ib} {
		again, replayed, err := idem.Do(ctx, "ch", "k1", "hello", publisher(a, "ch", "hello", &runs))
		if err != nil || !replayed {
			t.Fatalf("retry %d: replayed %v, %v", i, replayed, err)
		}
		if again.Message != first.Message || string(again.JSON) != string(first.JSON) {
			t.Errorf("retry %d answered %s, want %s", i, again.JSON, first.JSON)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("publish ran %d times, want 1", n)
	}
	// Another key, or the same key on another channel, publishes.
	if e, replayed, err := ib.Do(ctx, "ch", "k2", "hello", publisher(b, "ch", "hello", &runs)); err != nil || replayed || e.ID != 2 {
		t.Errorf("other key: %+v, replayed %v, %v", e, replayed, err)
	}
	if e, replayed, err := ib.Do(ctx, "ch2", "k1", "hello", publisher(b, "ch2", "hello", &runs)); err != nil || replayed || e.ID != 1 {
		t.Errorf("other channel: %+v, replayed %v, %v", e, replayed, err)
	}

	// The record expires with the TTL.
	raw := rawClient(t, addr)
	ttl, err := raw.TTL(ctx, prefix+"{ch}:idem:k1").Result()
	if err != nil || ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("record TTL %v, %v; want about 24h", ttl, err)
	}
}

func TestIdempotencyConcurrentPublishesOnce(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	stores := []*redis.Store{
		openStore(t, addr, redis.Config{Prefix: prefix}),
		openStore(t, addr, redis.Config{Prefix: prefix}),
	}
	var runs atomic.Int64
	slow := func(st *redis.Store) func(context.Context) (*announce.Envelope, error) {
		pub := publisher(st, "ch", "once", &runs)
		return func(ctx context.Context) (*announce.Envelope, error) {
			time.Sleep(100 * time.Millisecond) // the others find the marker
			return pub(ctx)
		}
	}
	const n = 10
	var wg sync.WaitGroup
	envs := make([]*announce.Envelope, n)
	replays := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			st := stores[i%2]
			envs[i], replays[i], errs[i] = st.Idempotency(0).Do(context.Background(), "ch", "k", "once", slow(st))
		})
	}
	wg.Wait()
	if got := runs.Load(); got != 1 {
		t.Fatalf("publish ran %d times, want 1", got)
	}
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Do %d: %v", i, errs[i])
		}
		if envs[i].ID != 1 || envs[i].Content != "once" {
			t.Errorf("Do %d answered %s", i, envs[i].JSON)
		}
		if !replays[i] {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d answers not replayed, want 1", fresh)
	}
}

func TestIdempotencyKeyReused(t *testing.T) {
	addr := testenv.Redis(t)
	st := openStore(t, addr, redis.Config{Prefix: uniquePrefix()})
	idem := st.Idempotency(0)
	ctx := context.Background()
	var runs atomic.Int64
	if _, _, err := idem.Do(ctx, "ch", "k", "one", publisher(st, "ch", "one", &runs)); err != nil {
		t.Fatal(err)
	}
	e, replayed, err := idem.Do(ctx, "ch", "k", "two", publisher(st, "ch", "two", &runs))
	if !errors.Is(err, announce.ErrIdempotencyKeyReused) || e != nil || replayed {
		t.Errorf("other content: %v, replayed %v, %v; want ErrIdempotencyKeyReused", e, replayed, err)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("publish ran %d times, want 1", n)
	}
}

func TestIdempotencyFailureNotRemembered(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	st := openStore(t, addr, redis.Config{Prefix: prefix})
	idem := st.Idempotency(0)
	ctx := context.Background()
	boom := errors.New("boom")
	if _, _, err := idem.Do(ctx, "ch", "k", "x", func(context.Context) (*announce.Envelope, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failed publish: %v, want boom", err)
	}
	if n, err := rawClient(t, addr).Exists(ctx, prefix+"{ch}:idem:k").Result(); err != nil || n != 0 {
		t.Errorf("after a failed publish the key exists (%d, %v)", n, err)
	}
	var runs atomic.Int64
	e, replayed, err := idem.Do(ctx, "ch", "k", "x", publisher(st, "ch", "x", &runs))
	if err != nil || replayed || e.ID != 1 || runs.Load() != 1 {
		t.Fatalf("retry after a failure: %+v, replayed %v, %v, %d runs", e, replayed, err, runs.Load())
	}

	// A waiter whose leader fails publishes itself.
	started := make(chan struct{})
	release := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, _, err := idem.Do(ctx, "ch", "k2", "y", func(context.Context) (*announce.Envelope, error) {
			close(started)
			<-release
			return nil, boom
		})
		errc <- err
	}()
	<-started
	done := make(chan struct{})
	var we *announce.Envelope
	var wreplayed bool
	var werr error
	go func() {
		defer close(done)
		we, wreplayed, werr = st.Idempotency(0).Do(ctx, "ch", "k2", "y", publisher(st, "ch", "y", &runs))
	}()
	time.Sleep(150 * time.Millisecond) // the waiter polls the marker
	close(release)
	if err := <-errc; !errors.Is(err, boom) {
		t.Errorf("leader: %v, want boom", err)
	}
	<-done
	if werr != nil || wreplayed || we.Content != "y" || runs.Load() != 2 {
		t.Errorf("waiter after a failed leader: %+v, replayed %v, %v, %d runs", we, wreplayed, werr, runs.Load())
	}
}

func TestIdempotencyWaiterHonoursContext(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	st := openStore(t, addr, redis.Config{Prefix: prefix})
	ctx := context.Background()
	// A node that died mid-publish left its marker behind.
	if err := rawClient(t, addr).Set(ctx, prefix+"{ch}:idem:k", "pending:dead", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, _, err := st.Idempotency(0).Do(wctx, "ch", "k", "x", func(context.Context) (*announce.Envelope, error) {
		t.Error("publish ran under another's marker")
		return nil, nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting on a stuck marker: %v, want context.DeadlineExceeded", err)
	}
}

func TestIdempotencyUnavailable(t *testing.T) {
	// Nothing listens on the port: the error must say unavailable (503).
	st, err := redis.Open(redis.Config{URL: "redis://127.0.0.1:1", OpTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _, err = st.Idempotency(0).Do(context.Background(), "ch", "k", "x", func(context.Context) (*announce.Envelope, error) {
		t.Error("publish ran without Redis")
		return nil, nil
	})
	if !errors.Is(err, announce.ErrUnavailable) {
		t.Errorf("Do without Redis: %v, want ErrUnavailable", err)
	}
}

// TestIdempotencyLostReplyReplays: the append writes the record in its own
// step, so when its reply is lost (a timeout, a cut link, a node killed) a
// retry under the same key answers the stored message instead of
// publishing it a second time.
func TestIdempotencyLostReplyReplays(t *testing.T) {
	addr := testenv.Redis(t)
	st := openStore(t, addr, redis.Config{Prefix: uniquePrefix()})
	idem := st.Idempotency(time.Minute)
	ctx := t.Context()
	lost := func(ctx context.Context) (*announce.Envelope, error) {
		if _, err := st.Append(ctx, "ch", "once", time.Now()); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: the reply was lost", announce.ErrUnavailable)
	}
	if _, _, err := idem.Do(ctx, "ch", "k1", "once", lost); err == nil {
		t.Fatal("Do with a lost reply succeeded")
	}
	var runs atomic.Int64
	env, replay, err := idem.Do(ctx, "ch", "k1", "once", publisher(st, "ch", "once", &runs))
	if err != nil || !replay || env.ID != 1 || runs.Load() != 0 {
		t.Fatalf("retry after a lost reply: %+v replay %v err %v, publishes %d; want id 1 replayed, no publish", env, replay, err, runs.Load())
	}
	if got, err := st.Since(ctx, "ch", 0, 0); err != nil || len(got) != 1 {
		t.Fatalf("history holds %d messages (%v), want the one", len(got), err)
	}
}

// TestIdempotencyLateAppendPublishesNothing: an append that reaches Redis
// after its caller gave up and released the key's marker (a delayed
// network) publishes nothing, so the retry's publish is the only one.
func TestIdempotencyLateAppendPublishesNothing(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	st := openStore(t, addr, redis.Config{Prefix: prefix})
	raw := rawClient(t, addr)
	idem := st.Idempotency(time.Minute)
	late := func(ctx context.Context) (*announce.Envelope, error) {
		if err := raw.Del(ctx, prefix+"{ch}:idem:k1").Err(); err != nil { // released meanwhile
			return nil, err
		}
		m, err := st.Append(ctx, "ch", "late", time.Now())
		if err != nil {
			return nil, err
		}
		return announce.NewEnvelope(m), nil
	}
	if env, _, err := idem.Do(t.Context(), "ch", "k1", "late", late); !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("a late append: %+v %v, want ErrUnavailable", env, err)
	}
	if got, err := st.Since(t.Context(), "ch", 0, 0); err != nil || len(got) != 0 {
		t.Fatalf("history holds %d messages (%v) after a late append, want none", len(got), err)
	}
}
