package conn

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWatchAgainAfterStop watches one connection again and again, as a
// client's successive long-polls do: after a callback (the registration
// disarmed) and after a stop while still armed. Each new watch is called
// back, and no stopped one ever is.
func TestWatchAgainAfterStop(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	server, client := pair(t)
	stale := make(chan struct{}, 8)
	buf := make([]byte, 16)
	for round := range 4 {
		fresh := make(chan struct{}, 1)
		w, err := p.Watch(server, func() { fresh <- struct{}{} })
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if round%2 == 1 {
			// Stopped while armed: the bytes sent next find no watch.
			w.Stop()
			w, err = p.Watch(server, func() { fresh <- struct{}{} })
			if err != nil {
				t.Fatalf("round %d, watched again: %v", round, err)
			}
		}
		if _, err := client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		waitReady(t, fresh)
		if _, err := w.Conn().Read(buf); err != nil {
			t.Fatal(err)
		}
		w.Stop()
		// Later watches' bytes must not reach this one's callback.
		fresh = stale
	}
	if len(stale) != 0 {
		t.Fatal("a stopped watch was called back")
	}
}

// TestReusedDescriptorOfAFileKeptOpen closes a watched connection whose
// file a dup keeps open, so the kernel keeps its registration, and watches
// a new connection on (usually) the same descriptor number. The new watch
// is called back; bytes on the old file reach neither watch's callback.
func TestReusedDescriptorOfAFileKeptOpen(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	old, oldPeer := pair(t)
	oldFD, err := fdOf(old)
	if err != nil {
		t.Fatal(err)
	}
	stale := make(chan struct{}, 2)
	w, err := p.Watch(old, func() { stale <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	dup, err := unix.Dup(oldFD)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w.Stop()
	old.Close()
	// The dialled end takes the lowest free descriptor: the old number.
	server, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if fd := mustFD(t, server); fd != oldFD {
		t.Logf("descriptor %d was not reused (got %d); the new watch is checked alone", oldFD, fd)
	}
	fresh := make(chan struct{}, 2)
	w2, err := p.Watch(server, func() { fresh <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if _, err := oldPeer.Write([]byte("old")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	waitReady(t, fresh)
	buf := make([]byte, 8)
	if n, err := w2.Conn().Read(buf); err != nil || string(buf[:n]) != "new" {
		t.Fatalf("the new watch read %q, %v", buf[:n], err)
	}
	if len(stale) != 0 {
		t.Fatal("the stopped watch was called back")
	}
}

func mustFD(t *testing.T, c net.Conn) int {
	t.Helper()
	fd, err := fdOf(c)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}
