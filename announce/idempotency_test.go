package announce_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/announce/announce/announce"
)

// idemPublisher counts publishes and hands out consecutive ids.
type idemPublisher struct {
	calls atomic.Int64
	gate  chan struct{} // when set, publish waits for it
	err   error
}

func (p *idemPublisher) fn(channel, content string) func(context.Context) (*announce.Envelope, error) {
	return func(context.Context) (*announce.Envelope, error) {
		n := p.calls.Add(1)
		if p.gate != nil {
			<-p.gate
		}
		if p.err != nil {
			return nil, p.err
		}
		return announce.NewEnvelope(announce.Message{ID: uint64(n), Channel: channel, Content: content}), nil
	}
}

func TestIdempotencyReplaysAndScopes(t *testing.T) {
	m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{})
	p := &idemPublisher{}
	ctx := context.Background()
	e1, replayed, err := m.Do(ctx, "a", "k", "hi", p.fn("a", "hi"))
	if err != nil || replayed || e1.ID != 1 {
		t.Fatalf("first: %v %v %v", e1, replayed, err)
	}
	e2, replayed, err := m.Do(ctx, "a", "k", "hi", p.fn("a", "hi"))
	if err != nil || !replayed || e2 != e1 {
		t.Fatalf("retry: %v %v %v", e2, replayed, err)
	}
	if _, _, err := m.Do(ctx, "a", "k", "other", p.fn("a", "other")); !errors.Is(err, announce.ErrIdempotencyKeyReused) {
		t.Fatalf("reuse for other content: %v", err)
	}
	e3, replayed, _ := m.Do(ctx, "b", "k", "hi", p.fn("b", "hi")) // another channel
	if replayed || e3.ID != 2 {
		t.Fatalf("other channel: %v %v", e3, replayed)
	}
	if got := p.calls.Load(); got != 2 {
		t.Fatalf("%d publishes, want 2", got)
	}
}

// TestIdempotencyConcurrentCallsPublishOnce: callers with one key while
// its publish runs all wait for it and replay its message.
func TestIdempotencyConcurrentCallsPublishOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{})
		p := &idemPublisher{gate: make(chan struct{})}
		const n = 50
		var wg sync.WaitGroup
		ids := make(chan uint64, n)
		replays := atomic.Int64{}
		for range n {
			wg.Go(func() {
				e, replayed, err := m.Do(context.Background(), "c", "same", "x", p.fn("c", "x"))
				if err != nil {
					t.Error(err)
					return
				}
				if replayed {
					replays.Add(1)
				}
				ids <- e.ID
			})
		}
		synctest.Wait() // the leader is inside publish, the others wait for it
		if got := p.calls.Load(); got != 1 || len(ids) != 0 {
			t.Fatalf("%d publishes and %d answers while the first runs, want 1 and 0", got, len(ids))
		}
		close(p.gate)
		wg.Wait()
		close(ids)
		for id := range ids {
			if id != 1 {
				t.Fatalf("an answer has id %d, want 1", id)
			}
		}
		if p.calls.Load() != 1 || replays.Load() != n-1 {
			t.Fatalf("%d publishes and %d replays, want 1 and %d", p.calls.Load(), replays.Load(), n-1)
		}
	})
}

func TestIdempotencyFailureIsForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{})
		boom := errors.New("store down")
		p := &idemPublisher{gate: make(chan struct{}), err: boom}
		waiter := make(chan error, 1)
		go func() {
			_, _, err := m.Do(context.Background(), "c", "k", "x", p.fn("c", "x"))
			waiter <- err
		}()
		synctest.Wait() // the leader is inside its publish
		// A second caller waits for the failing leader, then tries itself.
		second := make(chan *announce.Envelope, 1)
		go func() {
			e, _, _ := m.Do(context.Background(), "c", "k", "x", func(context.Context) (*announce.Envelope, error) {
				return announce.NewEnvelope(announce.Message{ID: 7, Channel: "c", Content: "x"}), nil
			})
			second <- e
		}()
		synctest.Wait()
		close(p.gate)
		if err := <-waiter; !errors.Is(err, boom) {
			t.Fatalf("leader: %v", err)
		}
		if e := <-second; e == nil || e.ID != 7 {
			t.Fatalf("the caller after a failure got %v, want its own publish", e)
		}
	})
}

func TestIdempotencyWaiterGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{})
		p := &idemPublisher{gate: make(chan struct{})}
		defer close(p.gate)
		go m.Do(context.Background(), "c", "k", "x", p.fn("c", "x"))
		synctest.Wait() // the leader is inside its publish
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, _, err := m.Do(ctx, "c", "k", "x", p.fn("c", "x")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter: %v", err)
		}
		if waited := time.Since(start); waited != 20*time.Millisecond {
			t.Fatalf("the waiter gave up after %v, want its context's 20ms", waited)
		}
	})
}

func TestIdempotencyPanicReleasesWaiters(t *testing.T) {
	m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{})
	func() {
		defer func() { _ = recover() }()
		m.Do(context.Background(), "c", "k", "x", func(context.Context) (*announce.Envelope, error) { panic("boom") })
	}()
	if m.Len() != 0 {
		t.Fatalf("a panicked publish left %d keys", m.Len())
	}
	p := &idemPublisher{}
	if _, replayed, err := m.Do(context.Background(), "c", "k", "x", p.fn("c", "x")); err != nil || replayed {
		t.Fatalf("after a panic: %v %v", replayed, err)
	}
}

func TestIdempotencyBounds(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()

	t.Run("ttl", func(t *testing.T) {
		m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{TTL: time.Hour, Now: clock})
		p := &idemPublisher{}
		m.Do(ctx, "c", "k", "x", p.fn("c", "x"))
		advance(59 * time.Minute)
		if _, replayed, _ := m.Do(ctx, "c", "k", "x", p.fn("c", "x")); !replayed {
			t.Fatal("forgotten before the TTL")
		}
		advance(time.Minute)
		if _, replayed, _ := m.Do(ctx, "c", "k", "x", p.fn("c", "x")); replayed {
			t.Fatal("remembered past the TTL")
		}
	})
	t.Run("ttl on the default clock", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{TTL: time.Hour})
			p := &idemPublisher{}
			m.Do(ctx, "c", "k", "x", p.fn("c", "x"))
			time.Sleep(59 * time.Minute)
			if _, replayed, _ := m.Do(ctx, "c", "k", "x", p.fn("c", "x")); !replayed {
				t.Fatal("forgotten before the TTL")
			}
			time.Sleep(time.Minute)
			if _, replayed, _ := m.Do(ctx, "c", "k", "x", p.fn("c", "x")); replayed {
				t.Fatal("remembered past the TTL")
			}
		})
	})
	t.Run("keys", func(t *testing.T) {
		m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{MaxKeys: 3, Now: clock})
		p := &idemPublisher{}
		for _, k := range []string{"a", "b", "c", "d"} {
			m.Do(ctx, "c", k, "x", p.fn("c", "x"))
		}
		if m.Len() != 3 {
			t.Fatalf("%d keys, want 3", m.Len())
		}
		if _, replayed, _ := m.Do(ctx, "c", "d", "x", p.fn("c", "x")); !replayed {
			t.Fatal("the newest key was forgotten")
		}
		if _, replayed, _ := m.Do(ctx, "c", "a", "x", p.fn("c", "x")); replayed {
			t.Fatal("the oldest key is still remembered past MaxKeys")
		}
	})
	t.Run("bytes", func(t *testing.T) {
		m := announce.NewMemoryIdempotency(announce.IdempotencyConfig{MaxBytes: 10_000, Now: clock})
		p := &idemPublisher{}
		big := strings.Repeat("x", 3000) // ~6 KB remembered per key (content + JSON)
		m.Do(ctx, "c", "a", big, p.fn("c", big))
		m.Do(ctx, "c", "b", big, p.fn("c", big))
		if m.Len() != 1 {
			t.Fatalf("%d keys, want 1 within 10 KB", m.Len())
		}
	})
}
