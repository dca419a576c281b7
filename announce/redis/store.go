package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// DefaultOpTimeout bounds every Redis operation, so that with Redis gone a
// publish answers 503 within the 2 s the spec promises, the request's own
// handling included.
const DefaultOpTimeout = 1500 * time.Millisecond

// Config configures a Store.
type Config struct {
	// URL is the Redis URL, e.g. redis://host:6379/0 (see goredis.ParseURL).
	URL string
	// History is how many messages each channel keeps; default announce.DefaultHistory.
	History int
	// Prefix starts every key and topic; default DefaultPrefix. Tests use a
	// unique prefix to share one Redis; nodes that serve as one service must
	// use the same prefix.
	Prefix string
	// OpTimeout bounds each operation; default DefaultOpTimeout.
	OpTimeout time.Duration
	// Logger receives operational messages; default discards them.
	Logger *slog.Logger
}

func (c *Config) fill() error {
	if c.History <= 0 {
		c.History = announce.DefaultHistory
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return validatePrefix(c.Prefix)
}

// Store is an announce.Store in Redis; see the package doc for the key
// layout. It is safe for concurrent use.
type Store struct {
	client    goredis.UniversalClient
	confirm   bool // Sentinel: a write counts once a replica has it (WAIT 1)
	cluster   bool // Redis Cluster: sharded pub/sub, per-channel schedules
	keys      keys
	history   int
	opTimeout time.Duration
	log       *slog.Logger
}

var (
	_ announce.Store  = (*Store)(nil)
	_ announce.Pinger = (*Store)(nil)
)

// Open returns a Store for cfg. It does not connect: Redis may come up after
// the node; call Ping to fail fast on a wrong URL.
func Open(cfg Config) (*Store, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	client, err := newClient(cfg.URL, cfg.OpTimeout)
	if err != nil {
		return nil, err
	}
	return &Store{
		client:    client,
		confirm:   isSentinel(cfg.URL),
		cluster:   isCluster(cfg.URL),
		keys:      keys{prefix: cfg.Prefix},
		history:   cfg.History,
		opTimeout: cfg.OpTimeout,
		log:       cfg.Logger,
	}, nil
}

func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opTimeout)
}

// Append implements announce.Store in one round trip: the script assigns the
// id, stores the message and publishes it to every node's Broker. On
// Sentinel it takes two: store and WAIT 1, then publish (sentinel.go).
//
// A timeout leaves the outcome unknown: the script may have run with only its
// reply lost. The error still wraps announce.ErrUnavailable, and the message,
// if stored, reaches observers like any other.
func (s *Store) Append(ctx context.Context, channel, content string, at time.Time) (announce.Message, error) {
	m := announce.Message{Channel: channel, Content: content, Time: at.UTC()}
	tail, err := jsonTail(m)
	if err != nil {
		return announce.Message{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	keys := []string{s.keys.id(channel), s.keys.history(channel)}
	args := []any{tail, s.history, s.keys.topic(channel)}
	if rec, ok := ctx.Value(idemRecordKey{}).(idemPending); ok {
		keys = append(keys, rec.key)
		args = append(args, rec.marker, rec.ttl.Milliseconds())
	}
	id, err := s.runAppend(ctx, channel, keys, args...)
	if err != nil {
		if outcomeUnknown(err) {
			s.log.Warn("redis append timed out; the message may still have been stored and published",
				"channel", channel, "err", err)
		}
		return announce.Message{}, unavailable("append", err)
	}
	if id < 0 {
		return announce.Message{}, unavailable("append", errors.New("the Idempotency-Key's pending marker is gone (the publish came too late); nothing was published"))
	}
	m.ID = uint64(id)
	if m.ID == 1 {
		s.noteChannel(ctx, channel)
	}
	return m, nil
}

// runAppend runs the append script; on Sentinel it stores, waits for a
// replica (WAIT 1) and only then publishes (appendHeld): asynchronous
// replication loses what the master acknowledged but had not yet sent when
// a failover promotes the replica, so a publish is acknowledged, and seen,
// only once a replica has it.
func (s *Store) runAppend(ctx context.Context, channel string, keys []string, args ...any) (int64, error) {
	switch {
	case s.cluster:
		return shardedAppendScript.Run(ctx, s.client, keys, args...).Int64()
	case s.confirm:
		return s.appendHeld(ctx, heldAppendScript, channel, keys, args...)
	}
	return appendScript.Run(ctx, s.client, keys, args...).Int64()
}

// confirmReplicated returns once a replica has every write the master had
// made when it was called, for an answer built from a write another
// connection made (an idempotency replay): WAIT counts only the waiting
// connection's own writes, so it writes first (INCR of a key of its own)
// and waits for that. Replication is in order: a replica that has this
// write has everything before it.
func (s *Store) confirmReplicated(ctx context.Context) error {
	var wait *goredis.Cmd
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Incr(ctx, s.keys.prefix+"replicated")
		wait = p.Do(ctx, "WAIT", 1, (s.opTimeout / 2).Milliseconds())
		return nil
	})
	if err != nil {
		return unavailable("waiting for a replica", err)
	}
	if n, _ := wait.Int64(); n < 1 {
		return unavailable("waiting for a replica", fmt.Errorf("no replica confirmed: %w", context.DeadlineExceeded))
	}
	return nil
}

// Current implements announce.Store: the last history entry.
func (s *Store) Current(ctx context.Context, channel string) (announce.Message, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if s.confirm {
		return s.currentHeld(ctx, channel)
	}
	raw, err := s.client.LIndex(ctx, s.keys.history(channel), -1).Result()
	if errors.Is(err, goredis.Nil) {
		return announce.Message{Channel: channel}, nil
	}
	if err != nil {
		return announce.Message{}, unavailable("current", err)
	}
	return decode(raw)
}

// Since implements announce.Store; limit <= 0 means no limit.
func (s *Store) Since(ctx context.Context, channel string, since uint64, limit int) ([]announce.Message, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if s.confirm {
		return s.sinceHeld(ctx, channel, since, limit)
	}
	raws, err := sinceScript.Run(ctx, s.client,
		[]string{s.keys.id(channel), s.keys.history(channel)},
		strconv.FormatUint(since, 10), limit).StringSlice()
	if err != nil {
		return nil, unavailable("since", err)
	}
	return decodeAll(raws)
}

// decodeAll decodes stored messages; nil for none.
func decodeAll(raws []string) ([]announce.Message, error) {
	if len(raws) == 0 {
		return nil, nil
	}
	out := make([]announce.Message, len(raws))
	for i, raw := range raws {
		var err error
		if out[i], err = decode(raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Ping implements announce.Pinger for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close implements announce.Store. Every write was acknowledged by Redis
// before Append returned, so there is nothing to flush.
func (s *Store) Close() error { return s.client.Close() }

// outcomeUnknown reports whether err may have come after Redis ran the
// command: a timeout, as opposed to a refused connection.
func outcomeUnknown(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// decode parses a stored message. A parse failure means someone else wrote
// the key: it is reported, not wrapped as unavailable, because retrying
// will not help.
func decode(raw string) (announce.Message, error) {
	var m announce.Message
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return announce.Message{}, fmt.Errorf("redis: corrupt message %.60q: %w", raw, err)
	}
	return m, nil
}
