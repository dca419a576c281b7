package bolt_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/bolt"
	"github.com/announce/announce/announce/storetest"
	"github.com/announce/announce/internal/testenv"
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

// BenchmarkAppendOne is a lone publisher: each Append is one commit and
// its fsync, so ns/op is the latency of an acknowledged publish.
func BenchmarkAppendOne(b *testing.B) {
	s := open(b, b.TempDir(), announce.DefaultHistory)
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, "one", "Server maintenance at 22:00", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
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

// Stores written before the binary value format hold the JSON of a Message;
// they are read as before, and their ids continue.
func TestReadsJSONValues(t *testing.T) {
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, bolt.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)
	err = db.Update(func(tx *bbolt.Tx) error {
		root, err := tx.CreateBucket([]byte("channels"))
		if err != nil {
			return err
		}
		b, err := root.CreateBucket([]byte("old"))
		if err != nil {
			return err
		}
		for id := uint64(1); id <= 3; id++ {
			v, _ := json.Marshal(announce.Message{ID: id, Channel: "old", Content: fmt.Sprint("json ", id), Time: at})
			if err := b.Put(binary.BigEndian.AppendUint64(nil, id), v); err != nil {
				return err
			}
		}
		return b.SetSequence(3)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, dir, 100)
	defer s.Close()
	cur, err := s.Current(t.Context(), "old")
	if err != nil || cur != (announce.Message{ID: 3, Channel: "old", Content: "json 3", Time: at}) {
		t.Fatalf("Current of a JSON-era channel = %+v, %v", cur, err)
	}
	m, err := s.Append(t.Context(), "old", "binary 4", at)
	if err != nil || m.ID != 4 {
		t.Fatalf("Append after JSON-era messages = %+v, %v; want id 4", m, err)
	}
	got, err := s.Since(t.Context(), "old", 0, 0)
	if err != nil || len(got) != 4 {
		t.Fatalf("Since = %+v, %v; want 4 messages", got, err)
	}
	for i, m := range got {
		want := fmt.Sprint("json ", i+1)
		if i == 3 {
			want = "binary 4"
		}
		if m.ID != uint64(i+1) || m.Content != want || !m.Time.Equal(at) || m.Time.Location() != time.UTC {
			t.Errorf("Since[%d] = %+v, want id %d %q at %v UTC", i, m, i+1, want, at)
		}
	}
}

// An Append whose context ends while it waits in the queue is withdrawn:
// it reports the context's error, is not stored and leaves no gap in the ids.
func TestAppendWithdrawnWhileQueued(t *testing.T) {
	s := open(t, t.TempDir(), 100)
	defer s.Close()
	release := s.BlockWriter()

	first := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), "c", "first", time.Now())
		first <- err
	}()
	// The committer took it and waits for the writer lock.
	testenv.WaitFor(t, 10*time.Second, "the committer to take the first Append", func() bool { return s.Commits() > 0 })

	ctx, cancel := context.WithCancel(t.Context())
	withdrawn := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "c", "withdrawn", time.Now())
		withdrawn <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-withdrawn; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append canceled in the queue = %v, want context.Canceled", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if m, err := s.Append(t.Context(), "c", "third", time.Now()); err != nil || m.ID != 2 {
		t.Fatalf("Append after a withdrawn one = %+v, %v; want id 2", m, err)
	}
	got, _ := s.Since(t.Context(), "c", 0, 0)
	if len(got) != 2 || got[0].Content != "first" || got[1].Content != "third" {
		t.Fatalf("Since = %+v, want first and third", got)
	}
}

func waitQueued(t *testing.T, s *bolt.Store, n int) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d appends in the queue", n), func() bool { return s.Queued() == n })
}

// Closing under load: every Append that succeeded is stored, every one that
// failed (with ErrUnavailable) is not, and the ids have no gaps.
func TestCloseWhileAppending(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 100000)
	var (
		mu   sync.Mutex
		ok   = map[uint64]string{}
		wg   sync.WaitGroup
		fail atomic.Int64
	)
	for w := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				content := fmt.Sprintf("w%d-%d", w, i)
				m, err := s.Append(context.Background(), "c", content, time.Now())
				if err != nil {
					if !errors.Is(err, announce.ErrUnavailable) {
						t.Errorf("Append during Close = %v, want ErrUnavailable", err)
					}
					fail.Add(1)
					return
				}
				mu.Lock()
				ok[m.ID] = content
				mu.Unlock()
			}
		})
	}
	testenv.WaitFor(t, 10*time.Second, "appends to be under way", func() bool { // Close must meet a load
		mu.Lock()
		defer mu.Unlock()
		return len(ok) >= 100
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	s = open(t, dir, 100000)
	defer s.Close()
	got, err := s.Since(t.Context(), "c", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ok) {
		t.Fatalf("%d Appends succeeded before Close, %d are stored", len(ok), len(got))
	}
	for i, m := range got {
		if m.ID != uint64(i+1) || m.Content != ok[m.ID] {
			t.Fatalf("stored message %d = %+v, want id %d %q", i, m, i+1, ok[uint64(i+1)])
		}
	}
	t.Logf("%d Appends stored before Close, %d refused after", len(ok), fail.Load())
}

// Stale ids are deleted a few at a time, so the file holds at most
// history plus a bounded slack per channel, and reads never show them.
func TestTrimBound(t *testing.T) {
	const history = 10
	s := open(t, t.TempDir(), history)
	defer s.Close()
	for i := 1; i <= 500; i++ {
		if _, err := s.Append(t.Context(), "c", fmt.Sprint("m", i), time.Now()); err != nil {
			t.Fatal(err)
		}
		if n := s.Keys("c"); n > history+64 {
			t.Fatalf("after %d appends the channel holds %d ids, history is %d", i, n, history)
		}
		got, err := s.Since(t.Context(), "c", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(i, history); len(got) != want || got[len(got)-1].ID != uint64(i) || got[0].ID != uint64(i-want+1) {
			t.Fatalf("after %d appends Since(0) returned ids %d..%d (%d), want the last %d", i, got[0].ID, got[len(got)-1].ID, len(got), want)
		}
	}
}

// MaxBatch caps a commit; concurrent Appends all succeed in order.
func TestMaxBatch(t *testing.T) {
	s, err := bolt.Open(bolt.Config{Dir: t.TempDir(), MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, each = 32, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Append(t.Context(), "c", fmt.Sprintf("w%d-%d", w, i), time.Now()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if c := s.Commits(); c < writers*each/4 {
		t.Errorf("%d appends in %d commits: more than MaxBatch 4 per commit", writers*each, c)
	} else {
		t.Logf("%d appends in %d commits", writers*each, c)
	}
}

func TestStoreAdmin(t *testing.T) {
	storetest.RunAdmin(t, func(t *testing.T, history int) announce.Store {
		return open(t, t.TempDir(), history)
	})
}
