//go:build unix

package serve_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/announce/announce/internal/testenv"
)

// The churn soak: clients connect and leave at about soakRate a second,
// spread over long-poll, SSE and WebSocket, while messages are published;
// the server's RSS and goroutines are sampled along the way and printed.
// CI runs it for 2 minutes; `make soak` sets ANNOUNCE_SOAK=30m.
const soakRate = 1000

// After the churn, every observer is gone, the goroutines are back near
// where they started, every acknowledged publish is stored, and the server
// answers.
func TestChurnSoak(t *testing.T) {
	dur := testenv.Duration(t, "ANNOUNCE_SOAK", 2*time.Minute)
	srv := startServer(t, t.TempDir(), "--max-conns-per-ip", "0")
	sample := max(dur/12, 10*time.Second)
	if dur >= 10*time.Minute {
		sample = time.Minute
	}
	const channels = 50
	var acked [channels]atomic.Uint64
	for i := range channels { // every stream replays a message at once
		m := publishText(t, srv.URL, fmt.Sprint("soak-", i), "first")
		acked[i].Store(m.ID)
	}
	base := metricsOf(t, srv.URL)
	t.Logf("%8s %10s %10s %9s %10s", "elapsed", "rss MiB", "goroutines", "observers", "churned")
	t.Logf("%8s %10.1f %10.0f %9.0f %10d", "0s", base["process_resident_memory_bytes"]/(1<<20), base["go_goroutines"], base["announce_observers"], 0)

	ctx, cancel := context.WithTimeout(t.Context(), dur)
	defer cancel()
	lim := rate.NewLimiter(soakRate, 50)
	var churned, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; ; i += 32 {
				if lim.Wait(ctx) != nil {
					return
				}
				if err := churnOnce(srv.Addr, i%3, fmt.Sprint("soak-", i%channels)); err != nil {
					failed.Add(1)
				} else {
					churned.Add(1)
				}
			}
		})
	}
	wg.Go(func() { // publishes flow meanwhile, 50 a second
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ch := i % channels
			if m, err := tryPublish(httpClient, srv.URL, fmt.Sprint("soak-", ch), "m"); err == nil {
				acked[ch].Store(max(acked[ch].Load(), m.ID))
			}
		}
	})
	start := time.Now()
	tick := time.NewTicker(sample)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		m := metricsOf(t, srv.URL)
		t.Logf("%8s %10.1f %10.0f %9.0f %10d", time.Since(start).Round(time.Second), m["process_resident_memory_bytes"]/(1<<20),
			m["go_goroutines"], m["announce_observers"], churned.Load())
	}
	tick.Stop()
	wg.Wait()
	t.Logf("churned %d connections (%.0f/s), %d failed", churned.Load(), float64(churned.Load())/dur.Seconds(), failed.Load())

	testenv.WaitFor(t, 60*time.Second, "observers gone and goroutines back", func() bool {
		m := metricsOf(t, srv.URL)
		return m["announce_observers"] == 0 && m["go_goroutines"] <= base["go_goroutines"]+50
	})
	for i := range channels {
		if cur := getChannel(t, srv.URL, fmt.Sprint("soak-", i)).Current.ID; cur < acked[i].Load() {
			t.Errorf("soak-%d: current id %d, but %d was acknowledged", i, cur, acked[i].Load())
		}
	}
}

// churnOnce connects with one transport, reads the replayed message, and
// leaves (with a reset, so a thousand a second leave no TIME_WAIT behind).
func churnOnce(addr string, transport int, channel string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer func() {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var req string
	switch transport {
	case 0: // a long-poll with a stale cursor answers at once
		req = "GET /channels/" + channel + "/status?since=0 HTTP/1.1\r\nHost: x\r\n\r\n"
	case 1:
		req = "GET /channels/" + channel + "/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
	default:
		req = "GET /channels/" + channel + "/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	}
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	switch transport {
	case 0:
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	case 1:
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sse: %s", resp.Status)
		}
		for { // up to the replayed message's data line
			line, err := r.ReadString('\n')
			if err != nil || strings.HasPrefix(line, "data:") {
				return err
			}
		}
	default:
		if resp.StatusCode != http.StatusSwitchingProtocols {
			return fmt.Errorf("ws: %s", resp.Status)
		}
		var h [2]byte
		_, err = io.ReadFull(r, h[:]) // the replayed message's frame has begun
		return err
	}
}

// metricsOf reads the unlabelled gauges of /metrics, summing labelled series by name.
func metricsOf(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		v, err := strconv.ParseFloat(value, 64)
		if err == nil {
			out[name] += v
		}
	}
	return out
}
