package announce_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/announce/announce/announce"
)

func benchHub(b *testing.B) *announce.Hub {
	b.Helper()
	h, err := announce.NewHub(announce.Config{Store: announce.NewMemoryStore(0)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

// BenchmarkWakeLongPoll10K: 10,000 long-polls wait on one channel and one
// publish answers them all. Only the publish is timed; re-registering the
// waiters for the next round is not. ns/waiter is the cost of waking one.
func BenchmarkWakeLongPoll10K(b *testing.B) {
	const waiters = 10_000
	h := benchHub(b)
	ctx := context.Background()
	obs := make([]*announce.Observer, waiters)
	for i := range obs {
		obs[i] = announce.NewObserver(announce.Poll, 0)
	}
	var buf []*announce.Envelope
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for _, o := range obs {
			if _, e, err := h.Wait(ctx, "lp", o, nil); err != nil || e != nil {
				b.Fatalf("Wait = %v, %v", e, err)
			}
		}
		b.StartTimer()
		if _, err := h.Publish(ctx, "lp", "wake up"); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for _, o := range obs {
			if buf = o.Take(buf[:0]); len(buf) != 1 {
				b.Fatalf("a waiter got %d messages, want 1", len(buf))
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*waiters), "ns/waiter")
}

// BenchmarkFanout10K: one publish reaches 10,000 WebSocket observers, and
// each observer's writer takes its envelope. ns/delivery covers both sides.
func BenchmarkFanout10K(b *testing.B) {
	const observers = 10_000
	h := benchHub(b)
	ctx := context.Background()
	obs := make([]*announce.Observer, observers)
	for i := range obs {
		obs[i] = announce.NewObserver(announce.WebSocket, 1024)
		if _, _, err := h.Subscribe(ctx, "fan", obs[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]*announce.Envelope, 0, 4)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := h.Publish(ctx, "fan", "news"); err != nil {
			b.Fatal(err)
		}
		for _, o := range obs {
			<-o.Ready()
			if buf = o.Take(buf[:0]); len(buf) != 1 {
				b.Fatalf("an observer took %d envelopes, want 1", len(buf))
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*observers), "ns/delivery")
	if n := h.Stats().SlowConsumers(); n != 0 {
		b.Fatalf("%d slow consumers", n)
	}
}

// BenchmarkPublishMemory: Hub.Publish through the MemoryStore on a loaded
// channel with one observer, serially and from parallel publishers.
func BenchmarkPublishMemory(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprintf("parallel=%v", parallel), func(b *testing.B) {
			h := benchHub(b)
			ctx := context.Background()
			o := announce.NewObserver(announce.SSE, 1<<30)
			if _, _, err := h.Subscribe(ctx, "pub", o, nil); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			if !parallel {
				for b.Loop() {
					if _, err := h.Publish(ctx, "pub", "hello"); err != nil {
						b.Fatal(err)
					}
					o.Take(nil)
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := h.Publish(ctx, "pub", "hello"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
