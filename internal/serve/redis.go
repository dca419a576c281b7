package serve

import (
	"context"
	"errors"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/prometheus/client_golang/prometheus"
)

// redisNode is the scale-out wiring: a Redis store and a broker on the same URL.
type redisNode struct {
	store  *redis.Store
	broker *redis.Broker
}

// openRedis opens the Redis store, checks that Redis answers (so a wrong URL
// fails at start, not at the first publish), and returns the broker factory.
func openRedis(cfg Config) (*redisNode, error) {
	st, err := redis.Open(redis.Config{URL: cfg.Redis, History: cfg.History, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.Ping(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return &redisNode{store: st}, nil
}

// idempotency is shared by every node on the Redis, so a retried publish
// that lands on another node is recognised.
func (r *redisNode) idempotency() announce.Idempotency {
	return r.store.Idempotency(announce.DefaultIdempotencyTTL)
}

// newBroker builds the broker with the hub as its sink.
func (r *redisNode) newBroker(cfg Config) func(announce.BrokerSink) (announce.Broker, error) {
	return func(sink announce.BrokerSink) (announce.Broker, error) {
		b, err := redis.NewBroker(redis.BrokerConfig{URL: cfg.Redis, Logger: cfg.Logger}, sink)
		if err != nil {
			return nil, err
		}
		r.broker = b
		return b, nil
	}
}

// ready reports Redis reachable for commands and the subscription connection alive.
func (r *redisNode) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := r.store.Ping(ctx)
	if r.broker != nil {
		err = errors.Join(err, r.broker.Ping(ctx))
	}
	return err
}

// collector exposes the broker's reconnects on /metrics, so an operator sees
// a flapping Redis; the hub's announce_gaps_filled_total shows what the
// reconnects cost.
func (r *redisNode) collector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "announce_redis_reconnects_total",
		Help: "Redis pub/sub connections re-established after a loss.",
	}, func() float64 {
		if r.broker == nil { // set when the hub builds its broker, before serving
			return 0
		}
		return float64(r.broker.Reconnects())
	})
}
