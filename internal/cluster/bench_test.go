package cluster_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// BenchmarkCrossNode measures what a message costs on its way through Redis:
// a publisher POSTs to node A over HTTP, a WebSocket observer on node B
// receives it. Reported: publish-to-delivery latency (p50, p99) and
// publishes per second.
//
//   - serial: one publish at a time, each awaited at the observer: latency
//     without queueing.
//   - parallel: 16 publishers at once: throughput, and latency under it.
func BenchmarkCrossNode(b *testing.B) {
	r := testenv.StartRedis(b)
	nodes := startCluster(b, r.Addr, 2, func(c *serve.Config) { c.Queue = 1 << 16 })
	pubURL, subURL := nodes[0].URL(), nodes[1].URL()
	for _, bc := range []struct {
		name       string
		publishers int
	}{{"serial", 1}, {"parallel", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			ch := fmt.Sprintf("bench-%s-%d", bc.name, time.Now().UnixNano())
			rec := newArrivals(b, subURL, ch, b.N)
			sent := make([]time.Time, b.N)
			body := func(i int) []byte { return []byte(`{"content":"` + strconv.Itoa(i) + `"}`) }
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range bc.publishers {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						sent[i] = time.Now()
						resp, err := httpClient.Post(pubURL+"/channels/"+ch+"/messages", "application/json", bytes.NewReader(body(i)))
						if err != nil {
							b.Error(err)
							return
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusCreated {
							b.Errorf("publish: status %d", resp.StatusCode)
							return
						}
						if bc.publishers == 1 {
							rec.await(b, i)
						}
					}
				})
			}
			wg.Wait()
			rec.await(b, b.N-1)
			rec.all(b)
			elapsed := time.Since(start)
			b.StopTimer()

			lat := make([]time.Duration, b.N)
			for i := range lat {
				lat[i] = rec.at(i).Sub(sent[i])
			}
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pub/s")
		})
	}
}

// arrivals is a WebSocket observer that records when each benchmark
// message (content: its index) arrived.
type arrivals struct {
	mu      sync.Mutex
	times   []time.Time
	seen    int
	changed chan struct{} // signalled on every arrival
	err     error
}

func newArrivals(b *testing.B, base, ch string, n int) *arrivals {
	b.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/channels/" + ch + "/ws"
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		b.Fatalf("dial %s: %v", u, err)
	}
	a := &arrivals{times: make([]time.Time, n), changed: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			now := time.Now()
			var m struct {
				Content string `json:"content"`
			}
			if err := json.Unmarshal(data, &m); err != nil {
				a.fail(fmt.Errorf("frame %q: %w", data, err))
				return
			}
			i, err := strconv.Atoi(m.Content)
			a.mu.Lock()
			if err != nil || i < 0 || i >= n || !a.times[i].IsZero() {
				a.err = fmt.Errorf("unexpected or duplicate frame %q", data)
			} else {
				a.times[i] = now
				a.seen++
			}
			a.mu.Unlock()
			select {
			case a.changed <- struct{}{}:
			default:
			}
		}
	}()
	b.Cleanup(func() {
		conn.Close()
		<-done
	})
	return a
}

func (a *arrivals) fail(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *arrivals) wait(b *testing.B, what string, cond func() bool) {
	b.Helper()
	timeout := time.NewTimer(settle)
	defer timeout.Stop()
	for {
		a.mu.Lock()
		ok, err := cond(), a.err
		a.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			return
		}
		select {
		case <-a.changed:
		case <-timeout.C:
			b.Fatalf("waited %v for %s", settle, what)
		}
	}
}

// await waits until message i arrived.
func (a *arrivals) await(b *testing.B, i int) {
	b.Helper()
	a.wait(b, fmt.Sprintf("message %d", i), func() bool { return !a.times[i].IsZero() })
}

// all waits until every message arrived.
func (a *arrivals) all(b *testing.B) {
	b.Helper()
	a.wait(b, "every message", func() bool { return a.seen == len(a.times) })
}

func (a *arrivals) at(i int) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.times[i]
}
