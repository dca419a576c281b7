package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// Bounds of the Redis idempotency keys.
const (
	// DefaultIdempotencyPending is how long a pending marker outlives the
	// node that set it: a node that crashed mid-publish blocks its key at
	// most this long. It exceeds the API's publish timeout (10s), so a
	// live publish keeps its marker.
	DefaultIdempotencyPending = 30 * time.Second
	// idemPoll is how often a waiter looks whether the pending publish ended.
	idemPoll = 50 * time.Millisecond
	// idemPendingPrefix starts a pending marker's value; a record is JSON.
	idemPendingPrefix = "pending:"
)

// Idempotency is an announce.Idempotency shared by every node on the same
// Redis and prefix, so a retried publish that lands on another node is still
// recognised. It uses one key per (channel, idempotency key); see the
// package doc. It is safe for concurrent use.
//
// The first caller sets a pending marker (SET NX with a short expiry) and
// publishes; on success it replaces the marker with the record, kept for the
// TTL, and on failure deletes the marker (if still its own), so the key is
// not remembered. Other callers, on any node, poll the key until it holds a
// record (they answer its message), disappears (they try to publish), or
// their ctx ends. Redis failures wrap announce.ErrUnavailable.
//
// Keys are bounded by time only (the TTL, 24h by default): their number is
// bounded by the publish rate, and each costs about the message's JSON.
type Idempotency struct {
	client    goredis.UniversalClient
	keys      keys
	opTimeout time.Duration
	ttl       time.Duration
	pending   time.Duration
	poll      time.Duration
	// confirm, on Sentinel, holds a replay back until a replica has the
	// record and the message is published: the publish that wrote it may
	// have failed its own WAIT, and a failover would then lose the message
	// the replay acknowledges; or its node died before publishing it.
	confirm func(ctx context.Context, channel string, id uint64) error
}

var _ announce.Idempotency = (*Idempotency)(nil)

// Idempotency returns the shared idempotency of s's Redis and prefix,
// remembering keys for ttl (announce.DefaultIdempotencyTTL when <= 0). It
// uses the store's client: it needs no Close of its own.
func (s *Store) Idempotency(ttl time.Duration) *Idempotency {
	if ttl <= 0 {
		ttl = announce.DefaultIdempotencyTTL
	}
	i := &Idempotency{
		client:    s.client,
		keys:      s.keys,
		opTimeout: s.opTimeout,
		ttl:       ttl,
		pending:   DefaultIdempotencyPending,
		poll:      idemPoll,
	}
	if s.confirm {
		i.confirm = s.confirmAndPublish
	}
	return i
}

// idemRecord is a completed publish as stored: the message's JSON, which
// holds its content for the reuse check.
type idemRecord struct {
	Message json.RawMessage `json:"message"`
}

// releaseScript deletes a pending marker only if it is still the caller's:
// after it expired another node may have set its own.
//
//	KEYS[1] the idempotency key, ARGV[1] the caller's marker
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Do implements announce.Idempotency.
func (i *Idempotency) Do(ctx context.Context, channel, key, content string, publish func(context.Context) (*announce.Envelope, error)) (*announce.Envelope, bool, error) {
	k := i.keys.idempotency(channel, key)
	marker, err := newMarker()
	if err != nil {
		return nil, false, err
	}
	for {
		acquired, err := i.acquire(ctx, k, marker)
		if err != nil {
			return nil, false, err
		}
		if acquired {
			env, err := i.lead(ctx, k, marker, publish)
			return env, false, err
		}
		env, gone, err := i.wait(ctx, k, content)
		if err != nil || !gone {
			return env, err == nil && env != nil, err
		}
		// The pending publish failed (or its node died): try again.
	}
}

func (i *Idempotency) acquire(ctx context.Context, k, marker string) (bool, error) {
	octx, cancel := context.WithTimeout(ctx, i.opTimeout)
	defer cancel()
	ok, err := i.client.SetNX(octx, k, marker, i.pending).Result()
	if err != nil {
		return false, unavailable("idempotency acquire", err)
	}
	return ok, nil
}

// lead publishes under the caller's pending marker and records the message,
// or releases the marker when publish fails or panics.
func (i *Idempotency) lead(ctx context.Context, k, marker string, publish func(context.Context) (*announce.Envelope, error)) (env *announce.Envelope, err error) {
	done := false
	defer func() {
		if done {
			return
		}
		// Detached: a cancelled request must still free the key for its retry.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.opTimeout)
		defer cancel()
		_ = releaseScript.Run(rctx, i.client, []string{k}, marker).Err() // else it expires
	}()
	env, err = publish(context.WithValue(ctx, idemRecordKey{}, idemPending{key: k, marker: marker, ttl: i.ttl}))
	if err == nil && env == nil {
		err = errors.New("publish returned no message")
	}
	if err != nil {
		return nil, err
	}
	rec, err := json.Marshal(idemRecord{Message: env.JSON})
	if err != nil {
		return nil, fmt.Errorf("redis: encoding idempotency record: %w", err)
	}
	done = true
	// Detached too: the message is published, so the record must be stored
	// even if the client gave up. Should this fail, the marker expires and a
	// retry publishes again, which is the most the caller could do anyway:
	// the publish itself succeeded, so its message is answered.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.opTimeout)
	defer cancel()
	_ = i.client.Set(sctx, k, rec, i.ttl).Err()
	return env, nil
}

// wait polls k until it holds a record (its message, or
// ErrIdempotencyKeyReused), disappears (gone), or ctx ends.
func (i *Idempotency) wait(ctx context.Context, k, content string) (env *announce.Envelope, gone bool, err error) {
	t := time.NewTicker(i.poll)
	defer t.Stop()
	for {
		octx, cancel := context.WithTimeout(ctx, i.opTimeout)
		raw, err := i.client.Get(octx, k).Result()
		cancel()
		switch {
		case errors.Is(err, goredis.Nil):
			return nil, true, nil
		case err != nil:
			if cerr := ended(ctx); cerr != nil {
				return nil, false, cerr
			}
			return nil, false, unavailable("idempotency get", err)
		case !strings.HasPrefix(raw, idemPendingPrefix):
			env, err := decodeIdemRecord(raw)
			if err != nil {
				return nil, false, err
			}
			if env.Content != content {
				return nil, false, announce.ErrIdempotencyKeyReused
			}
			if i.confirm != nil {
				octx, cancel := context.WithTimeout(ctx, i.opTimeout)
				err := i.confirm(octx, env.Channel, env.ID)
				cancel()
				if err != nil {
					return nil, false, err
				}
			}
			return env, false, nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// ended is ctx's error, or DeadlineExceeded once its deadline has passed:
// the socket deadline (ContextTimeoutEnabled) can fire a moment before the
// context's own timer marks it done.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

func decodeIdemRecord(raw string) (*announce.Envelope, error) {
	var rec idemRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil || len(rec.Message) == 0 {
		return nil, fmt.Errorf("redis: corrupt idempotency record %.60q: %v", raw, err)
	}
	m, err := decode(string(rec.Message))
	if err != nil {
		return nil, err
	}
	return announce.NewEnvelope(m), nil
}

// idemRecordKey carries an idemPending from Do to Store.Append through the
// hub's Publish, so the append script writes the record in its own step.
type idemRecordKey struct{}

// idemPending is the key a publish runs under and the caller's marker.
type idemPending struct {
	key, marker string
	ttl         time.Duration
}

// newMarker returns a pending marker unique to one Do call.
func newMarker() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("redis: idempotency marker: %w", err)
	}
	return idemPendingPrefix + hex.EncodeToString(b[:]), nil
}
