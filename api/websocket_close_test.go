package api_test

// How streams end: shutdown, and abrupt closes that must leak nothing.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
)

func TestShutdownClosesWebSocketsAndEndsSSE(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := ts.Publish(t, "sd", "before")
	ws := dialWS(t, ts, "/channels/sd/ws")
	seed := dialWS(t, ts, "/status")
	sse := openSSE(t, ts.URL+"/channels/sd/events")
	expectWSIDs(t, ws, m.ID)
	sse.expectIDs(t, m.ID)

	stopped := make(chan error, 1)
	go func() { stopped <- ts.API.Shutdown(context.Background()) }()
	if ce := expectWSClose(t, ws, websocket.CloseGoingAway); ce.Text == "" {
		t.Error("1001 without a reason")
	}
	expectWSClose(t, seed, websocket.CloseGoingAway)
	for _, e := range sse.expectEnd(t) {
		if e.HasData {
			t.Errorf("event %+v after shutdown", e)
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still waiting for the streams 10s after it began")
	}
}

// --- Slow consumers, resume under concurrency, and leaks: both streaming
// transports side by side.

// TestWebSocketSSEAbruptClosesLeakNothing drops 500 WebSockets without a
// close frame and cancels 500 SSE requests, some mid-stream: the observers
// are unregistered and the goroutines return to the baseline.
func TestWebSocketSSEAbruptClosesLeakNothing(t *testing.T) {
	const (
		channel = "churn"
		each    = 500
		workers = 16
	)
	ts := newTestServer(t)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	ts.Publish(t, channel, "current")

	churn := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		readFirst := i%2 == 0 // half leave after their first message, half at once
		if (i/2)%2 == 0 {
			conn, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL(ts, "/channels/"+channel+"/ws"), nil)
			if err != nil {
				return err
			}
			if readFirst {
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, _, err := conn.ReadMessage(); err != nil {
					conn.NetConn().Close()
					return err
				}
			}
			return conn.NetConn().Close()
		}
		s, err := dialSSE(ctx, client, ts.URL+"/channels/"+channel+"/events")
		if err != nil {
			return err
		}
		defer s.Close()
		if readFirst {
			if _, err := s.NextMessage(); err != nil {
				return err
			}
		}
		return nil
	}

	// Warm up (the client's and server's lazily started goroutines), then
	// take the baseline.
	for i := range 4 {
		if err := churn(i); err != nil {
			t.Fatal(err)
		}
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
	waitObservers(t, ts.Hub, announce.SSE, 0)
	client.CloseIdleConnections()
	base := runtime.NumGoroutine()

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= 2*each {
					return
				}
				if err := churn(i); err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		})
	}
	// Messages keep flowing, so some connections end mid-write.
	for range 20 {
		ts.Publish(t, channel, "during the churn")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitObservers(t, ts.Hub, announce.WebSocket, 0)
	waitObservers(t, ts.Hub, announce.SSE, 0)
	client.CloseIdleConnections()

	const slack = 10
	deadline := time.Now().Add(20 * time.Second)
	for n := runtime.NumGoroutine(); n > base+slack; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			var stacks bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines 20s after %d abrupt closes, baseline %d:\n%s", n, 2*each, base, stacks.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
