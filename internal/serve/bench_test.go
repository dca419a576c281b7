//go:build unix

package serve_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// BenchmarkPublishHTTP is the end-to-end publish throughput of one node:
// publishers concurrent clients, each on its own keep-alive connection, POST
// to a real node (serve.Start) over loopback and wait for the 201. On the
// embedded store (store=bolt) every 201 waited for an fsync; store=memory
// shows what the HTTP path alone costs. The clients write requests and
// parse answers by hand, as a load generator (wrk, h2load) does, so most of
// the CPU goes to the server; they share the machine's CPUs all the same.
//
//	go test -run '^$' -bench 'PublishHTTP/store=bolt' -benchtime 5s ./internal/serve
//
// publishes/s depends on whatever else the machine runs; cpu-µs/publish
// (clients and server together) much less so, and an idle machine of C
// cores tops out near C / cpu-µs/publish. BenchmarkPublishHTTPClient uses
// Go's net/http client instead; BenchmarkHTTPFloor is the same load against
// a handler that does nothing.
func BenchmarkPublishHTTP(b *testing.B) {
	for _, store := range []string{"bolt", "memory"} {
		for _, publishers := range []int{16, 64, 256} {
			for _, channels := range []int{1, 8} {
				b.Run(fmt.Sprintf("store=%s/publishers=%d/channels=%d", store, publishers, channels), func(b *testing.B) {
					node := benchNode(b, store == "memory")
					benchPublish(b, publishers, func(i int) publisher {
						return dialPublisher(b, node.Addr(), fmt.Sprintf("/channels/bench-%d/messages", i%channels))
					})
				})
			}
		}
	}
}

// BenchmarkPublishHTTPClient is BenchmarkPublishHTTP on the embedded store
// with Go's net/http client, whose CPU counts too.
func BenchmarkPublishHTTPClient(b *testing.B) {
	for _, publishers := range []int{64, 256} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			node := benchNode(b, false)
			client := &http.Client{Transport: &http.Transport{
				MaxIdleConnsPerHost: publishers,
				MaxConnsPerHost:     publishers,
				DisableCompression:  true,
			}, Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			benchPublish(b, publishers, func(int) publisher {
				return func() error {
					resp, err := client.Post(node.URL()+"/channels/bench/messages", "text/plain; charset=utf-8", strings.NewReader(benchContent))
					if err != nil {
						return err
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						return fmt.Errorf("publish: %s", resp.Status)
					}
					return nil
				}
			})
		})
	}
}

// BenchmarkHTTPFloor is BenchmarkPublishHTTP's load against a bare net/http
// handler answering 201 with a message-sized body: the cost of the HTTP
// round trip itself on this machine.
func BenchmarkHTTPFloor(b *testing.B) {
	body := []byte(`{"id":1,"channel":"bench-0","content":"Server maintenance at 22:00","time":"2026-11-22T10:00:00.123456Z"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	for _, publishers := range []int{64, 256} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			benchPublish(b, publishers, func(int) publisher {
				return dialPublisher(b, srv.Listener.Addr().String(), "/channels/bench/messages")
			})
		})
	}
}

const benchContent = "Server maintenance at 22:00"

func benchNode(b *testing.B, memory bool) *serve.Node {
	cfg := serve.Config{Listen: "127.0.0.1:0", Memory: memory}
	if !memory {
		cfg.DataDir = b.TempDir()
	}
	node, err := serve.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = testenv.Stop(5*time.Second, node.Shutdown) })
	return node
}

// publisher publishes one message and reports a failure.
type publisher func() error

// benchPublish runs b.N publishes from publishers goroutines; goroutine i
// publishes with newPublisher(i).
func benchPublish(b *testing.B, publishers int, newPublisher func(i int) publisher) {
	var next atomic.Int64
	b.SetParallelism(max(1, publishers/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		publish := newPublisher(int(next.Add(1)))
		for pb.Next() {
			if err := publish(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/publish")
}

// dialPublisher opens a keep-alive connection to addr and returns a
// publisher that POSTs to path over it and reads the answer by hand.
func dialPublisher(b *testing.B, addr, path string) publisher {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Error(err)
		return func() error { return err }
	}
	b.Cleanup(func() { conn.Close() })
	req := []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s",
		path, addr, len(benchContent), benchContent))
	br := bufio.NewReader(conn)
	return func() error {
		if _, err := conn.Write(req); err != nil {
			return err
		}
		return readAnswer(br, http.StatusCreated)
	}
}

// readAnswer reads one HTTP/1.1 answer with a Content-Length body from br
// and checks its status.
func readAnswer(br *bufio.Reader, want int) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || string(line[9:12]) != strconv.Itoa(want) {
		return fmt.Errorf("answer %q, want %d", line, want)
	}
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 { // the blank line
			break
		}
		if name, value, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return fmt.Errorf("header %q: %w", h, err)
			}
		}
	}
	if length < 0 {
		return errors.New("answer without Content-Length")
	}
	_, err = br.Discard(length)
	return err
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
