package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/bolt"
	"github.com/announce/announce/announce/storetest"
)

func open(t testing.TB, dir string, history int) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(bolt.Config{Dir: dir, History: history})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, history int) announce.Store {
		return open(t, t.TempDir(), history)
	})
}

func TestStoreDurable(t *testing.T) {
	storetest.RunDurable(t, func(t *testing.T, dir string, history int) announce.Store {
		return open(t, dir, history)
	})
}

// A second server on the same directory must fail, not hang on the file lock.
func TestOpenLockedFailsFast(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 10)
	defer s.Close()
	start := time.Now()
	s2, err := bolt.Open(bolt.Config{Dir: dir})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a locked directory succeeded")
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("second Open took %v to fail", waited)
	}
	t.Log(err)
}

func TestPing(t *testing.T) {
	s := open(t, t.TempDir(), 10)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping on an open store: %v", err)
	}
	s.Close()
	if err := s.Ping(t.Context()); !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("Ping on a closed store = %v, want ErrUnavailable", err)
	}
	if _, err := s.Append(t.Context(), "c", "x", time.Now()); !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("Append on a closed store = %v, want ErrUnavailable", err)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := open(b, b.TempDir(), announce.DefaultHistory)
	defer s.Close()
	storetest.BenchAppend(b, s)
}

// BenchmarkAppendPublishers measures group commit under the concurrency of a
// busy HTTP node: 16 to 256 publishers (b.SetParallelism per CPU), all on one
// channel and spread over 8 channels. Every Append is fsynced before it returns.
func BenchmarkAppendPublishers(b *testing.B) {
	for _, publishers := range []int{16, 64, 256} {
		for _, channels := range []int{1, 8} {
			b.Run(fmt.Sprintf("publishers=%d/channels=%d", publishers, channels), func(b *testing.B) {
				s := open(b, b.TempDir(), announce.DefaultHistory)
				defer s.Close()
				names := make([]string, channels)
				for i := range names {
					names[i] = fmt.Sprintf("bench-%d", i)
				}
				var next atomic.Int64
				b.SetParallelism(max(1, publishers/runtime.GOMAXPROCS(0)))
				b.ReportAllocs()
				commits, writes := s.Commits(), s.Writes()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					name := names[int(next.Add(1))%channels]
					ctx := context.Background()
					for pb.Next() {
						if _, err := s.Append(ctx, name, "Server maintenance at 22:00", time.Now()); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
				n := float64(s.Commits() - commits)
				b.ReportMetric(float64(b.N)/n, "appends/commit")
				b.ReportMetric(float64(s.Writes()-writes)/n, "pages/commit")
			})
		}
	}
}
