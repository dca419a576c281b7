package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/internal/conn"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the API. Zero fields take the defaults.
type Config struct {
	Hub         *announce.Hub // required
	PollTimeout time.Duration // longest long-poll wait (30s)
	PublishKey  string        // when set, publishing needs Authorization: Bearer KEY
	// CORSOrigins may read cross-origin; "*" allows any origin to read, but
	// publishing cross-origin needs the origin listed explicitly.
	CORSOrigins []string
	// AllowedOrigins may open a WebSocket besides the same host.
	AllowedOrigins []string
	Logger         *slog.Logger
	// Registry receives the metrics; a new one when nil.
	Registry *prometheus.Registry
	// Ready reports whether the node can serve publishes (for /readyz).
	Ready func() error
	// Heartbeat is the SSE comment interval (15s); PingInterval and
	// PongTimeout are the WebSocket keepalive (25s, 60s).
	Heartbeat    time.Duration
	PingInterval time.Duration
	PongTimeout  time.Duration
	// WriteTimeout bounds every write to a client (10s).
	WriteTimeout time.Duration
	// BodyTimeout bounds reading a request's body (15s): a client that
	// trickles one holds its connection no longer.
	BodyTimeout time.Duration

	// PrivatePrefix starts the names of channels that need a token to
	// observe (DefaultPrivatePrefix). TokenSecret signs the tokens; when
	// empty it is derived from PublishKey, and without either it is random.
	PrivatePrefix string
	TokenSecret   string
	// Idempotency remembers Idempotency-Key publishes; an in-memory,
	// per-node one when nil (a shared one makes retries work across nodes).
	Idempotency announce.Idempotency

	// Presence receives every observer's attach and detach and every
	// publish (presence, and through its sinks webhooks) and answers
	// GET .../presence; a tracker of this node alone when nil. The caller
	// closes it (after Wait).
	Presence *presence.Tracker

	// Limits bound what one client may do (ratelimit.go).
	Limits ClientLimits
}

// Server is the HTTP API.
type Server struct {
	cfg     Config
	hub     *announce.Hub
	log     *slog.Logger
	engine  *gin.Engine
	metrics *metrics
	cors    corsPolicy
	wsOK    originPolicy

	shutdownOnce sync.Once
	shutdown     chan struct{}                 // closed when the server begins shutting down
	streams      sync.WaitGroup                // every stream and deferred answer, until it ends
	conns        conn.Env                      // the sessions' pool, registry and streams count
	handback     atomic.Pointer[conn.Listener] // once Listener wrapped one
	acceptLogged atomic.Int64                  // unix ns of the last accept error logged

	hosted hosted        // private channels, tokens, idempotency (private.go)
	pres   presenceState // presence and the events webhooks get (presence.go)
	limits *limiter      // per-client limits (ratelimit.go)
}

// New validates cfg, fills its defaults and builds the routes.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		hub:      cfg.Hub,
		log:      cfg.Logger,
		cors:     newCORSPolicy(cfg.CORSOrigins),
		wsOK:     newOriginPolicy(cfg.AllowedOrigins),
		shutdown: make(chan struct{}),
	}
	s.conns = conn.Env{Pool: conn.NewPool(0), Registry: &conn.Registry{}, Streams: &s.streams, WriteTimeout: cfg.WriteTimeout}
	m, err := newMetrics(cfg.Registry, cfg.Hub)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if err := s.initLimits(); err != nil {
		return nil, err
	}
	if err := s.initHosted(); err != nil {
		return nil, err
	}
	if err := s.initPresence(); err != nil {
		return nil, err
	}
	s.initSchedule()
	s.engine = s.routes()
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Shutdown stops gracefully: waiting long-polls answer with the current
// message, SSE streams end and WebSockets close with 1001; it returns once
// all of them ended, or ctx.Err() if ctx ends first (they still end).
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		close(s.shutdown)
		s.conns.Registry.Shutdown()
	})
	ended := make(chan struct{})
	go func() {
		s.streams.Wait()
		close(ended)
	}()
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		select {
		case <-ended: // both were ready: the streams did end
			return nil
		default:
			return ctx.Err()
		}
	}
}

// stopping reports whether shutdown began.
func (s *Server) stopping() bool {
	select {
	case <-s.shutdown:
		return true
	default:
		return false
	}
}

// refuseWhileStopping answers 503 to a new stream once shutdown began, so a
// client reconnects to another node instead of being cut at once.
func (s *Server) refuseWhileStopping(c *gin.Context) bool {
	select {
	case <-s.shutdown:
		fail(c, announce.ErrClosed)
		return true
	default:
		return false
	}
}

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.UseRawPath = true // so an encoded "/" stays inside the channel name and is rejected
	r.UnescapePathValues = true
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.Use(gin.Recovery(), s.noStore, wellFormedQuery, closeAfterChunked, s.bodyDeadline, s.cors.middleware)

	// HEAD answers wherever GET does (RFC 9110 9.3.2): monitors and link
	// checkers probe with it. Routes that wait or stream answer their
	// headers at once.
	get := func(g gin.IRoutes, path string, h ...gin.HandlerFunc) {
		g.GET(path, h...)
		g.HEAD(path, h...)
	}
	get(r, "/", s.page)
	get(r, "/healthz", s.healthz)
	get(r, "/readyz", s.readyz)
	get(r, "/metrics", s.metrics.handler(s.cfg.Registry))
	r.StaticFS("/assets", assetsFS())
	s.clientRoutes(r) // /announce.js, /announce.mjs, /announce.d.ts (clientjs.go)
	get(r, "/examples/:name", s.example)

	ch := r.Group("/channels/:ch", s.channelName)
	get(ch, "", s.guardObserve, s.channelInfo)
	ch.GET("/messages", s.guardObserve, s.messages)
	ch.HEAD("/messages", s.guardObserve, s.messages) // answers at once: wait applies to GET
	get(ch, "/presence", s.guardObserve, s.presence)
	ch.POST("/messages", s.publish)
	ch.POST("/tokens", s.mintToken)
	get(ch, "/scheduled", s.guardObserve, s.listScheduled)
	ch.DELETE("/scheduled/:id", s.cancelScheduled)
	ch.DELETE("", s.deleteChannel)

	seed := r.Group("", s.defaultChannel)
	seed.POST("/chat", s.publish)
	for _, g := range []*gin.RouterGroup{ch, seed} {
		g.GET("/status", s.guardObserve, s.observerName, s.status)
		g.GET("/ws", s.guardObserve, s.observerName, s.websocket)
		g.GET("/events", s.guardObserve, s.observerName, s.sse)
		g.HEAD("/status", s.guardObserve, s.headCurrent)
		g.HEAD("/ws", s.guardObserve, s.websocket) // no upgrade: the same refusal as GET
		g.HEAD("/events", s.guardObserve, s.headSSE)
	}

	r.NoRoute(func(c *gin.Context) {
		if slashInChannelName(c.Request.URL.Path) {
			fail(c, fmt.Errorf("%w: a name has no \"/\"", announce.ErrInvalidChannel))
			return
		}
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "no such route: " + c.Request.URL.Path})
	})
	r.NoMethod(func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, gin.H{"error": "method " + c.Request.Method + " is not allowed here"})
	})
	return r
}

// slashInChannelName reports whether path is a channel route but for a "/"
// in the name, which splits it into segments no route matches: the name is
// what is wrong (400), not the route (404).
func slashInChannelName(path string) bool {
	rest, ok := strings.CutPrefix(path, "/channels/")
	if !ok {
		return false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 || !strings.Contains(rest[:i], "/") {
		return false
	}
	switch rest[i+1:] {
	case "status", "ws", "events", "messages", "presence", "scheduled", "tokens":
		return true
	}
	return false
}

// wellFormedQuery refuses a query string that does not parse (a bad %
// escape): url.Values would drop the pair silently, and a cursor with it.
// Only an escape or a semicolon can fail to parse, so the common query
// (since=12&timeout=30) is not parsed twice on the long-poll's path.
func wellFormedQuery(c *gin.Context) {
	raw := c.Request.URL.RawQuery
	if !strings.ContainsAny(raw, "%;") {
		return
	}
	if _, err := url.ParseQuery(raw); err != nil {
		badRequest(c, "malformed query string: "+err.Error())
	}
}

// headCurrent answers HEAD on a long-poll route: the head of an answer with
// the current message, at once.
func (s *Server) headCurrent(c *gin.Context) {
	ch, err := s.hub.Read(c.Request.Context(), channelOf(c))
	if err != nil {
		fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", ch.Current().JSON)
}

// headSSE answers HEAD on an event stream: the stream's head, no stream.
func (s *Server) headSSE(c *gin.Context) {
	setSSEHeaders(c)
	c.Status(http.StatusOK)
}

// channelKey is where the validated channel name waits in the gin context.
const channelKey = "announce.channel"

func (s *Server) channelName(c *gin.Context) {
	name := c.Param("ch")
	if err := announce.ValidateChannel(name); err != nil {
		fail(c, err)
		return
	}
	c.Set(channelKey, name)
}

func (s *Server) defaultChannel(c *gin.Context) { c.Set(channelKey, "default") }

func channelOf(c *gin.Context) string { return c.GetString(channelKey) }

// noStore marks every dynamic answer uncacheable (old IE caches XHR GETs).
func (s *Server) noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
}

func (s *Server) healthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

func (s *Server) readyz(c *gin.Context) {
	select {
	case <-s.shutdown:
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "shutting down"})
		return
	default:
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": err.Error()})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

func (s *Server) channelInfo(c *gin.Context) {
	ch, err := s.hub.Read(c.Request.Context(), channelOf(c))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"channel":   ch.Name(),
		"current":   jsonRaw(ch.Current().JSON),
		"observers": ch.Counts(),
	})
}
