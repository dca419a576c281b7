package redis

import (
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// DefaultPrefix starts every key and pub/sub topic this package uses.
const DefaultPrefix = "announce:"

// keys names a channel's keys and topic; see the package doc for the layout.
type keys struct{ prefix string }

func (k keys) id(channel string) string      { return k.prefix + "{" + channel + "}:id" }
func (k keys) history(channel string) string { return k.prefix + "{" + channel + "}:history" }
func (k keys) topic(channel string) string   { return k.prefix + "{" + channel + "}" }

// idempotency names the key remembering one Idempotency-Key of a channel.
func (k keys) idempotency(channel, key string) string {
	return k.prefix + "{" + channel + "}:idem:" + key
}

// channel returns the channel a topic belongs to, or false when the topic is not ours.
func (k keys) channel(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, k.prefix+"{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}")
}

func validatePrefix(p string) error {
	if strings.ContainsAny(p, "{}") {
		return fmt.Errorf("redis: key prefix %q must not contain braces (they are the cluster hash tag)", p)
	}
	return nil
}

// unavailable wraps a Redis failure so the API answers 503. Every failure
// means the store cannot serve right now (down, timed out, out of memory,
// read-only replica, loading), and all of those are worth a retry later.
// The original error stays in the chain, so errors.Is still sees
// context.DeadlineExceeded and friends.
func unavailable(op string, err error) error {
	if errors.Is(err, announce.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: redis %s: %w", announce.ErrUnavailable, op, err)
}

// newClient connects to the --redis URL, in one of two forms:
//
//	redis://[user:pass@]host:port[/db]            one Redis (rediss:// for TLS)
//	redis+sentinel://[user:pass@]host:port[/db]?master_name=NAME[&addr=host:port...]
//	                                              Sentinel: the hosts are sentinels
//
// (rediss+sentinel:// with TLS.) The options are
// tuned for this package whatever the form.
func newClient(url string, opTimeout time.Duration) (goredis.UniversalClient, error) {
	if url == "" {
		return nil, errors.New("redis: URL is empty")
	}
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("redis: URL %q has no scheme (redis://, redis+sentinel://, redis+cluster://)", url)
	}
	base, mode, _ := strings.Cut(scheme, "+")
	plain := base + "://" + rest
	switch mode {
	case "":
		opt, err := goredis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		tune(&opt.ContextTimeoutEnabled, &opt.MaxRetries, opTimeout, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		return goredis.NewClient(opt), nil
	case "sentinel":
		opt, err := goredis.ParseFailoverURL(plain)
		if err != nil {
			return nil, fmt.Errorf("redis: sentinel URL: %w", err)
		}
		if opt.MasterName == "" {
			return nil, errors.New("redis: a sentinel URL needs ?master_name=NAME")
		}
		tune(&opt.ContextTimeoutEnabled, &opt.MaxRetries, opTimeout, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		return goredis.NewFailoverClient(opt), nil
	case "cluster":
		// Sharded pub/sub and per-channel schedules are not there yet: a
		// half-working Cluster mode would lose schedules quietly.
		return nil, errors.New("redis: Redis Cluster is not supported yet; use one Redis or Sentinel")
	}
	return nil, fmt.Errorf("redis: unknown URL scheme %q (redis, redis+sentinel, redis+cluster)", scheme)
}

// isSentinel reports whether url is a Sentinel URL.
func isSentinel(url string) bool {
	scheme, _, _ := strings.Cut(url, "://")
	return strings.HasSuffix(scheme, "+sentinel")
}

// tune sets the options every client of this package needs.
func tune(contextTimeout *bool, maxRetries *int, opTimeout time.Duration, timeouts ...*time.Duration) {
	// Honour the per-operation context deadline on the socket, so an op
	// against a vanished Redis fails within OpTimeout instead of the
	// library's 5 s read timeout.
	*contextTimeout = true
	// Never retry: a retried EVALSHA whose first attempt did run (only its
	// reply was lost) would append the message twice under two ids. A
	// failed op is reported and the publisher decides.
	*maxRetries = -1
	// No single socket wait may outlast an operation's budget; this also
	// bounds the connection handshake, which runs without a deadline.
	for _, d := range timeouts {
		if *d == 0 || *d > opTimeout {
			*d = opTimeout
		}
	}
}
