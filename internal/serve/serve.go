// Package serve wires a store, the hub and the HTTP API into one running
// node, and stops it gracefully. main and the end-to-end tests both use it.
package serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/bolt"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is one node's configuration; main fills it from flags and ANNOUNCE_* variables.
type Config struct {
	Listen         string
	DataDir        string
	Memory         bool
	Redis          string
	History        int
	MaxMessage     int
	PollTimeout    time.Duration
	PublishKey     string
	CORSOrigins    []string
	AllowedOrigins []string
	MaxConns       int
	Queue          int
	Welcome        string
	PrivatePrefix  string // channels needing a token to observe (api.DefaultPrivatePrefix)
	TokenSecret    string // signs tokens; empty: derived from PublishKey, else random
	Logger         *slog.Logger
	// IdleTimeout is how long a channel without observers stays loaded (and,
	// on Redis, subscribed); zero takes the hub's default (1m).
	IdleTimeout time.Duration

	// Keepalive intervals; zero takes the API defaults (tests shorten them).
	Heartbeat    time.Duration
	PingInterval time.Duration
	PongTimeout  time.Duration

	// Presence and webhooks (presence.go).
	Presence PresenceConfig

	// RedisSubscribe lists raw Redis pub/sub channels (a trailing * makes a
	// pattern) whose messages become announcements (redis_extras.go).
	RedisSubscribe []string
	// RedisIngestLease is how long the ingesting node's lease lasts; zero: 5 s.
	RedisIngestLease time.Duration

	// TLS and HTTP/2 (tls_node.go).
	TLS TLSConfig
	H2C bool // cleartext HTTP/2 (prior knowledge) besides HTTP/1.1, for a proxy in front

	// Limits on what clients can make the node hold (limits_config.go).
	Limits LimitsConfig
}

// Node is a running server.
type Node struct {
	cfg   Config
	store announce.Store
	hub   *announce.Hub
	api   *api.Server
	http  *http.Server
	ln    net.Listener
	done  chan error
	fresh freshConns

	shutdownOnce sync.Once
	shutdownErr  error

	presence presenceNode  // presence.go
	extras   redisExtras   // redis_extras.go
	certs    *certReloader // tls_node.go; nil without TLS
	// observers is the presence tracker once started, for the channel
	// TTL's look at other nodes (limits_config.go).
	observers atomic.Pointer[presence.Tracker]
}

// Start opens the store, starts the hub and serves HTTP on cfg.Listen.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, done: make(chan error, 1)}
	reg := prometheus.NewRegistry()
	if err := n.loadTLS(reg); err != nil { // first: a bad file fails before anything opens
		return nil, err
	}
	var ready func() error
	var idem announce.Idempotency // nil: the API's per-node memory
	hubCfg := announce.Config{History: cfg.History, MaxMessage: cfg.MaxMessage, Queue: cfg.Queue,
		IdleTimeout: cfg.IdleTimeout, Logger: cfg.Logger, Limits: cfg.Limits.hub()}
	switch {
	case cfg.Redis != "":
		rn, err := openRedis(cfg)
		if err != nil {
			return nil, err
		}
		n.store, hubCfg.Broker, ready = rn.store, rn.newBroker(cfg), rn.ready
		hubCfg.Limits.Observed = n.observedAnywhere
		idem = rn.idempotency()
		if err := reg.Register(rn.collector()); err != nil {
			rn.store.Close()
			return nil, err
		}
	case cfg.Memory:
		n.store = announce.NewMemoryStore(cfg.History)
	default:
		st, err := bolt.Open(bolt.Config{Dir: cfg.DataDir, History: cfg.History, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		n.store, ready = st, readiness(st)
	}
	hubCfg.Store = n.store
	hub, err := announce.NewHub(hubCfg)
	if err != nil {
		n.store.Close()
		return nil, err
	}
	n.hub = hub
	if err := n.welcome(idem); err != nil {
		n.close(context.Background())
		return nil, err
	}
	if err := n.startPresence(reg); err != nil {
		n.close(context.Background())
		return nil, err
	}
	n.observers.Store(n.presence.tracker)
	if err := n.startRedisExtras(reg); err != nil {
		n.close(context.Background())
		return nil, err
	}
	clientLimits, err := cfg.Limits.api()
	if err != nil {
		n.close(context.Background())
		return nil, err
	}
	n.api, err = api.New(api.Config{
		Hub: hub, PollTimeout: cfg.PollTimeout, PublishKey: cfg.PublishKey,
		CORSOrigins: cfg.CORSOrigins, AllowedOrigins: cfg.AllowedOrigins,
		Logger: cfg.Logger, Ready: ready, Registry: reg,
		Heartbeat: cfg.Heartbeat, PingInterval: cfg.PingInterval, PongTimeout: cfg.PongTimeout,
		PrivatePrefix: cfg.PrivatePrefix, TokenSecret: cfg.TokenSecret,
		Presence: n.presence.tracker, Idempotency: idem, Limits: clientLimits,
	})
	if err != nil {
		n.close(context.Background())
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		n.close(context.Background())
		return nil, err
	}
	if cfg.MaxConns > 0 {
		ln = newLimitListener(ln, cfg.MaxConns)
	}
	if cfg.Limits.MaxConnsPerIP > 0 {
		ln = newPerIPListener(ln, cfg.Limits.MaxConnsPerIP, clientLimits.TrustedProxies, func() { n.api.Limited(api.LimitConnsPerIP) })
	}
	ln = n.secure(ln)       // TLS inside the hand-back: a long-poll's connection comes back decrypted
	ln = n.api.Listener(ln) // outside the limit: a long-poll handed back is not counted twice
	n.ln = ln
	n.http = &http.Server{
		Handler:           n.api.Handler(),
		ReadHeaderTimeout: 10 * time.Second, // slowloris
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		ConnState:         n.fresh.track,
	}
	n.http.RegisterOnShutdown(n.fresh.closeAll)
	n.configureHTTP(n.http)
	if cfg.PublishKey == "" {
		cfg.Logger.Warn("publishing is open to anyone who can reach this server; set --publish-key to require a key")
	}
	go func() { n.done <- n.http.Serve(ln) }()
	cfg.Logger.Info("announce serving", "addr", ln.Addr().String())
	return n, nil
}

// Addr is the address the node listens on.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// URL is the node's base URL (https with TLS).
func (n *Node) URL() string { return n.scheme() + "://" + n.Addr() }

// Hub returns the node's hub.
func (n *Node) Hub() *announce.Hub { return n.hub }

// welcome publishes the configured first message of the default channel on a fresh store.
func (n *Node) welcome(shared announce.Idempotency) error {
	if n.cfg.Welcome == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cur, err := n.store.Current(ctx, "default")
	if err != nil || cur.ID > 0 {
		return err
	}
	publish := func(ctx context.Context) (*announce.Envelope, error) {
		return n.hub.Publish(ctx, "default", n.cfg.Welcome)
	}
	if shared == nil { // one node alone on its store
		_, err = publish(ctx)
		return err
	}
	// Nodes starting together on a fresh Redis all see it empty: one
	// idempotency key shared by all of them publishes the welcome once.
	_, _, err = shared.Do(ctx, "default", welcomeKey, n.cfg.Welcome, publish)
	if errors.Is(err, announce.ErrIdempotencyKeyReused) {
		return nil // another node welcomed with other words
	}
	return err
}

// welcomeKey is the idempotency key of the --welcome publish.
const welcomeKey = "announce-welcome"

// freshConns tracks the connections that have not begun a request, and
// closes them when the server shuts down. net/http's Shutdown counts such a
// connection as busy for its first 5 seconds (go.dev/issue/22682), so one
// browser preconnect or idle port scan would hold a graceful stop for 5s,
// and make it fail with a --shutdown-timeout under that.
type freshConns struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool // after closeAll, a connection is closed as soon as it is seen
}

// track is the server's ConnState hook.
func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case st != http.StateNew:
		delete(f.conns, c)
	case f.closing:
		c.Close() // accepted just as the listener closed
	default:
		if f.conns == nil {
			f.conns = make(map[net.Conn]struct{})
		}
		f.conns[c] = struct{}{}
	}
}

// closeAll closes the fresh connections; http.Server.Shutdown calls it once
// its listeners are closed.
func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
}

func (n *Node) close(ctx context.Context) error {
	err := n.stopServices(ctx)
	n.flushWebhooks(ctx) // last: it may take what is left of the deadline
	return err
}

// stopServices stops everything behind the HTTP server but the webhooks.
func (n *Node) stopServices(ctx context.Context) error {
	n.stopTLS()
	err := errors.Join(n.stopRedisExtras(), n.stopPresence(ctx)) // after the streams ended: their disconnections reach the webhooks
	if n.hub != nil {
		if herr := n.hub.Shutdown(ctx); errors.Is(herr, context.DeadlineExceeded) {
			n.cfg.Logger.Warn("hub: background work still running at the shutdown deadline") // as presence: not a failed stop
		} else {
			err = errors.Join(err, herr)
		}
	}
	return errors.Join(err, n.store.Close())
}

// Done reports the end of serving (http.ErrServerClosed after Shutdown).
func (n *Node) Done() <-chan error { return n.done }

func readiness(st announce.Store) func() error {
	p, ok := st.(announce.Pinger)
	if !ok {
		return nil
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return p.Ping(ctx)
	}
}
