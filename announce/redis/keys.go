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

// parseURL turns the --redis URL into client options tuned for this package.
func parseURL(url string, opTimeout time.Duration) (*goredis.Options, error) {
	if url == "" {
		return nil, errors.New("redis: URL is empty")
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// Honour the per-operation context deadline on the socket, so an op
	// against a vanished Redis fails within OpTimeout instead of the
	// library's 5 s read timeout.
	opt.ContextTimeoutEnabled = true
	// Never retry: a retried EVALSHA whose first attempt did run (only its
	// reply was lost) would append the message twice under two ids. A
	// failed op is reported and the publisher decides.
	opt.MaxRetries = -1
	// No single socket wait may outlast an operation's budget; this also
	// bounds the connection handshake, which runs without a deadline.
	for _, d := range []*time.Duration{&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout} {
		if *d == 0 || *d > opTimeout {
			*d = opTimeout
		}
	}
	return opt, nil
}
