package conn

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSerialRunsEveryKickOnceAtATime(t *testing.T) {
	var running, maxRunning atomic.Int32
	var seen [4]atomic.Uint64 // runs that saw each bit
	s := NewSerial(nil, func(r uint32) {
		if n := running.Add(1); n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		for b := range seen {
			if r&(1<<b) != 0 {
				seen[b].Add(1)
			}
		}
		running.Add(-1)
	})
	// Each goroutine kicks its own bit and waits for it to be seen, so no
	// kick can be merged into another: every one must run.
	const kicks = 500
	var wg sync.WaitGroup
	for b := range seen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint64(kicks) {
				s.Kick(1 << b)
				deadline := time.Now().Add(5 * time.Second)
				for seen[b].Load() <= i {
					if time.Now().After(deadline) {
						t.Errorf("bit %d: kick %d was lost", b, i)
						return
					}
					time.Sleep(time.Microsecond)
				}
			}
		}()
	}
	wg.Wait()
	if maxRunning.Load() != 1 {
		t.Fatalf("work ran %d times at once", maxRunning.Load())
	}
}

// pair returns both ends of a loopback TCP connection.
func pair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// wrapped hides the connection's descriptor, as a TLS connection does.
type wrapped struct{ net.Conn }

func pollers(t *testing.T) map[string]func(net.Conn) net.Conn {
	return map[string]func(net.Conn) net.Conn{
		"fd":        func(c net.Conn) net.Conn { return c },
		"goroutine": func(c net.Conn) net.Conn { return wrapped{c} },
	}
}

func TestWatchCallsBackOnDataAndOnClose(t *testing.T) {
	for name, wrap := range pollers(t) {
		t.Run(name, func(t *testing.T) {
			p, err := New()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			server, client := pair(t)
			ready := make(chan struct{}, 4)
			w, err := p.Watch(wrap(server), func() { ready <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			select {
			case <-ready:
				t.Fatal("called back before anything was sent")
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := client.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			waitReady(t, ready)
			buf := make([]byte, 2)
			if _, err := io.ReadFull(w.Conn(), buf); err != nil || string(buf) != "he" {
				t.Fatalf("read %q, %v", buf, err)
			}
			// Unread bytes remain: the next arm calls back at once.
			if err := w.Rearm(); err != nil {
				t.Fatal(err)
			}
			waitReady(t, ready)
			buf = make([]byte, 3)
			if _, err := io.ReadFull(w.Conn(), buf); err != nil || string(buf) != "llo" {
				t.Fatalf("read %q, %v", buf, err)
			}
			if err := w.Rearm(); err != nil {
				t.Fatal(err)
			}
			client.Close()
			waitReady(t, ready)
			if n, err := w.Conn().Read(buf); err == nil {
				t.Fatalf("read %d bytes from a closed peer, no error", n)
			}
		})
	}
}

func TestStopEndsCallbacks(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	server, client := pair(t)
	var calls atomic.Int32
	w, err := p.Watch(server, func() { calls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	w.Stop()
	_, _ = client.Write([]byte("x"))
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != 0 {
		t.Fatal("called back after Stop")
	}
	if w.Rearm() == nil {
		t.Fatal("Rearm after Stop succeeded")
	}
}

func TestReusedDescriptorIsNotWatchedUnderTheOldKey(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	old, _ := pair(t)
	stale := make(chan struct{}, 1)
	w, err := p.Watch(old, func() { stale <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	old.Close() // its descriptor may now be reused by the next pair
	server, client := pair(t)
	fresh := make(chan struct{}, 1)
	w2, err := p.Watch(server, func() { fresh <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	_, _ = client.Write([]byte("x"))
	waitReady(t, fresh)
	select {
	case <-stale:
		t.Fatal("the stopped watch was called back")
	default:
	}
}

func TestClosedPollerRefusesWatches(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	server, _ := pair(t)
	if _, err := p.Watch(server, func() {}); err != ErrClosed {
		t.Fatalf("Watch after Close: %v", err)
	}
}

func waitReady(t *testing.T, ready <-chan struct{}) {
	t.Helper()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("no callback")
	}
}

func TestHeldSerialWaitsForRelease(t *testing.T) {
	got := make(chan uint32, 4)
	s := NewHeldSerial(nil, func(r uint32) { got <- r })
	s.Kick(1)
	s.Kick(2)
	select {
	case r := <-got:
		t.Fatalf("ran %b before Release", r)
	case <-time.After(20 * time.Millisecond):
	}
	s.Release(4)
	select {
	case r := <-got:
		if r != 7 {
			t.Fatalf("first run saw %b, want 111", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing ran after Release")
	}
}

func TestPoolBoundsWorkersRunsEverySerialAndLetsBlockersDetach(t *testing.T) {
	p := NewPool(2)
	var running, maxRunning atomic.Int32
	const n = 50
	var wg sync.WaitGroup
	wg.Add(n)
	block := make(chan struct{})
	serials := make([]*Serial, n)
	for i := range serials {
		serials[i] = NewSerial(p, func(uint32) {
			defer wg.Done()
			if i == 0 {
				// The first blocks for long: it detaches, and the others
				// still run on the two workers.
				serials[0].Detach()
				<-block
				return
			}
			if r := running.Add(1); r > maxRunning.Load() {
				maxRunning.Store(r)
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
		})
	}
	for _, s := range serials {
		s.Kick(1)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("the blocked serial finished before it was unblocked")
	case <-time.After(200 * time.Millisecond):
	}
	close(block)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not every serial ran")
	}
	if m := maxRunning.Load(); m > 2 {
		t.Fatalf("%d serials ran at once on a pool of 2", m)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running != 0 {
		t.Fatalf("pool counts %d running workers after all finished", p.running)
	}
}
