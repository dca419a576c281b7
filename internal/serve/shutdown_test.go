package serve_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// dialRaw opens a connection to addr whose reads give up after 10 s.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c
}

// holdStream opens an SSE stream on a raw connection and, once its headers
// came, never reads again.
func holdStream(t *testing.T, addr, channel string) net.Conn {
	t.Helper()
	c := dialRaw(t, addr)
	_, _ = io.WriteString(c, "GET /channels/"+channel+"/events HTTP/1.1\r\nHost: "+addr+"\r\nAccept: text/event-stream\r\n\r\n")
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("SSE stream: %q, %v", status, err)
	}
	return c
}

// holdPublish begins a publish whose body never comes in full. It returns
// once the handler is reading it: net/http answers 100 Continue then.
func holdPublish(t *testing.T, addr, channel string) net.Conn {
	t.Helper()
	c := dialRaw(t, addr)
	_, _ = io.WriteString(c, "POST /channels/"+channel+"/messages HTTP/1.1\r\nHost: "+addr+
		"\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
	r := bufio.NewReader(c)
	if status, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(status, "HTTP/1.1 100") {
		t.Fatalf("publish: %q, %v; want 100 Continue", status, err)
	}
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestShutdownHonoursItsContext: with a stream held by a client that reads
// nothing and a publish whose body never ends, a short context bounds the
// stop, and the error says the deadline cut them.
func TestShutdownHonoursItsContext(t *testing.T) {
	n := start(t, serve.Config{DataDir: t.TempDir()})
	holdStream(t, n.Addr(), "held")
	publish := holdPublish(t, n.Addr(), "held")

	const deadline = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	begin := time.Now()
	err := n.Shutdown(ctx)
	took := time.Since(begin)
	if took > deadline+2*time.Second {
		t.Errorf("Shutdown took %v with a %v context", took, deadline)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, serve.ErrConnectionsCut) ||
		!strings.Contains(err.Error(), "shutdown deadline") {
		t.Fatalf("Shutdown = %v, want the deadline cutting busy connections", err)
	}
	if !serve.Graceful(err) {
		t.Errorf("Graceful(%v) = false: cutting at the deadline is a graceful stop", err)
	}
	if again := n.Shutdown(context.Background()); again != err {
		t.Errorf("second Shutdown = %v, want the first's %v", again, err)
	}
	// The held publish was cut: its connection ends, unanswered.
	_ = publish.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(publish); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Errorf("the held publish's connection after Shutdown: %q, %v; want it closed", rest, err)
	}
	testenv.WaitFor(t, 10*time.Second, "the node to stop serving", func() bool {
		select {
		case err := <-n.Done():
			return errors.Is(err, http.ErrServerClosed)
		default:
			return false
		}
	})
}

// isReset reports a connection closed by the peer with unread data.
func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestShutdownInTimeReturnsNil: streams, a waiting long-poll and the store
// all stop well within the context, and Shutdown says nothing went wrong.
func TestShutdownInTimeReturnsNil(t *testing.T) {
	n := start(t, serve.Config{DataDir: t.TempDir()})
	publishText(t, n.URL(), "bye", "last words")
	openStream(t, n.URL()+"/channels/bye/events")
	polled := make(chan int, 1)
	go func() {
		resp, err := http.Get(n.URL() + "/channels/bye/status") // waits for the next change
		if err != nil {
			polled <- 0
			return
		}
		resp.Body.Close()
		polled <- resp.StatusCode
	}()
	testenv.WaitFor(t, 10*time.Second, "the stream and the long-poll to register", func() bool {
		o := getChannel(t, n.URL(), "bye").Observers
		return o["poll"] == 1 && o["sse"] == 1
	})
	if err := testenv.Stop(10*time.Second, n.Shutdown); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if status := <-polled; status != http.StatusOK {
		t.Errorf("the waiting long-poll got %d at shutdown, want 200", status)
	}
}
