package api_test

// In-process benchmarks over real loopback sockets: the server (memory store)
// and its observers' clients live in this one test process.
//
// N, the number of observers, comes from BENCH_OBSERVERS (default 5000).
// It is not 10,000 because this process holds both ends of every connection
// (two descriptors per observer) and the machine caps each process at 20,000
// open files. N appears in each benchmark's name (observers=N).
//
// Run them with, for example:
//
//	go test -run '^$' -bench 'Fanout' -benchtime 200x ./api/
//	go test -run '^$' -bench 'IdleObserver' -benchtime 1x ./api/

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/gorilla/websocket"
)

const benchChannel = "bench"

// benchObservers is N: BENCH_OBSERVERS, or 5000.
func benchObservers(b *testing.B) int {
	b.Helper()
	v := os.Getenv("BENCH_OBSERVERS")
	if v == "" {
		return 5000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("BENCH_OBSERVERS=%q: want a whole number >= 1", v)
	}
	return n
}

// benchDialer keeps the client side of each WebSocket small.
var benchDialer = websocket.Dialer{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   512,
	WriteBufferSize:  512,
}

// benchConnect runs dial(i) for i in [0, n) on a few goroutines, so the
// listener's backlog is never flooded, and returns the first error.
func benchConnect(n int, dial func(i int) error) error {
	const workers = 32
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := dial(i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("observer %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// benchDialWS opens a WebSocket observer of the bench channel.
func benchDialWS(ts *testServer) (*websocket.Conn, error) {
	c, resp, err := benchDialer.Dial("ws://"+ts.Addr()+"/channels/"+benchChannel+"/status", nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return c, err
}

// benchDialSSE opens an SSE observer on a raw connection, checks the 200 head and
// returns the connection with the reader positioned at the first event.
func benchDialSSE(ts *testServer, bufSize int) (net.Conn, *bufio.Reader, error) {
	conn, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		return nil, nil, err
	}
	_, err = fmt.Fprintf(conn, "GET /channels/%s/status HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", benchChannel, ts.Addr())
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, bufSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, nil, fmt.Errorf("SSE status %d", resp.StatusCode)
	}
	// The stream is close-delimited: the events follow the head in br.
	return conn, br, nil
}

// benchDialPoll sends a long-poll with no cursor on a raw connection and leaves
// it waiting; the answer is never read.
func benchDialPoll(ts *testServer) (net.Conn, error) {
	conn, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(conn, "GET /channels/%s/status?timeout=3600 HTTP/1.1\r\nHost: %s\r\n\r\n", benchChannel, ts.Addr())
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// deliveryCounter counts deliveries across all observers and signals when
// the count reaches the target set before a publish.
type deliveryCounter struct {
	total  atomic.Int64
	target atomic.Int64
	done   chan struct{}
}

func newDeliveryCounter() *deliveryCounter {
	d := &deliveryCounter{done: make(chan struct{}, 1)}
	d.target.Store(-1)
	return d
}

func (d *deliveryCounter) add() {
	if d.total.Add(1) == d.target.Load() {
		d.done <- struct{}{}
	}
}

// closeObservers closes every connection and waits until the hub counts no
// observers of transport tr.
func closeObservers[C io.Closer](b *testing.B, ts *testServer, tr announce.Transport, conns []C) {
	b.Helper()
	for _, c := range conns {
		_ = c.Close()
	}
	waitObservers(b, ts.Hub, tr, 0)
}

func BenchmarkFanoutWebSocket(b *testing.B) {
	n := benchObservers(b)
	b.Run(fmt.Sprintf("observers=%d", n), func(b *testing.B) {
		ts := newTestServerHub(b, nil)
		d := newDeliveryCounter()
		conns := make([]*websocket.Conn, n)
		var readers sync.WaitGroup
		err := benchConnect(n, func(i int) error {
			c, err := benchDialWS(ts)
			if err != nil {
				return err
			}
			conns[i] = c
			readers.Go(func() {
				for {
					mt, r, err := c.NextReader()
					if err != nil {
						return
					}
					if mt == websocket.TextMessage {
						_, _ = io.Copy(io.Discard, r)
						d.add()
					}
				}
			})
			return nil
		})
		if err != nil {
			closeObservers(b, ts, announce.WebSocket, conns[:benchOpened(conns)])
			b.Fatal(err)
		}
		waitObservers(b, ts.Hub, announce.WebSocket, int64(n))
		benchFanout(b, ts, d, n)
		closeObservers(b, ts, announce.WebSocket, conns)
		readers.Wait()
	})
}

func BenchmarkFanoutSSE(b *testing.B) {
	n := benchObservers(b)
	b.Run(fmt.Sprintf("observers=%d", n), func(b *testing.B) {
		ts := newTestServerHub(b, nil)
		d := newDeliveryCounter()
		conns := make([]net.Conn, n)
		var readers sync.WaitGroup
		err := benchConnect(n, func(i int) error {
			conn, br, err := benchDialSSE(ts, 1024)
			if err != nil {
				return err
			}
			conns[i] = conn
			readers.Go(func() {
				// Count message events: every one carries a data line; the
				// retry hint and keepalive comments do not.
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) > 5 && string(line[:5]) == "data:" {
						d.add()
					}
				}
			})
			return nil
		})
		if err != nil {
			closeObservers(b, ts, announce.SSE, conns[:benchOpened(conns)])
			b.Fatal(err)
		}
		waitObservers(b, ts.Hub, announce.SSE, int64(n))
		benchFanout(b, ts, d, n)
		closeObservers(b, ts, announce.SSE, conns)
		readers.Wait()
	})
}

// benchOpened is how many leading connections were opened (benchConnect may
// stop part-way; a gap can only follow a failure).
func benchOpened[C comparable](conns []C) int {
	var zero C
	k := 0
	for _, c := range conns {
		if c != zero {
			conns[k] = c
			k++
		}
	}
	return k
}

// benchFanout times b.N publishes (hub.Publish, so fan-out rather than HTTP),
// each waited on until all n observers have read it. allocs/op and
// allocs/delivery include the clients' reads, which share this process.
func benchFanout(b *testing.B, ts *testServer, d *deliveryCounter, n int) {
	b.Helper()
	if got := d.total.Load(); got != 0 {
		b.Fatalf("%d deliveries before the first publish, want 0", got)
	}
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	start := time.Now()
	var want int64
	iters := 0
	for b.Loop() {
		want += int64(n)
		d.target.Store(want)
		if _, err := ts.Hub.Publish(ctx, benchChannel, "m"+strconv.Itoa(iters)); err != nil {
			b.Fatal(err)
		}
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			b.Fatalf("publish %d: %d of %d deliveries after 30s", iters, d.total.Load(), want)
		}
		iters++
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	deliveries := float64(iters) * float64(n)
	b.ReportMetric(float64(elapsed.Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")
	if got := d.total.Load(); got != want {
		b.Fatalf("%d deliveries, want %d", got, want)
	}
}

// BenchmarkIdleObserverMemory holds N idle observers of each transport and
// reports "process-bytes/observer": the growth of HeapInuse+StackInuse per
// observer once all N are registered, after a GC. Both ends share this
// process, so the figure counts the client side (its sockets, gorilla
// connections, read buffers) as well as the server's; `announce bench idle`
// measures the server alone, by its RSS (see docs/performance.md).
//
// Each iteration connects N observers, measures and disconnects them all;
// run it with -benchtime 1x (one iteration already takes seconds).
func BenchmarkIdleObserverMemory(b *testing.B) {
	n := benchObservers(b)
	b.Run(fmt.Sprintf("ws/observers=%d", n), func(b *testing.B) {
		ts := newTestServerHub(b, nil)
		benchIdle(b, ts, announce.WebSocket, n, func() (io.Closer, error) {
			// No reader: an idle client only holds its connection.
			return benchDialWS(ts)
		})
	})
	b.Run(fmt.Sprintf("sse/observers=%d", n), func(b *testing.B) {
		ts := newTestServerHub(b, nil)
		benchIdle(b, ts, announce.SSE, n, func() (io.Closer, error) {
			conn, _, err := benchDialSSE(ts, 512) // the head is checked, then the reader dropped
			return conn, err
		})
	})
	b.Run(fmt.Sprintf("poll/observers=%d", n), func(b *testing.B) {
		ts := newTestServerHub(b, nil, func(c *api.Config) { c.PollTimeout = time.Hour })
		benchIdle(b, ts, announce.Poll, n, func() (io.Closer, error) {
			return benchDialPoll(ts)
		})
	})
}

func benchIdle(b *testing.B, ts *testServer, tr announce.Transport, n int, dial func() (io.Closer, error)) {
	b.Helper()
	var total float64
	iters := 0
	for b.Loop() {
		before := benchInUse()
		conns := make([]io.Closer, n)
		err := benchConnect(n, func(i int) error {
			c, err := dial()
			if err != nil {
				return err
			}
			conns[i] = c
			return nil
		})
		if err != nil {
			closeObservers(b, ts, tr, conns[:benchOpened(conns)])
			b.Fatal(err)
		}
		waitObservers(b, ts.Hub, tr, int64(n))
		after := benchInUse()
		total += (float64(after) - float64(before)) / float64(n)
		iters++
		closeObservers(b, ts, tr, conns)
	}
	b.ReportMetric(total/float64(iters), "process-bytes/observer")
}

// benchInUse is HeapInuse+StackInuse after a GC.
func benchInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
