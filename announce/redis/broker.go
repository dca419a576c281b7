package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// BrokerConfig configures a Broker. URL, Prefix and OpTimeout mean what they
// mean in Config and must match the Store's.
type BrokerConfig struct {
	URL       string
	Prefix    string
	OpTimeout time.Duration
	// PingInterval is how long the subscription may stay silent before the
	// broker PINGs to prove it alive; a PING unanswered for OpTimeout means
	// a dead connection (say a half-open TCP after a network partition) and
	// forces a reconnect. Default 5 s.
	PingInterval time.Duration
	// MaxBackoff caps the wait between reconnect attempts; default 2 s.
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

func (c *BrokerConfig) fill() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 5 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return validatePrefix(c.Prefix)
}

// minBackoff is the first wait after a failed reconnect attempt.
const minBackoff = 50 * time.Millisecond

// Broker is an announce.Broker on Redis pub/sub: one connection subscribed
// to the topic of every watched channel, and one goroutine reading it.
//
// The reader hands each message to sink.Deliver and never waits on anything
// else. go-redis redials and resubscribes by itself after a connection
// loss; each resubscription confirmation for a channel we had already
// subscribed is the proof that messages may have been missed in between, so
// the broker calls sink.Resync for that channel at that moment, when the new
// subscription is already live: everything published later arrives here,
// everything earlier is in the history.
type Broker struct {
	// On Redis Cluster the Broker only routes each channel to the broker
	// of its slot's master (broker_cluster.go); the fields below are then
	// unused.
	router *shardRouter

	ps        *goredis.PubSub
	client    goredis.UniversalClient // nil for a shard's broker: the cluster client owns it
	sharded   bool                    // SSUBSCRIBE rather than SUBSCRIBE
	sink      announce.BrokerSink
	keys      keys
	opTimeout time.Duration
	ping      time.Duration
	maxWait   time.Duration
	log       *slog.Logger

	// subMu orders SUBSCRIBE and UNSUBSCRIBE commands with the maps below
	// (see watch.go). It is held across those commands, each bounded by
	// OpTimeout, and never by the reader.
	subMu   sync.Mutex
	mu      sync.Mutex               // guards the maps; never held during I/O
	watched map[string]*watch        // by topic: pending and confirmed watches
	leaving map[string]chan struct{} // by topic: UNSUBSCRIBE sent, its reply not yet read

	healthy    atomic.Bool
	reconnects atomic.Uint64
	dropped    atomic.Uint64
	lastErr    atomic.Pointer[error]

	quit chan struct{} // closed by Close
	done chan struct{} // closed when the reader exits
	once sync.Once
}

var (
	_ announce.Broker = (*Broker)(nil)
	_ announce.Pinger = (*Broker)(nil)
)

// NewBroker starts a broker delivering to sink. Like Open it does not wait
// for Redis: the reader connects in the background and keeps trying.
func NewBroker(cfg BrokerConfig, sink announce.BrokerSink) (*Broker, error) {
	if sink == nil {
		return nil, errors.New("redis: broker needs a sink")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	client, err := newClient(cfg.URL, cfg.OpTimeout)
	if err != nil {
		return nil, err
	}
	if cc, ok := client.(*goredis.ClusterClient); ok {
		return &Broker{router: newShardRouter(cc, cfg, sink)}, nil
	}
	return newBroker(cfg, sink, client.Subscribe(context.Background()), client), nil
}

// newBroker starts the reader of a broker on ps; cfg is filled. Close
// closes owned unless it is nil.
func newBroker(cfg BrokerConfig, sink announce.BrokerSink, ps *goredis.PubSub, owned goredis.UniversalClient) *Broker {
	b := &Broker{
		ps:        ps,
		client:    owned,
		sink:      sink,
		keys:      keys{prefix: cfg.Prefix},
		opTimeout: cfg.OpTimeout,
		ping:      cfg.PingInterval,
		maxWait:   cfg.MaxBackoff,
		log:       cfg.Logger,
		watched:   make(map[string]*watch),
		leaving:   make(map[string]chan struct{}),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go b.read()
	return b
}

// Healthy reports whether the subscription connection is up and answering.
func (b *Broker) Healthy() bool {
	if b.router != nil {
		return b.router.ping() == nil
	}
	return b.healthy.Load()
}

// Ping implements announce.Pinger for /readyz: nil while the subscription
// connection is healthy. It does not touch the network, the reader keeps
// the state current.
func (b *Broker) Ping(context.Context) error {
	if b.router != nil {
		return b.router.ping()
	}
	if b.healthy.Load() {
		return nil
	}
	if err := b.lastErr.Load(); err != nil {
		return unavailable("pubsub", *err)
	}
	return unavailable("pubsub", errors.New("not connected yet"))
}

// Reconnects counts connections re-established after a loss.
func (b *Broker) Reconnects() uint64 {
	if b.router != nil {
		return b.router.sum((*Broker).Reconnects) + b.router.retired.Load()
	}
	return b.reconnects.Load()
}

// Dropped counts pub/sub payloads that could not be decoded.
func (b *Broker) Dropped() uint64 {
	if b.router != nil {
		return b.router.sum((*Broker).Dropped)
	}
	return b.dropped.Load()
}

// Close implements announce.Broker: it stops the reader and closes the
// connection. Watch and Unwatch must not be called after Close.
func (b *Broker) Close() error {
	if b.router != nil {
		return b.router.close()
	}
	var err error
	b.once.Do(func() {
		close(b.quit)
		err = b.ps.Close() // wakes the reader blocked on the socket
		<-b.done
		if b.client == nil {
			return
		}
		if cerr := b.client.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

func (b *Broker) closing() bool {
	select {
	case <-b.quit:
		return true
	default:
		return false
	}
}

// read is the broker's single reader. It is a small state machine:
//
//   - not connected: PING through the PubSub, which makes go-redis dial and
//     resubscribe every topic, then expect the PONG;
//   - connected and idle for PingInterval: PING and expect the PONG;
//   - expecting a PONG: read with a deadline of OpTimeout; a timeout there
//     counts as a dead connection, which go-redis then drops.
//
// Failures wait a jittered exponential backoff, so a vanished Redis costs a
// few attempts per second at most.
func (b *Broker) read() {
	defer close(b.done)
	var (
		up        bool // the current connection has answered
		lost      bool // a connection was up and failed since
		awaitPong bool
		backoff   = minBackoff
	)
	fail := func(err error) {
		if up {
			lost = true
			b.log.Warn("redis pubsub connection lost", "err", err)
		}
		up, awaitPong = false, false
		b.healthy.Store(false)
		b.connectionLost()
		b.lastErr.Store(&err)
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		defer t.Stop()
		select {
		case <-t.C:
		case <-b.quit:
		}
		backoff = min(backoff*2, b.maxWait)
	}
	for !b.closing() {
		if !up && !awaitPong {
			if err := b.pingNow(); err != nil {
				fail(err)
				continue
			}
			awaitPong = true
		}
		var msg any
		var err error
		if awaitPong {
			ctx, cancel := context.WithTimeout(context.Background(), b.opTimeout)
			msg, err = b.ps.ReceiveTimeout(ctx, 0)
			cancel()
		} else {
			msg, err = b.ps.ReceiveTimeout(context.Background(), b.ping)
		}
		if err != nil {
			if b.closing() {
				return
			}
			var ne net.Error
			if !awaitPong && errors.As(err, &ne) && ne.Timeout() {
				// Idle, not broken: go-redis keeps the connection after a
				// timeout it was told to allow. Prove it alive. (Should the
				// deadline cut a large message in half, the next read fails
				// to parse, go-redis redials and the sink resyncs: no loss.)
				if err := b.pingNow(); err != nil {
					fail(err)
				} else {
					awaitPong = true
				}
				continue
			}
			fail(err)
			continue
		}
		// Any reply proves the connection; the PONG, if still due, comes later.
		awaitPong = false
		if !up {
			up, backoff = true, minBackoff
			b.healthy.Store(true)
			if lost {
				lost = false
				b.reconnects.Add(1)
				b.log.Info("redis pubsub reconnected")
			}
		}
		b.handle(msg)
	}
}

func (b *Broker) pingNow() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.opTimeout)
	defer cancel()
	return b.ps.Ping(ctx)
}

// handle acts on one pub/sub reply; it runs on the reader goroutine.
func (b *Broker) handle(msg any) {
	switch msg := msg.(type) {
	case *goredis.Message:
		b.mu.Lock()
		_, ok := b.watched[msg.Channel]
		b.mu.Unlock()
		if !ok {
			return // unwatched, its UNSUBSCRIBE still in flight
		}
		if msg.Payload == deletedNotice {
			if ch, ok := b.keys.channel(msg.Channel); ok {
				b.sink.Deleted(ch)
			}
			return
		}
		var m announce.Message
		if err := json.Unmarshal([]byte(msg.Payload), &m); err != nil {
			b.dropped.Add(1)
			b.log.Error("redis pubsub: undecodable message", "topic", msg.Channel, "err", err)
			return
		}
		b.sink.Deliver(m)
	case *goredis.Subscription:
		switch msg.Kind {
		case "subscribe", "ssubscribe":
			b.subscribed(msg.Channel)
		case "unsubscribe", "sunsubscribe":
			b.unsubscribed(msg.Channel)
		}
	case *goredis.Pong:
	default:
		b.log.Warn("redis pubsub: unexpected reply", "type", fmt.Sprintf("%T", msg))
	}
}
