package conn

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// writeNow calls WriteNow on a copy of bufs and returns how many bytes it
// consumed, checking that what it left is the unwritten rest.
func writeNow(t testing.TB, fd int, bufs [][]byte) (int, error) {
	t.Helper()
	all := bytes.Join(bufs, nil)
	left := append(net.Buffers(nil), bufs...)
	err := WriteNow(fd, &left)
	rest := bytes.Join(left, nil)
	if !bytes.HasSuffix(all, rest) {
		t.Fatalf("WriteNow left %d bytes that are not the end of what it was given", len(rest))
	}
	return len(all) - len(rest), err
}

// WriteNow writes what the socket takes, stops without an error when it
// is full, and reports a peer that is gone.
func TestWriteNowStopsAtAFullSocketAndReportsAGonePeer(t *testing.T) {
	server, client := pair(t)
	defer server.Close()
	fd, err := fdOf(server)
	if err != nil {
		t.Fatal(err)
	}
	frame := bytes.Repeat([]byte("x"), 64<<10)
	bufs := [][]byte{[]byte("head "), frame, []byte(" tail")}
	n, err := writeNow(t, fd, bufs)
	if err != nil || n != len(frame)+10 {
		t.Fatalf("first WriteNow = %d, %v; want %d, nil", n, err, len(frame)+10)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, bytes.Join(bufs, nil)) {
		t.Fatalf("the client read %d bytes (%v), not what was written", len(got), err)
	}

	// Nobody reads: the socket fills, and a write comes back short.
	written, short := 0, false
	for i := 0; i < 10000 && !short; i++ {
		n, err := writeNow(t, fd, [][]byte{frame, frame})
		if err != nil {
			t.Fatalf("WriteNow on a full socket: %v; want a short write and no error", err)
		}
		written += n
		short = n < 2*len(frame)
	}
	if !short {
		t.Fatalf("wrote %d bytes without the socket filling up", written)
	}

	client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := writeNow(t, fd, [][]byte{frame})
		if err != nil {
			return // EPIPE or ECONNRESET
		}
		if time.Now().After(deadline) {
			t.Fatal("WriteNow kept answering no error to a peer that closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// More buffers than one writev(2) takes are written in several calls.
func TestWriteNowTakesMoreThanIOVMAXBuffers(t *testing.T) {
	server, client := pair(t)
	defer server.Close()
	defer client.Close()
	fd, err := fdOf(server)
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([][]byte, 3*maxIovecs+7)
	for i := range bufs {
		bufs[i] = []byte{byte('a' + i%26)}
	}
	n, err := writeNow(t, fd, bufs)
	if err != nil || n != len(bufs) {
		t.Fatalf("WriteNow = %d, %v; want %d, nil", n, err, len(bufs))
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, bytes.Join(bufs, nil)) {
		t.Fatalf("read %q (%v), not the buffers in order", got, err)
	}
}

// BenchmarkLoopbackWrite is the floor of a fan-out's cost: one
// message-sized write to a loopback TCP socket whose reader drains it, the
// system call a delivery cannot avoid, through WriteNow and through the
// net.Conn with a write deadline, as writes went before WriteNow. Most of
// it is the kernel's TCP path (both ends, loopback), not Go.
//
//	go test -run '^$' -bench LoopbackWrite ./internal/conn
func BenchmarkLoopbackWrite(b *testing.B) {
	frame := bytes.Repeat([]byte("x"), 150) // a small announcement in a WebSocket frame
	for _, via := range []string{"WriteNow", "net.Conn"} {
		b.Run(via, func(b *testing.B) {
			server, client := pair(b)
			go io.Copy(io.Discard, client)
			fd, err := fdOf(server)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if via == "WriteNow" {
					bufs := net.Buffers{frame}
					if err := WriteNow(fd, &bufs); err != nil || len(bufs) > 0 {
						b.Fatalf("WriteNow: %v, %d buffers left", err, len(bufs)) // the reader keeps up: never full
					}
					continue
				}
				_ = server.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := server.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
