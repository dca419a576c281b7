package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// Drop reasons of raw ingest, the label of announce_ingest_dropped_total.
const (
	DropEmpty       = "empty"
	DropTooLarge    = "too_large"
	DropNotUTF8     = "not_utf8"
	DropBadChannel  = "bad_channel"
	DropUnavailable = "unavailable" // the store refused the append
)

// DropReasons lists every reason, so a metric can show each at 0.
var DropReasons = []string{DropEmpty, DropTooLarge, DropNotUTF8, DropBadChannel, DropUnavailable}

// IngestConfig configures an Ingest.
type IngestConfig struct {
	// Names are Redis pub/sub channel names; one ending in * is a pattern
	// (PSUBSCRIBE). None may reach into Prefix, announce's own topics.
	Names []string
	// Publish announces one raw message; the hub's Publish, which checks
	// the channel and content and answers the errors of package announce.
	Publish func(ctx context.Context, channel, content string) error
	// Dropped is told each payload that was not announced, with its reason.
	Dropped func(reason string)
	// Lease is how long the ingesting node's lease lasts without a renewal;
	// another node takes over at most this long (plus a retry) after it
	// dies. Default 5 s.
	Lease time.Duration
	// DropLogEvery limits the drop log to one line per period; default 1m.
	DropLogEvery time.Duration
}

// Ingest turns every raw PUBLISH on its names into one announcement. Of all
// the nodes ingesting the same names only the one holding the lease (a key
// SET NX PX, renewed at a third of its life) subscribes; the others retry
// the lease every Lease/5.
type Ingest struct {
	client    goredis.UniversalClient
	cfg       IngestConfig
	leaseKey  string
	token     string
	opTimeout time.Duration
	log       *slog.Logger

	leading  atomic.Bool
	ingested atomic.Uint64

	dropMu     sync.Mutex
	dropLogged time.Time // when the last drop line was written
	dropQuiet  int       // drops since then, not logged

	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// ValidateIngestNames checks a --redis-subscribe list against the key prefix.
func ValidateIngestNames(names []string, prefix string) error {
	if len(names) == 0 {
		return errors.New("no names to subscribe to")
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	for _, n := range names {
		base, pattern := strings.CutSuffix(n, "*")
		switch {
		case base == "" && !pattern:
			return errors.New("an empty name")
		case strings.ContainsAny(base, "*?[]\\"):
			return fmt.Errorf("%q: only a trailing * is allowed as a pattern", n)
		case strings.HasPrefix(base, prefix) || pattern && strings.HasPrefix(prefix, base):
			return fmt.Errorf("%q would take in announce's own topics (prefix %q)", n, prefix)
		}
	}
	return nil
}

// Ingest starts raw ingest on the store's Redis. It does not wait for
// Redis; Close releases the lease so another node takes over at once.
func (s *Store) Ingest(cfg IngestConfig) (*Ingest, error) {
	if err := ValidateIngestNames(cfg.Names, s.keys.prefix); err != nil {
		return nil, fmt.Errorf("redis: subscribe: %w", err)
	}
	if cfg.Publish == nil {
		return nil, errors.New("redis: ingest needs a Publish")
	}
	if cfg.Dropped == nil {
		cfg.Dropped = func(string) {}
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Second
	}
	if cfg.DropLogEvery <= 0 {
		cfg.DropLogEvery = time.Minute
	}
	names := slices.Sorted(slices.Values(cfg.Names))
	sum := sha256.Sum256([]byte(strings.Join(names, ",")))
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	in := &Ingest{
		client:    s.client,
		cfg:       cfg,
		leaseKey:  s.keys.prefix + "ingest:" + hex.EncodeToString(sum[:8]),
		token:     hex.EncodeToString(token),
		opTimeout: s.opTimeout,
		log:       s.log,
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go in.run()
	return in, nil
}

// Leading reports whether this node holds the lease and ingests.
func (in *Ingest) Leading() bool { return in.leading.Load() }

// Ingested counts the raw messages this node announced.
func (in *Ingest) Ingested() uint64 { return in.ingested.Load() }

// Close stops ingesting and gives the lease up.
func (in *Ingest) Close() error {
	in.once.Do(func() { close(in.quit) })
	<-in.done
	return nil
}

// renewScript extends the lease if it is still ours; releaseScript drops it.
var (
	renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)
	releaseLeaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
)

func (in *Ingest) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), in.opTimeout)
}

// run tries for the lease and ingests while it holds it, until Close.
func (in *Ingest) run() {
	defer close(in.done)
	retry := time.NewTicker(in.cfg.Lease / 5)
	defer retry.Stop()
	for {
		ctx, cancel := in.op()
		won, err := in.client.SetNX(ctx, in.leaseKey, in.token, in.cfg.Lease).Result()
		cancel()
		if err == nil && won {
			in.lead(time.Now())
		}
		select {
		case <-in.quit:
			return
		case <-retry.C:
		}
	}
}

// lead ingests from the moment the lease was taken (acquired) until it is
// lost or Close. It stops a margin before the lease could have expired
// unrenewed, so two nodes never ingest at once.
func (in *Ingest) lead(acquired time.Time) {
	ps := in.subscribe()
	defer ps.Close()
	in.leading.Store(true)
	defer in.leading.Store(false)
	in.log.Info("raw redis ingest: this node ingests", "names", strings.Join(in.cfg.Names, ","))
	msgs := ps.Channel(goredis.WithChannelSize(1000))

	renewEvery := in.cfg.Lease / 3
	renew := time.NewTicker(renewEvery)
	defer renew.Stop()
	// valid is when the lease may expire, counted from before the command
	// that set it, minus a margin for clocks running at different rates.
	valid := acquired.Add(in.cfg.Lease - in.cfg.Lease/10)
	for {
		if time.Now().After(valid) {
			in.log.Warn("raw redis ingest: lease not renewed in time; another node may take over")
			return
		}
		select {
		case <-in.quit:
			ctx, cancel := in.op()
			_ = releaseLeaseScript.Run(ctx, in.client, []string{in.leaseKey}, in.token).Err()
			cancel()
			return
		case <-renew.C:
			start := time.Now()
			ctx, cancel := in.op()
			ok, err := renewScript.Run(ctx, in.client, []string{in.leaseKey}, in.token, in.cfg.Lease.Milliseconds()).Int()
			cancel()
			switch {
			case err == nil && ok == 0:
				in.log.Warn("raw redis ingest: the lease passed to another node")
				return
			case err == nil:
				valid = start.Add(in.cfg.Lease - in.cfg.Lease/10)
			}
		case m := <-msgs:
			if m != nil && time.Now().Before(valid) {
				in.ingest(m.Channel, m.Payload)
			}
		}
	}
}

// subscribe opens the subscription to every name, patterns by PSUBSCRIBE.
func (in *Ingest) subscribe() *goredis.PubSub {
	var exact, patterns []string
	for _, n := range in.cfg.Names {
		if strings.HasSuffix(n, "*") {
			patterns = append(patterns, n)
		} else {
			exact = append(exact, n)
		}
	}
	ctx := context.Background()
	ps := in.client.Subscribe(ctx) // errors are retried by go-redis's reconnects
	if len(exact) > 0 {
		_ = ps.Subscribe(ctx, exact...)
	}
	if len(patterns) > 0 {
		_ = ps.PSubscribe(ctx, patterns...)
	}
	// Read the confirmations, so that Leading means subscribed; should
	// Redis not answer in time, go-redis still resubscribes on its own.
	rctx, cancel := in.op()
	defer cancel()
	for range in.cfg.Names {
		if _, err := ps.Receive(rctx); err != nil {
			break
		}
	}
	return ps
}

// ingest announces one raw message or drops it.
func (in *Ingest) ingest(channel, payload string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*in.opTimeout)
	defer cancel()
	err := in.cfg.Publish(ctx, channel, payload)
	if err == nil {
		in.ingested.Add(1)
		return
	}
	reason := DropUnavailable
	switch {
	case errors.Is(err, announce.ErrInvalidChannel):
		reason = DropBadChannel
	case errors.Is(err, announce.ErrEmptyContent):
		reason = DropEmpty
	case errors.Is(err, announce.ErrMessageTooLarge):
		reason = DropTooLarge
	case errors.Is(err, announce.ErrInvalidUTF8):
		reason = DropNotUTF8
	}
	in.cfg.Dropped(reason)
	in.logDrop(channel, reason, err)
}

// logDrop writes at most one line per DropLogEvery, counting the rest.
func (in *Ingest) logDrop(channel, reason string, err error) {
	in.dropMu.Lock()
	defer in.dropMu.Unlock()
	if !in.dropLogged.IsZero() && time.Since(in.dropLogged) < in.cfg.DropLogEvery {
		in.dropQuiet++
		return
	}
	in.log.Warn("raw redis ingest: dropped a message", "redis_channel", channel, "reason", reason,
		"err", err, "dropped_unlogged_since_last", in.dropQuiet)
	in.dropLogged, in.dropQuiet = time.Now(), 0
}
