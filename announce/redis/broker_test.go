package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/internal/testenv"
)

// sink records what a Broker hands over. Like the hub it never blocks.
type sink struct {
	mu        sync.Mutex
	delivered []announce.Message
	resyncs   []string
	deleted   []string
}

func (s *sink) Deliver(m announce.Message) {
	s.mu.Lock()
	s.delivered = append(s.delivered, m)
	s.mu.Unlock()
}

func (s *sink) Deleted(channel string) {
	s.mu.Lock()
	s.deleted = append(s.deleted, channel)
	s.mu.Unlock()
}

func (s *sink) Resync(channel string) {
	s.mu.Lock()
	s.resyncs = append(s.resyncs, channel)
	s.mu.Unlock()
}

// messages returns what was delivered on channel, in order.
func (s *sink) messages(channel string) []announce.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []announce.Message
	for _, m := range s.delivered {
		if m.Channel == channel {
			out = append(out, m)
		}
	}
	return out
}

func (s *sink) resynced(channel string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.resyncs {
		if c == channel {
			n++
		}
	}
	return n
}

// waitMessages waits until n messages of channel were delivered and returns them.
func (s *sink) waitMessages(t testing.TB, channel string, n int) []announce.Message {
	t.Helper()
	var got []announce.Message
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("%d messages on %s", n, channel), func() bool {
		got = s.messages(channel)
		return len(got) >= n
	})
	return got
}

// node is one announce instance's Redis side: a store and a broker.
type node struct {
	store  *redis.Store
	broker *redis.Broker
	sink   *sink
}

func newNode(t testing.TB, addr, prefix string, bcfg redis.BrokerConfig) *node {
	t.Helper()
	n := &node{sink: new(sink)}
	n.store = openStore(t, addr, redis.Config{Prefix: prefix})
	if bcfg.URL == "" { // a test may route the broker elsewhere
		bcfg.URL = "redis://" + addr
	}
	bcfg.Prefix = prefix
	n.startBroker(t, bcfg)
	return n
}

// startBroker gives n its broker, closed when the test ends.
func (n *node) startBroker(t testing.TB, bcfg redis.BrokerConfig) {
	t.Helper()
	b, err := redis.NewBroker(bcfg, n.sink)
	if err != nil {
		t.Fatalf("NewBroker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Broker.Close: %v", err)
		}
	})
	n.broker = b
}

func (n *node) watch(t testing.TB, channel string) {
	t.Helper()
	if err := n.broker.Watch(t.Context(), channel); err != nil {
		t.Fatalf("Watch(%q): %v", channel, err)
	}
}

// TestBrokerTwoNodes: a message published on either node reaches both
// brokers, in id order, equal to what Append returned.
func TestBrokerTwoNodes(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	a := newNode(t, addr, prefix, redis.BrokerConfig{})
	b := newNode(t, addr, prefix, redis.BrokerConfig{})
	a.watch(t, "news")
	b.watch(t, "news")

	const n = 200
	var published []announce.Message
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		from := a
		if i%2 == 1 {
			from = b
		}
		wg.Go(func() {
			m, err := from.store.Append(t.Context(), "news", fmt.Sprintf("m%d <&>", i), time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			published = append(published, m)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(published, func(x, y announce.Message) int { return int(x.ID) - int(y.ID) })
	for name, nd := range map[string]*node{"A": a, "B": b} {
		got := nd.sink.waitMessages(t, "news", n)
		if !slices.Equal(got, published) {
			t.Fatalf("node %s received %d messages, not the %d published, in id order", name, len(got), n)
		}
	}
	if a.sink.resynced("news")+b.sink.resynced("news") != 0 {
		t.Errorf("Resync called without a reconnect")
	}
}

// TestBrokerPayloadIsMessageJSON reads the topic with a plain client: the
// payload is exactly encoding/json of the Message, which the hub may reuse.
func TestBrokerPayloadIsMessageJSON(t *testing.T) {
	addr := testenv.Redis(t)
	s := openStore(t, addr, redis.Config{})
	ps := rawClient(t, addr).Subscribe(t.Context(), "announce:{news}")
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(t.Context()); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	m, err := s.Append(t.Context(), "news", `"quoted" <b>é</b>`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ps.ReceiveMessage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(m)
	if got.Payload != string(want) {
		t.Fatalf("payload\n got %s\nwant %s", got.Payload, want)
	}
}

func TestBrokerWatchUnwatch(t *testing.T) {
	addr := testenv.Redis(t)
	nd := newNode(t, addr, uniquePrefix(), redis.BrokerConfig{})
	nd.watch(t, "news")
	nd.watch(t, "news") // idempotent: one subscription, one delivery
	nd.watch(t, "marker")
	publish := func(channel, content string) {
		if _, err := nd.store.Append(t.Context(), channel, content, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	publish("news", "one")
	publish("unwatched", "never delivered")
	publish("marker", "1")
	nd.sink.waitMessages(t, "marker", 1) // pub/sub is ordered: news went first
	if got := nd.sink.messages("news"); len(got) != 1 {
		t.Fatalf("after a double Watch, %d deliveries of one message", len(got))
	}
	if got := nd.sink.messages("unwatched"); len(got) != 0 {
		t.Fatalf("delivered a message of an unwatched channel: %+v", got)
	}

	nd.broker.Unwatch("news")
	nd.broker.Unwatch("news") // harmless
	publish("news", "two")
	publish("marker", "2")
	nd.sink.waitMessages(t, "marker", 2)
	if got := nd.sink.messages("news"); len(got) != 1 {
		t.Fatalf("delivered after Unwatch: %+v", got)
	}

	nd.watch(t, "news")
	publish("news", "three")
	if got := nd.sink.waitMessages(t, "news", 2); got[1].Content != "three" {
		t.Fatalf("after re-Watch got %+v", got)
	}
}

// TestBrokerWatchChurn: Watch, Unwatch and Watch again in quick succession,
// racing another Watch (a hub dropping an idle channel while observers come
// and go). Whenever a Watch returns nil the subscription must be live: the
// next message arrives.
func TestBrokerWatchChurn(t *testing.T) {
	addr := testenv.Redis(t)
	nd := newNode(t, addr, uniquePrefix(), redis.BrokerConfig{})
	for i := range 100 {
		var wg sync.WaitGroup
		wg.Go(func() { _ = nd.broker.Watch(t.Context(), "churn") }) // may lose to Unwatch
		nd.broker.Unwatch("churn")
		nd.watch(t, "churn")
		wg.Wait()
		m, err := nd.store.Append(t.Context(), "churn", fmt.Sprint(i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("message %d after a successful Watch", i), func() bool {
			return slices.Contains(nd.sink.messages("churn"), m)
		})
		nd.broker.Unwatch("churn")
	}
}

// TestBrokerRedisRestart: Redis dies and comes back. Publishing fails with
// ErrUnavailable meanwhile; afterwards the broker resubscribes by itself,
// asks the sink to resync the channel, and delivery resumes.
func TestBrokerRedisRestart(t *testing.T) {
	srv := testenv.StartRedis(t)
	prefix := uniquePrefix()
	nd := newNode(t, srv.Addr, prefix, redis.BrokerConfig{PingInterval: 200 * time.Millisecond})
	nd.watch(t, "news")
	if _, err := nd.store.Append(t.Context(), "news", "before", time.Now()); err != nil {
		t.Fatal(err)
	}
	nd.sink.waitMessages(t, "news", 1)
	if !nd.broker.Healthy() || nd.broker.Ping(t.Context()) != nil {
		t.Fatal("broker not healthy while Redis is up")
	}

	srv.Stop()
	start := time.Now()
	_, err := nd.store.Append(t.Context(), "news", "lost", time.Now())
	if !errors.Is(err, announce.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Fatalf("Append with Redis down: %v after %v, want ErrUnavailable within 2s", err, time.Since(start))
	}
	testenv.WaitFor(t, 5*time.Second, "broker to notice", func() bool { return !nd.broker.Healthy() })
	if err := nd.broker.Ping(t.Context()); !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("Broker.Ping with Redis down = %v, want ErrUnavailable", err)
	}
	if err := nd.broker.Watch(t.Context(), "other"); !errors.Is(err, announce.ErrUnavailable) {
		t.Fatalf("Watch with Redis down = %v, want ErrUnavailable", err)
	}

	srv.Start()
	testenv.WaitFor(t, 10*time.Second, "Resync after reconnect", func() bool { return nd.sink.resynced("news") == 1 })
	if !nd.broker.Healthy() || nd.broker.Reconnects() != 1 {
		t.Fatalf("after reconnect: healthy %v, reconnects %d; want true, 1", nd.broker.Healthy(), nd.broker.Reconnects())
	}
	if nd.sink.resynced("other") != 0 {
		t.Fatal("Resync for a channel whose Watch failed")
	}
	testenv.WaitFor(t, 5*time.Second, "Append after restart", func() bool {
		_, err := nd.store.Append(t.Context(), "news", "after", time.Now())
		return err == nil
	})
	if got := nd.sink.waitMessages(t, "news", 2); got[1].Content != "after" {
		t.Fatalf("after reconnect delivered %+v", got[1])
	}
	nd.watch(t, "other") // works again
}

// TestBrokerResyncAfterKill: Redis stays up but drops the broker's
// connection (as it does to a client over its output buffer limit). A
// message published before the resubscription is missed by pub/sub; the
// Resync that follows lets the sink recover it from history.
func TestBrokerResyncAfterKill(t *testing.T) {
	addr := testenv.Redis(t)
	nd := newNode(t, addr, uniquePrefix(), redis.BrokerConfig{})
	nd.watch(t, "news")
	raw := rawClient(t, addr)
	if err := raw.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	m, err := nd.store.Append(t.Context(), "news", "maybe missed", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "Resync", func() bool { return nd.sink.resynced("news") == 1 })
	if nd.broker.Reconnects() != 1 {
		t.Errorf("Reconnects = %d, want 1", nd.broker.Reconnects())
	}
	// What the hub does on Resync: read history after its last id.
	got, err := nd.store.Since(t.Context(), "news", 0, 0)
	if err != nil || len(got) != 1 || got[0] != m {
		t.Fatalf("history after Resync = %+v, %v; want the missed message", got, err)
	}
	m2, err := nd.store.Append(t.Context(), "news", "live again", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "live delivery after resubscribe", func() bool {
		return slices.Contains(nd.sink.messages("news"), m2)
	})
}

// TestBrokerDetectsDeadConnection: the network path to Redis goes silent
// without closing (a partition, a half-open TCP connection). The broker's
// PING goes unanswered, it gives up on the connection, reconnects and
// resyncs.
func TestBrokerDetectsDeadConnection(t *testing.T) {
	addr := testenv.Redis(t)
	p := newProxy(t, addr)
	nd := newNode(t, addr, uniquePrefix(), redis.BrokerConfig{
		URL:          "redis://" + p.addr(), // only the broker goes through the proxy
		PingInterval: 100 * time.Millisecond,
		OpTimeout:    300 * time.Millisecond,
	})
	nd.watch(t, "news")
	p.freeze() // the existing connections stall; new ones work
	testenv.WaitFor(t, 5*time.Second, "Resync after a dead connection", func() bool { return nd.sink.resynced("news") == 1 })
	m, err := nd.store.Append(t.Context(), "news", "through a new connection", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "delivery", func() bool { return slices.Contains(nd.sink.messages("news"), m) })
}

func TestBrokerCloseStopsEverything(t *testing.T) {
	addr := testenv.Redis(t)
	b, err := redis.NewBroker(redis.BrokerConfig{URL: "redis://" + addr}, new(sink))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Watch(t.Context(), "news"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	_ = b.Close() // idempotent
}

func TestNewBrokerValidates(t *testing.T) {
	if _, err := redis.NewBroker(redis.BrokerConfig{URL: "redis://localhost:6379"}, nil); err == nil {
		t.Error("NewBroker without a sink succeeded")
	}
	if _, err := redis.NewBroker(redis.BrokerConfig{}, new(sink)); err == nil {
		t.Error("NewBroker without a URL succeeded")
	}
}

// BenchmarkPublishDeliver measures publish-to-delivery through Redis: one
// node publishes, another's broker receives.
func BenchmarkPublishDeliver(b *testing.B) {
	addr := testenv.Redis(b)
	prefix := uniquePrefix()
	pub := newNode(b, addr, prefix, redis.BrokerConfig{})
	sub := newNode(b, addr, prefix, redis.BrokerConfig{})
	sub.watch(b, "bench")
	ctx := context.Background()
	b.SetParallelism(8) // publishers wait on Redis, as HTTP handlers would
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pub.store.Append(ctx, "bench", "Server maintenance at 22:00", time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	sub.sink.waitMessages(b, "bench", b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// proxy forwards TCP to Redis; freeze stalls every connection open so far,
// in both directions, without closing it.
type proxy struct {
	l      net.Listener
	mu     sync.Mutex
	frozen []chan struct{} // one gate per connection; closed while it may flow
	stall  chan struct{}   // closed at test end to release stalled copiers
}

func newProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, stall: make(chan struct{})}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		close(p.stall)
		conns.Wait()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			gate := make(chan struct{}, 1)
			gate <- struct{}{} // flowing
			p.mu.Lock()
			p.frozen = append(p.frozen, gate)
			p.mu.Unlock()
			conns.Add(2)
			go func() { defer conns.Done(); p.pipe(up, c, gate) }()
			go func() { defer conns.Done(); p.pipe(c, up, gate) }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

// pipe copies src to dst while gate holds a token; once freeze took it, the
// bytes read are held back until the test ends.
func (p *proxy) pipe(dst, src net.Conn, gate chan struct{}) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case tok := <-gate:
				gate <- tok
			case <-p.stall:
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or closed: either way this direction is done
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, gate := range p.frozen {
		<-gate
	}
	p.frozen = nil
}
