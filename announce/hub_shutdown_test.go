package announce

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestShutdown(t *testing.T) {
	h := newTestHub(t, Config{})
	ctx := context.Background()
	var obs []*Observer
	for i, tr := range Transports {
		o := NewObserver(tr, 0)
		ch := fmt.Sprint("c", i%2)
		if tr == Poll {
			if _, e, err := h.Wait(ctx, ch, o, nil); err != nil || e != nil {
				t.Fatalf("Wait = %v, %v", e, err)
			}
		} else if _, _, err := h.Subscribe(ctx, ch, o, nil); err != nil {
			t.Fatal(err)
		}
		obs = append(obs, o)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	for _, o := range obs {
		select {
		case <-o.Done():
		default:
			t.Fatalf("%v observer not closed", o.Transport())
		}
		if !errors.Is(o.Err(), ErrShutdown) {
			t.Fatalf("%v observer Err = %v, want ErrShutdown", o.Transport(), o.Err())
		}
	}
	for _, tr := range Transports {
		if n := h.Stats().Observers(tr); n != 0 {
			t.Fatalf("Observers(%v) = %d after Shutdown", tr, n)
		}
	}
	if _, err := h.Publish(ctx, "c0", "late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Shutdown = %v, want ErrClosed", err)
	}
	if _, _, err := h.Subscribe(ctx, "c0", NewObserver(SSE, 0), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Shutdown = %v, want ErrClosed", err)
	}
	if _, _, err := h.Wait(ctx, "c1", NewObserver(Poll, 0), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Shutdown = %v, want ErrClosed", err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
}

// TestShutdownRacingSubscribe: an observer whose Subscribe or Wait succeeds
// while the hub shuts down must be closed too, or its handler would wait for
// a shutdown signal that never comes.
func TestShutdownRacingSubscribe(t *testing.T) {
	ctx := context.Background()
	for iter := range 200 {
		h := newTestHub(t, Config{})
		if _, err := h.Channel(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var registered []*Observer
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range 4 {
			wg.Go(func() {
				<-start
				for range 10000 {
					var err error
					o := NewObserver(Transports[g%3], 0)
					if o.Transport() == Poll {
						_, _, err = h.Wait(ctx, "x", o, nil)
					} else {
						_, _, err = h.Subscribe(ctx, "x", o, nil)
					}
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					registered = append(registered, o)
					mu.Unlock()
				}
			})
		}
		close(start)
		runtime.Gosched()
		h.Shutdown(ctx)
		wg.Wait()
		for _, o := range registered {
			if !errors.Is(o.Err(), ErrShutdown) {
				t.Fatalf("iteration %d: an observer registered during Shutdown is still open (Err %v)", iter, o.Err())
			}
		}
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	baseline := runtime.NumGoroutine()
	ctx := context.Background()
	for range 5 {
		h, err := NewHub(Config{Store: NewMemoryStore(0), IdleTimeout: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		h.gapGrace = 5 * time.Millisecond
		var readers sync.WaitGroup
		for i := range 300 {
			ch := fmt.Sprint("ch", i%3)
			o := NewObserver(Transports[i%3], 0)
			if o.Transport() == Poll {
				if _, _, err := h.Wait(ctx, ch, o, nil); err != nil {
					t.Fatal(err)
				}
			} else if _, _, err := h.Subscribe(ctx, ch, o, nil); err != nil {
				t.Fatal(err)
			}
			readers.Go(func() { // a transport's writer: drains until closed
				for {
					select {
					case <-o.Ready():
						// A woken long-poll is answered, not closed: its
						// handler returns with the message.
						if got := o.Take(nil); len(got) > 0 && o.Transport() == Poll {
							return
						}
					case <-o.Done():
						return
					}
				}
			})
		}
		var pubs sync.WaitGroup
		for p := range 4 {
			pubs.Go(func() {
				for range 50 {
					h.Publish(ctx, fmt.Sprint("ch", p%3), "x")
				}
			})
		}
		pubs.Wait()
		h.Shutdown(ctx)
		done := make(chan struct{})
		go func() { readers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("readers did not stop after Shutdown")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pausingStore holds back the publisher of content "held" between the

// blockingBroker is a broker whose Close waits for release.
type blockingBroker struct{ release chan struct{} }

func (b *blockingBroker) Watch(context.Context, string) error { return nil }
func (b *blockingBroker) Unwatch(string)                      {}
func (b *blockingBroker) Close() error                        { <-b.release; return nil }

// TestShutdownHonoursContext: when what Shutdown waits for does not end in
// time it returns the context's error, with every observer closed already;
// a later call returns once the waiting is over.
func TestShutdownHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &blockingBroker{release: make(chan struct{})}
		h := newTestHub(t, Config{Broker: func(BrokerSink) (Broker, error) { return b, nil }})
		o := NewObserver(SSE, 0)
		if _, _, err := h.Subscribe(t.Context(), "s", o, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := h.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown with a broker that does not close = %v, want DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("Shutdown returned after %v, want its context's 1s", waited)
		}
		if !errors.Is(o.Err(), ErrShutdown) {
			t.Fatalf("observer Err = %v, want ErrShutdown at once", o.Err())
		}
		if _, err := h.Publish(t.Context(), "s", "late"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Publish after Shutdown = %v, want ErrClosed", err)
		}
		close(b.release)
		if err := h.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown once the broker closed = %v", err)
		}
	})
}
