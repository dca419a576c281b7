package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

var transports = []client.Transport{client.WebSocket, client.SSE, client.Poll}

func startNode(t *testing.T, cfg serve.Config) *serve.Node {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	var node *serve.Node
	var err error
	for range 50 { // the same address right after a shutdown may take a moment
		if node, err = serve.Start(cfg); err == nil {
			return node
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("starting a node on %s: %v", cfg.Listen, err)
	return nil
}

func newClient(t *testing.T, server string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Server: server, Retries: 20})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// receive reads n messages from sub, failing the test after timeout.
func receive(t *testing.T, sub *client.Subscription, n int, timeout time.Duration) []client.Message {
	t.Helper()
	var got []client.Message
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				t.Fatalf("subscription ended after %d of %d messages: %v", len(got), n, sub.Err())
			}
			got = append(got, m)
		case <-deadline:
			t.Fatalf("only %d of %d messages within %s: %v", len(got), n, timeout, got)
		}
	}
	return got
}

// nothingBefore publishes a marker on channel and fails unless it is the
// next message sub delivers: nothing else came in between (no duplicate,
// no replay), proven without waiting for a silence.
func nothingBefore(t *testing.T, c *client.Client, sub *client.Subscription, channel string) {
	t.Helper()
	m, err := c.Publish(context.Background(), channel, "marker")
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sub, 1, 10*time.Second)[0]; got.ID != m.ID {
		t.Fatalf("got %+v before the marker %d", got, m.ID)
	}
}

// TestResumeAcrossRestart stops the node mid-stream and starts a new one on
// the same address and data directory (bolt store); the subscriber, which
// reconnects and resumes by its cursor, must get every id exactly once, in order.
func TestResumeAcrossRestart(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			node := startNode(t, serve.Config{DataDir: dir})
			addr := node.Addr()
			c := newClient(t, node.URL())
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			since := uint64(0)
			sub := c.Subscribe(ctx, "restart", client.SubscribeOptions{Transport: tr, Since: &since, MaxBackoff: 300 * time.Millisecond})
			defer sub.Close()
			var reconnects atomic.Int32
			go func() {
				for ev := range sub.Events() {
					if ev.Kind == client.Reconnecting {
						reconnects.Add(1)
					}
					t.Log(ev)
				}
			}()

			const total = 30
			publish := func(i int) {
				if _, err := c.Publish(ctx, "restart", fmt.Sprintf("m%d", i)); err != nil {
					t.Errorf("publish %d: %v", i, err)
				}
			}
			for i := 1; i <= 10; i++ {
				publish(i)
			}
			got := receive(t, sub, 5, 10*time.Second) // mid-stream: some arrived, some are in flight

			if err := testenv.Stop(5*time.Second, node.Shutdown); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			// Publish while the server is down: the client retries until the new node is up.
			published := make(chan struct{})
			go func() {
				defer close(published)
				for i := 11; i <= 15; i++ {
					publish(i)
				}
			}()
			testenv.WaitFor(t, 10*time.Second, "the subscriber to notice the server is down", func() bool { return reconnects.Load() > 0 })
			node = startNode(t, serve.Config{Listen: addr, DataDir: dir})
			defer testenv.Stop(5*time.Second, node.Shutdown)
			<-published
			for i := 16; i <= total; i++ {
				publish(i)
			}

			got = append(got, receive(t, sub, total-len(got), 20*time.Second)...)
			for i, m := range got {
				if want := uint64(i + 1); m.ID != want || m.Content != fmt.Sprintf("m%d", want) || m.Channel != "restart" {
					t.Fatalf("message %d is %+v, want id %d content m%d", i, m, want, want)
				}
			}
			nothingBefore(t, c, sub, "restart")
			if reconnects.Load() == 0 {
				t.Errorf("no Reconnecting event across a restart")
			}
		})
	}
}

// TestSubscribeCurrentThenLive: without a cursor a subscriber gets the
// current message, then the new ones.
func TestSubscribeCurrentThenLive(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	c := newClient(t, node.URL())
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			channel := "live-" + string(tr)
			for i := 1; i <= 3; i++ {
				if _, err := c.Publish(ctx, channel, fmt.Sprint("old", i)); err != nil {
					t.Fatal(err)
				}
			}
			sub := c.Subscribe(ctx, channel, client.SubscribeOptions{Transport: tr})
			defer sub.Close()
			if m := receive(t, sub, 1, 5*time.Second)[0]; m.ID != 3 || m.Content != "old3" {
				t.Fatalf("first message %+v, want the current one (3)", m)
			}
			waitConnected(t, sub)
			m, err := c.Publish(ctx, channel, "new")
			if err != nil {
				t.Fatal(err)
			}
			if got := receive(t, sub, 1, 5*time.Second)[0]; got.ID != m.ID || got.Content != m.Content {
				t.Fatalf("got %+v, want %+v", got, m)
			}
			nothingBefore(t, c, sub, channel)
		})
	}
}

func waitConnected(t *testing.T, sub *client.Subscription) {
	t.Helper()
	for {
		select {
		case ev := <-sub.Events():
			if ev.Kind == client.Connected {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no Connected event")
		}
	}
}

// TestSubscribeTruncated: a cursor older than the history reports the gap.
func TestSubscribeTruncated(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true, History: 5})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	c := newClient(t, node.URL())
	ctx := context.Background()
	for i := 1; i <= 12; i++ {
		if _, err := c.Publish(ctx, "short", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			since := uint64(2)
			sub := c.Subscribe(ctx, "short", client.SubscribeOptions{Transport: tr, Since: &since})
			defer sub.Close()
			got := receive(t, sub, 5, 5*time.Second)
			if got[0].ID != 8 || got[4].ID != 12 {
				t.Fatalf("got ids %d..%d, want 8..12", got[0].ID, got[4].ID)
			}
			for {
				ev := <-sub.Events()
				if ev.Kind == client.Truncated {
					if ev.Since != 2 || ev.First != 8 {
						t.Errorf("truncated %d..%d, want since 2 first 8", ev.Since, ev.First)
					}
					return
				}
			}
		})
	}
}

// TestSubscribeReset: a cursor ahead of the server's ids (its store was
// reset) starts over from the first message of the new store, instead of
// dropping everything as a duplicate.
func TestSubscribeReset(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true, PollTimeout: time.Second})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	c := newClient(t, node.URL())
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			channel := "reset-" + string(tr)
			since := uint64(50)
			sub := c.Subscribe(ctx, channel, client.SubscribeOptions{Transport: tr, Since: &since, PollWait: time.Second})
			defer sub.Close()
			waitConnected(t, sub)
			for i := 1; i <= 3; i++ {
				if _, err := c.Publish(ctx, channel, fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
			}
			got := receive(t, sub, 3, 10*time.Second)
			nothingBefore(t, c, sub, channel)
			for i, m := range got {
				if m.ID != uint64(i+1) {
					t.Fatalf("got %+v, want ids 1..3", got)
				}
			}
		})
		// Reconnecting to a store that is already ahead: the whole new history.
		t.Run(string(tr)+"/behind", func(t *testing.T) {
			channel := "reset-behind-" + string(tr)
			for i := 1; i <= 3; i++ {
				if _, err := c.Publish(ctx, channel, fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
			}
			since := uint64(50)
			sub := c.Subscribe(ctx, channel, client.SubscribeOptions{Transport: tr, Since: &since, PollWait: time.Second})
			defer sub.Close()
			got := receive(t, sub, 3, 10*time.Second)
			for i, m := range got {
				if m.ID != uint64(i+1) {
					t.Fatalf("got %+v, want ids 1..3", got)
				}
			}
			nothingBefore(t, c, sub, channel)
		})
	}
}

func TestSubscribeFinalErrors(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	ctx := context.Background()
	c := newClient(t, node.URL())
	sub := c.Subscribe(ctx, "no/such", client.SubscribeOptions{})
	<-sub.Done()
	if !errors.Is(sub.Err(), announce.ErrInvalidChannel) {
		t.Errorf("invalid channel: Err() = %v", sub.Err())
	}
	// A 404 from the server (wrong base path) is final too, for every transport.
	wrong := newClient(t, node.URL()+"/nope")
	for _, tr := range transports {
		sub := wrong.Subscribe(ctx, "x", client.SubscribeOptions{Transport: tr, Since: new(uint64)})
		select {
		case <-sub.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: a 404 did not end the subscription", tr)
		}
		var e *client.Error
		if !errors.As(sub.Err(), &e) || e.StatusCode != http.StatusNotFound || e.Reason == "" {
			t.Errorf("%s: Err() = %v, want a 404 *client.Error with its reason", tr, sub.Err())
		}
	}
	sub = c.Subscribe(ctx, "x", client.SubscribeOptions{Transport: "carrier-pigeon"})
	<-sub.Done()
	if sub.Err() == nil {
		t.Error("an unknown transport did not fail")
	}
}

func TestCloseEndsSubscription(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	c := newClient(t, node.URL())
	for _, tr := range transports {
		sub := c.Subscribe(context.Background(), "x", client.SubscribeOptions{Transport: tr})
		waitConnected(t, sub)
		done := make(chan struct{})
		go func() { sub.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Close did not return", tr)
		}
		if _, ok := <-sub.Messages(); ok {
			t.Errorf("%s: Messages still open after Close", tr)
		}
		if !errors.Is(sub.Err(), context.Canceled) {
			t.Errorf("%s: Err() = %v after Close", tr, sub.Err())
		}
	}
}
