package conn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func testEnv(poller func() (*Poller, error)) *Env {
	return &Env{Pool: NewPool(2), Registry: &Registry{}, Streams: &sync.WaitGroup{}, WriteTimeout: 5 * time.Second, Poller: poller}
}

// waitStreams fails unless every session of env ended within 10s.
func waitStreams(t *testing.T, env *Env) {
	t.Helper()
	done := make(chan struct{})
	go func() { env.Streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a session is still counted 10s after it should have ended")
	}
}

// firstRun starts a session on one end of a pipe and returns the reasons
// of its first run; the session then ends.
func firstRun(t *testing.T, env *Env) Wake {
	t.Helper()
	server, client := net.Pipe()
	defer client.Close()
	got := make(chan Wake, 1)
	var s *Session
	s = NewSession(env, func(r Wake) {
		got <- r
		s.Close()
	})
	s.Start(server)
	r := <-got
	waitStreams(t, env)
	return r
}

func TestSessionStartsWithItsOwnReasonForAFailedWatch(t *testing.T) {
	closed, err := New()
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	for name, poller := range map[string]func() (*Poller, error){
		"no poller":    func() (*Poller, error) { return nil, errors.New("no epoll") },
		"watch failed": func() (*Poller, error) { return closed, nil },
	} {
		t.Run(name, func(t *testing.T) {
			if r := firstRun(t, testEnv(poller)); r != WakeStart|WakeWatchFailed {
				t.Fatalf("first run for %b, want start and watch failed (%b)", r, WakeStart|WakeWatchFailed)
			}
		})
	}
}

func TestSessionStartedWhileStoppingWakesForShutdown(t *testing.T) {
	env := testEnv(nil)
	env.Registry.Shutdown()
	if r := firstRun(t, env); r != WakeStart|WakeShutdown {
		t.Fatalf("first run for %b, want start and shutdown (%b)", r, WakeStart|WakeShutdown)
	}
}

// A running session hears of the shutdown, the client's bytes and its
// timers; its end closes the connection.
func TestSessionWakesForShutdownReadableAndTimers(t *testing.T) {
	env := testEnv(nil)
	server, client := net.Pipe()
	defer client.Close()
	got := make(chan Wake, 8)
	var s *Session
	s = NewSession(env, func(r Wake) {
		got <- r
		if r.Has(WakeReadable) {
			var b [8]byte
			_, _ = s.Conn().Read(b[:])
			_ = s.Rearm()
		}
		if r.Has(WakeShutdown) {
			s.Close()
		}
	})
	s.After(time.Millisecond, WakeKeepalive)
	s.Start(server)
	want := func(r Wake) {
		t.Helper()
		for {
			select {
			case w := <-got:
				if w.Has(r) {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no run for %b", r)
			}
		}
	}
	want(WakeStart)
	want(WakeKeepalive)
	go client.Write([]byte("x"))
	want(WakeReadable)
	env.Registry.Shutdown()
	want(WakeShutdown)
	waitStreams(t, env)
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the client read %v after the session closed, want EOF", err)
	}
}

// A ResponseWriter session writes through it and flushes, and ends when
// the request does; Serve returns then.
func TestSessionServesAResponseWriterUntilTheRequestEnds(t *testing.T) {
	env := testEnv(nil)
	rec := httptest.NewRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "GET", "/", nil)
	var s *Session
	wrote := make(chan struct{})
	s = NewSession(env, func(r Wake) {
		if r.Has(WakeStart) {
			_ = s.Write([][]byte{[]byte("hello, "), []byte("world")})
			close(wrote)
		}
		if r.Has(WakeGone) {
			s.Close()
		}
	})
	served := make(chan struct{})
	go func() { s.Serve(rec, req); close(served) }()
	<-wrote
	cancel()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the request ended")
	}
	if rec.Body.String() != "hello, world" || !rec.Flushed {
		t.Fatalf("wrote %q (flushed %v), want the buffers joined and flushed", rec.Body.String(), rec.Flushed)
	}
	waitStreams(t, env)
}

func TestAbandonedSessionIsCountedOut(t *testing.T) {
	env := testEnv(nil)
	NewSession(env, func(Wake) { t.Error("an abandoned session ran") }).Abandon()
	waitStreams(t, env)
}
