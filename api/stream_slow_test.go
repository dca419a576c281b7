package api_test

// Slow consumers on both streaming transports side by side.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
)

// leadingID reads the id of a message frame from its first bytes, so that
// the flood below costs its readers no JSON decoding of 64 KiB contents.
func leadingID(prefix []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(prefix, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	id, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return id, err == nil
}

// scrapeMetric returns the value of the sample line that starts with series
// (a metric name with its labels) on /metrics.
func scrapeMetric(t testing.TB, ts *testServer, series string) float64 {
	t.Helper()
	resp, body := ts.get(t, "/metrics")
	assertStatus(t, resp, body, http.StatusOK)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s on /metrics", series)
	return 0
}

// TestSlowConsumerCutWhileOthersKeepUp floods a channel with 64 KiB messages
// while one WebSocket and one SSE client stop reading: each is cut alone
// (1008 "slow consumer" / the stream ends with an error event), while 200
// WebSocket observers that read receive every message in order.
func TestSlowConsumerCutWhileOthersKeepUp(t *testing.T) {
	const (
		channel   = "flood"
		observers = 200
		maxFlood  = 600 // far more than the kernel buffers of one socket pair hold
		lag       = 2   // the flood waits for the readers: their queues never fill
	)
	ts := newTestServerHub(t, func(c *announce.Config) { c.Queue = 16 },
		// The cut client reads its backlog, and the close, only after the
		// flood: the server's blocked write must outlast that.
		func(c *api.Config) { c.WriteTimeout = 60 * time.Second })
	content := strings.Repeat("x", ts.Hub.MaxMessage())

	// The readers.
	var (
		wg       sync.WaitGroup
		stopping atomic.Bool
		lasts    [observers]atomic.Uint64
		failures = make(chan error, observers)
	)
	for i := range observers {
		conn := dialWS(t, ts, "/channels/"+channel+"/ws")
		wg.Go(func() {
			head := make([]byte, 32)
			for {
				_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
				kind, r, err := conn.NextReader()
				if err != nil {
					if !stopping.Load() {
						failures <- fmt.Errorf("observer %d after id %d: %v", i, lasts[i].Load(), err)
					}
					return
				}
				n, _ := io.ReadFull(r, head)
				id, ok := leadingID(head[:n])
				if _, err := io.Copy(io.Discard, r); err != nil || kind != websocket.TextMessage || !ok || id != lasts[i].Load()+1 {
					failures <- fmt.Errorf("observer %d after id %d: frame %q... (type %d, read error %v)", i, lasts[i].Load(), head[:n], kind, err)
					return
				}
				lasts[i].Store(id)
			}
		})
	}
	t.Cleanup(func() {
		stopping.Store(true)
		shutdownAPI(t, ts.API) // ends the readers
		wg.Wait()
	})
	minLast := func() uint64 {
		low := lasts[0].Load()
		for i := range lasts {
			low = min(low, lasts[i].Load())
		}
		return low
	}

	// The clients that stop reading. They need no tiny kernel buffer: the
	// kernel grows a socket's receive buffer only as its reader consumes, so
	// one that never reads keeps the initial one (a 4 KiB buffer would even
	// hurt: through such a window, delayed ACKs and zero-window probes make
	// reading the backlog afterwards take minutes).
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	slowWS, _, err := (&websocket.Dialer{ReadBufferSize: 1024}).DialContext(ctx, wsURL(ts, "/channels/"+channel+"/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowWS.Close()
	slowClient := &http.Client{Transport: &http.Transport{ReadBufferSize: 4096}}
	defer slowClient.CloseIdleConnections()
	slowSSE, err := dialSSE(ctx, slowClient, ts.URL+"/channels/"+channel+"/events")
	if err != nil {
		t.Fatal(err)
	}
	defer slowSSE.Close()
	if slowSSE.Resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE status %d", slowSSE.Resp.StatusCode)
	}
	waitObservers(t, ts.Hub, announce.WebSocket, observers+1)
	waitObservers(t, ts.Hub, announce.SSE, 1)

	// The flood, until both silent clients are cut.
	start := time.Now()
	var published uint64
	for ts.Hub.Stats().SlowConsumers() < 2 {
		if published >= maxFlood {
			t.Fatalf("%d messages of %d bytes published and %d slow consumers cut, want 2", published, len(content), ts.Hub.Stats().SlowConsumers())
		}
		published = ts.Publish(t, channel, content).ID
		testenv.WaitFor(t, 30*time.Second, "the reading observers to keep up", func() bool {
			return minLast()+lag >= published || len(failures) > 0
		})
		if len(failures) > 0 {
			t.Fatal(<-failures)
		}
	}
	t.Logf("both silent clients cut after %d messages of %d bytes (%v)", published, len(content), time.Since(start))
	if n := ts.Hub.Stats().SlowConsumers(); n != 2 {
		t.Fatalf("%d slow consumers cut, want exactly the 2 silent clients", n)
	}
	if n := ts.Hub.Stats().Observers(announce.WebSocket); n != observers {
		t.Errorf("%d WebSocket observers left, want the %d readers", n, observers)
	}
	if n := ts.Hub.Stats().Observers(announce.SSE); n != 0 {
		t.Errorf("%d SSE observers left, want 0", n)
	}
	if v := scrapeMetric(t, ts, "announce_slow_consumers_total"); v < 2 {
		t.Errorf("announce_slow_consumers_total %v, want >= 2", v)
	}

	// Every reader got everything, in order (each checked id == last+1).
	last := ts.Publish(t, channel, "the end").ID
	testenv.WaitFor(t, 30*time.Second, "every reader to get the last message", func() bool {
		return minLast() == last || len(failures) > 0
	})
	if len(failures) > 0 {
		t.Fatal(<-failures)
	}

	// The silent WebSocket, reading at last: a gapless prefix, then 1008.
	start = time.Now()
	var got uint64
	for {
		_ = slowWS.SetReadDeadline(time.Now().Add(30 * time.Second))
		kind, r, err := slowWS.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "slow consumer" {
				t.Fatalf("silent WebSocket ended with %v after %d messages, want close 1008 \"slow consumer\"", err, got)
			}
			break
		}
		head := make([]byte, 32)
		n, _ := io.ReadFull(r, head)
		id, ok := leadingID(head[:n])
		if _, err := io.Copy(io.Discard, r); err != nil || kind != websocket.TextMessage || !ok || id != got+1 {
			t.Fatalf("silent WebSocket after id %d: frame %q (%v)", got, head[:n], err)
		}
		got = id
	}
	if got == 0 || got >= published {
		t.Errorf("silent WebSocket got ids 1..%d of %d before its close", got, published)
	}

	t.Logf("silent WebSocket read its %d messages and the close (%v)", got, time.Since(start))

	// The silent SSE stream: a gapless prefix, an error event, the end.
	start = time.Now()
	got = 0
	var events []sseEvent
	for {
		e, err := slowSSE.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("silent SSE stream failed after id %d: %v", got, err)
		}
		if !e.HasData {
			continue
		}
		events = append(events, e)
		if e.Event != "message" {
			continue
		}
		if id, err := strconv.ParseUint(e.ID, 10, 64); err != nil || id != got+1 {
			t.Fatalf("silent SSE stream after id %d: event id %q", got, e.ID)
		}
		got++
	}
	t.Logf("silent SSE stream read its %d messages and its end (%v)", got, time.Since(start))
	if got == 0 || got >= published {
		t.Errorf("silent SSE stream got ids 1..%d of %d before it ended", got, published)
	}
	if len(events) == 0 || events[len(events)-1].Event != "error" || !strings.Contains(events[len(events)-1].Data, "slow consumer") {
		t.Errorf("silent SSE stream did not end with an error event naming the slow consumer")
	}
}
