// Package storetest is the conformance suite for announce.Store: every
// implementation (memory, bolt, Redis) runs the same tests, so the guarantees
// written on the interface are checked once, in one place.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// Run checks every guarantee of announce.Store. open must return a fresh,
// empty store keeping history messages per channel; Run closes it.
func Run(t *testing.T, open func(t *testing.T, history int) announce.Store) {
	t.Helper()
	fresh := func(t *testing.T, history int) announce.Store {
		s := open(t, history)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Run("IDsStartAtOneAndGrowByOne", func(t *testing.T) {
		s := fresh(t, 100)
		for want := uint64(1); want <= 5; want++ {
			content := fmt.Sprint("m", want)
			m := mustAppend(t, s, "ids", content)
			if m.ID != want || m.Channel != "ids" || m.Content != content {
				t.Fatalf("Append = %+v, want id %d channel ids content %q", m, want, content)
			}
		}
	})
	t.Run("ChannelsAreIndependent", func(t *testing.T) {
		s := fresh(t, 100)
		mustAppend(t, s, "a", "a1")
		mustAppend(t, s, "a", "a2")
		if m := mustAppend(t, s, "b", "b1"); m.ID != 1 {
			t.Fatalf("first id on b = %d, want 1", m.ID)
		}
		checkCurrent(t, s, "a", 2, "a2")
		checkCurrent(t, s, "b", 1, "b1")
		checkSince(t, s, "b", 0, 0, 1, 1)
	})
	t.Run("UnknownChannel", func(t *testing.T) {
		s := fresh(t, 100)
		mustAppend(t, s, "other", "x") // a store with data must still not invent any for "nobody"
		m, err := s.Current(t.Context(), "nobody")
		if err != nil {
			t.Fatal(err)
		}
		if m != (announce.Message{Channel: "nobody"}) {
			t.Fatalf("Current(unknown) = %+v, want ID 0 with Channel set and nothing else", m)
		}
		checkSince(t, s, "nobody", 0, 0, 0, 0)
	})
	t.Run("Current", func(t *testing.T) {
		s := fresh(t, 100)
		for i := 1; i <= 3; i++ {
			mustAppend(t, s, "cur", fmt.Sprint("m", i))
			checkCurrent(t, s, "cur", uint64(i), fmt.Sprint("m", i))
		}
	})
	t.Run("Since", func(t *testing.T) {
		s := fresh(t, 100)
		for i := 1; i <= 10; i++ {
			mustAppend(t, s, "since", fmt.Sprint("m", i))
		}
		for _, c := range []struct {
			name        string
			since       uint64
			limit       int
			first, last uint64 // expected id range; first 0 means none
		}{
			{"Zero", 0, 0, 1, 10},
			{"Mid", 4, 0, 5, 10},
			{"Latest", 10, 0, 0, 0},
			{"BeyondLatest", 99, 0, 0, 0},
			{"Limit", 0, 3, 1, 3},
			{"MidLimit", 4, 3, 5, 7},
			{"LimitAboveCount", 8, 50, 9, 10},
		} {
			t.Run(c.name, func(t *testing.T) { checkSince(t, s, "since", c.since, c.limit, c.first, c.last) })
		}
	})
	t.Run("HistoryIsTrimmed", func(t *testing.T) {
		s := fresh(t, 5)
		for i := 1; i <= 12; i++ {
			mustAppend(t, s, "trim", fmt.Sprint("m", i))
		}
		checkSince(t, s, "trim", 0, 0, 8, 12)
		checkSince(t, s, "trim", 2, 0, 8, 12) // a cursor older than history gets what is left
		checkSince(t, s, "trim", 9, 0, 10, 12)
		checkCurrent(t, s, "trim", 12, "m12")
	})
	t.Run("TimeIsUTC", func(t *testing.T) {
		s := fresh(t, 100)
		// A zone other than UTC and Local, so an implementation that keeps
		// the caller's location cannot pass by accident.
		at := time.Date(2026, 11, 22, 11, 0, 0, 123456000, time.FixedZone("CET", 3600))
		m, err := s.Append(t.Context(), "time", "t", at)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := s.Current(t.Context(), "time")
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Since(t.Context(), "time", 0, 0)
		if err != nil || len(got) != 1 {
			t.Fatalf("Since = %v, %v; want one message", got, err)
		}
		for name, m := range map[string]announce.Message{"Append": m, "Current": cur, "Since": got[0]} {
			if m.Time.IsZero() || !m.Time.Equal(at) || m.Time.Location() != time.UTC {
				t.Errorf("%s time = %v (%v), want %v in UTC", name, m.Time, m.Time.Location(), at.UTC())
			}
		}
	})
	t.Run("ConcurrentAppends", func(t *testing.T) {
		const writers, each = 16, 25
		const n = writers * each
		s := fresh(t, n)
		appended := make(chan announce.Message, n)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					m, err := s.Append(t.Context(), "race", fmt.Sprintf("w%d-%d", w, i), time.Now())
					if err != nil {
						t.Error(err)
						return
					}
					appended <- m
				}
			})
		}
		wg.Wait()
		close(appended)
		byID := make(map[uint64]string, n)
		for m := range appended {
			if m.ID < 1 || m.ID > n || byID[m.ID] != "" {
				t.Fatalf("%d concurrent Appends: id %d is out of 1..%d or given twice", n, m.ID, n)
			}
			byID[m.ID] = m.Content
		}
		if len(byID) != n {
			t.Fatalf("%d concurrent Appends returned %d distinct ids", n, len(byID))
		}
		got, err := s.Since(t.Context(), "race", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range got {
			if m.ID != uint64(i+1) || m.Content != byID[m.ID] {
				t.Fatalf("Since after concurrent Appends: position %d = %+v, want id %d content %q", i, m, i+1, byID[uint64(i+1)])
			}
		}
		checkSince(t, s, "race", 0, 0, 1, n)
		checkCurrent(t, s, "race", n, "")
	})
}

// RunDurable checks that a store keeps its state across Close and reopen.
// open must return a store on dir keeping history messages per channel;
// RunDurable closes it.
func RunDurable(t *testing.T, open func(t *testing.T, dir string, history int) announce.Store) {
	t.Helper()
	dir := t.TempDir()
	s := open(t, dir, 5)
	for i := 1; i <= 7; i++ {
		mustAppend(t, s, "a", fmt.Sprint("a", i))
	}
	mustAppend(t, s, "b", "b1")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, dir, 5)
	checkCurrent(t, s, "a", 7, "a7")
	checkCurrent(t, s, "b", 1, "b1")
	checkSince(t, s, "a", 0, 0, 3, 7)
	if m := mustAppend(t, s, "a", "a8"); m.ID != 8 {
		t.Fatalf("first Append after reopen got id %d, want 8", m.ID)
	}
	checkSince(t, s, "a", 0, 0, 4, 8)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// An operator lowering --history: the next Append trims to the new limit.
	s = open(t, dir, 3)
	t.Cleanup(func() { _ = s.Close() })
	mustAppend(t, s, "a", "a9")
	checkSince(t, s, "a", 0, 0, 7, 9)
}

// BenchAppend measures Append throughput with many concurrent publishers,
// all on one channel (contended id sequence) and spread over 8 channels.
func BenchAppend(b *testing.B, s announce.Store) {
	for _, channels := range []int{1, 8} {
		b.Run(fmt.Sprintf("channels=%d", channels), func(b *testing.B) {
			names := make([]string, channels)
			for i := range names {
				names[i] = fmt.Sprintf("bench-%d-%d", channels, i)
			}
			var mu sync.Mutex
			next := 0
			ctx := context.Background()
			// Publishers mostly wait on the store (I/O, group commit), so run
			// many per CPU, as an HTTP server handling publishes would.
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				name := names[next%channels]
				next++
				mu.Unlock()
				for pb.Next() {
					if _, err := s.Append(ctx, name, "Server maintenance at 22:00", time.Now()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
		})
	}
}

func mustAppend(t *testing.T, s announce.Store, channel, content string) announce.Message {
	t.Helper()
	m, err := s.Append(t.Context(), channel, content, time.Now())
	if err != nil {
		t.Fatalf("Append(%q): %v", channel, err)
	}
	return m
}

// checkCurrent checks the current message's id and, unless content is "", its content.
func checkCurrent(t *testing.T, s announce.Store, channel string, id uint64, content string) {
	t.Helper()
	m, err := s.Current(t.Context(), channel)
	if err != nil {
		t.Fatalf("Current(%q): %v", channel, err)
	}
	if m.ID != id || m.Channel != channel || (content != "" && m.Content != content) {
		t.Fatalf("Current(%q) = %+v, want id %d content %q", channel, m, id, content)
	}
}

// checkSince checks that Since returns exactly ids first..last of channel,
// oldest first (none when first is 0), with the channel set and non-empty content.
func checkSince(t *testing.T, s announce.Store, channel string, since uint64, limit int, first, last uint64) {
	t.Helper()
	got, err := s.Since(t.Context(), channel, since, limit)
	if err != nil {
		t.Fatalf("Since(%q, %d, %d): %v", channel, since, limit, err)
	}
	want := 0
	if first > 0 {
		want = int(last - first + 1)
	}
	if len(got) != want {
		t.Fatalf("Since(%q, %d, %d) returned %d messages %v, want ids %d..%d", channel, since, limit, len(got), ids(got), first, last)
	}
	for i, m := range got {
		if m.ID != first+uint64(i) || m.Channel != channel || m.Content == "" {
			t.Fatalf("Since(%q, %d, %d) = ids %v, want %d..%d in order", channel, since, limit, ids(got), first, last)
		}
	}
}

func ids(ms []announce.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}
