package bolt_test

import (
	"errors"
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
