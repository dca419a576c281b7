package api

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/announce/announce/announce/token"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// ClientLimits bound what one client may do. Zero fields mean no limit.
type ClientLimits struct {
	// PublishRate is the publishes per second each client may sustain,
	// PublishBurst how many it may send at once (default: one second's
	// worth, at least 1). A client is its credential (a token's subject,
	// or the publish key), else its IP.
	PublishRate  float64
	PublishBurst int
	// TrustedProxies may name the client in X-Forwarded-For or Forwarded.
	TrustedProxies []netip.Prefix
}

// Limit names, the label of announce_limited_total.
const (
	LimitPublishRate = "publish_rate"
	LimitConnsPerIP  = "conns_per_ip"
)

// limiter applies ClientLimits and counts what they refuse.
type limiter struct {
	cfg     ClientLimits
	proxies trustedProxies
	limited *prometheus.CounterVec
	log     func(msg string, args ...any)

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // by client; buckets back to full are swept; guarded by mu
	added   int                      // buckets made since the last sweep; guarded by mu

	lastWarn atomic.Int64 // unix nanoseconds of the last warning
}

// sweepEvery is how many new buckets trigger a sweep of the full ones, so
// the map follows the clients publishing now, not every client ever seen.
const sweepEvery = 4096

func (s *Server) initLimits() error {
	l := &limiter{
		cfg:     s.cfg.Limits,
		proxies: trustedProxies(s.cfg.Limits.TrustedProxies),
		log:     s.log.Warn,
		buckets: make(map[string]*rate.Limiter),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "announce_limited_total", Help: "Requests refused by a limit, by limit.",
		}, []string{"limit"}),
	}
	if l.cfg.PublishRate > 0 && l.cfg.PublishBurst <= 0 {
		l.cfg.PublishBurst = max(1, int(math.Ceil(l.cfg.PublishRate)))
	}
	for _, name := range []string{LimitPublishRate, LimitConnsPerIP} {
		l.limited.WithLabelValues(name) // every series exists from the start
	}
	s.limits = l
	return s.cfg.Registry.Register(l.limited)
}

// Limited counts one refusal by the named limit and warns, at most once a
// minute, that clients are being limited. The listener's per-IP limit
// reports through it.
func (s *Server) Limited(limit string) {
	l := s.limits
	l.limited.WithLabelValues(limit).Inc()
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last >= int64(time.Minute) && l.lastWarn.CompareAndSwap(last, now) {
		l.log("clients are being limited (see announce_limited_total)", "limit", limit)
	}
}

// allowPublish takes a token from the client's bucket; when it is empty it
// says how long until the next one.
func (l *limiter) allowPublish(client string) (time.Duration, bool) {
	if l.cfg.PublishRate <= 0 {
		return 0, true
	}
	now := time.Now()
	l.mu.Lock()
	b := l.buckets[client]
	if b == nil {
		if l.added++; l.added >= sweepEvery {
			l.sweepLocked(now)
		}
		b = rate.NewLimiter(rate.Limit(l.cfg.PublishRate), l.cfg.PublishBurst)
		l.buckets[client] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// sweepLocked forgets the buckets that are full again: a new one is the same.
func (l *limiter) sweepLocked(now time.Time) {
	l.added = 0
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.cfg.PublishBurst) {
			delete(l.buckets, k)
		}
	}
}

// publisher names the client of a publish: a token's subject, else the
// credential it presented, else its IP.
func (s *Server) publisher(cred string, ip netip.Addr) string {
	if cred != "" && token.LooksLikeToken(cred) {
		if cl, err := s.hosted.signer.Verify(cred); err == nil && cl.Subject != "" {
			return "sub:" + cl.Subject
		}
	}
	if cred != "" {
		return "cred:" + cred
	}
	return "ip:" + ip.String()
}

// httpPublisher is publisher for an HTTP publish.
func (s *Server) httpPublisher(c *gin.Context) string {
	cred, _ := bearer(c.GetHeader("Authorization"))
	if cred == "" {
		cred = c.Query("token")
	}
	return s.publisher(cred, s.limits.proxies.clientIP(c.Request))
}

// overPublishRate answers 429 to an HTTP publish past its client's rate.
func (s *Server) overPublishRate(c *gin.Context) bool {
	if s.limits.cfg.PublishRate <= 0 {
		return false
	}
	wait, ok := s.limits.allowPublish(s.httpPublisher(c))
	if ok {
		return false
	}
	s.Limited(LimitPublishRate)
	tooMany(c, wait, fmt.Sprintf("publish rate limit reached (--publish-rate %g/s); retry later", s.limits.cfg.PublishRate))
	return true
}

// tooMany answers 429 with Retry-After in whole seconds, at least 1.
func tooMany(c *gin.Context, wait time.Duration, msg string) {
	c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"error": msg})
}

// framePublishAllowed applies the publish rate to a WebSocket publish
// frame; over it, the reply is an error frame saying when to retry.
func (s *Server) framePublishAllowed(key string, a access, client netip.Addr) ([]byte, bool) {
	if s.limits.cfg.PublishRate <= 0 {
		return nil, true
	}
	who := s.publisher(key, client)
	if key == "" && a.holder != "" {
		who = "sub:" + a.holder
	}
	wait, ok := s.limits.allowPublish(who)
	if ok {
		return nil, true
	}
	s.Limited(LimitPublishRate)
	return errorFrame(fmt.Sprintf("publish rate limit reached; retry in %.3fs", wait.Seconds())), false
}
