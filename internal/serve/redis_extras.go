package serve

import (
	"context"
	"errors"

	"github.com/announce/announce/announce/redis"
	"github.com/prometheus/client_golang/prometheus"
)

// redisExtras are the parts of scale-out mode that reach Redis clients
// other than announce: the function library (FCALL announce_publish) and
// raw ingest (--redis-subscribe).
type redisExtras struct {
	library *redis.Library
	ingest  *redis.Ingest
}

// startRedisExtras loads the function library and, with RedisSubscribe,
// starts raw ingest, registering its metrics. It does nothing off Redis.
func (n *Node) startRedisExtras(reg *prometheus.Registry) error {
	st, ok := n.store.(*redis.Store)
	if !ok {
		return nil
	}
	lib, err := st.LoadLibrary(context.Background(), n.hub.MaxMessage(), 0)
	if err != nil {
		return err
	}
	n.extras.library = lib
	if len(n.cfg.RedisSubscribe) == 0 {
		return nil
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "announce_ingest_dropped_total",
		Help: "Raw Redis messages (--redis-subscribe) not announced, by reason.",
	}, []string{"reason"})
	for _, r := range redis.DropReasons {
		dropped.WithLabelValues(r)
	}
	in, err := st.Ingest(redis.IngestConfig{
		Names: n.cfg.RedisSubscribe,
		Publish: func(ctx context.Context, channel, content string) error {
			_, err := n.hub.Publish(ctx, channel, content)
			return err
		},
		Dropped: func(reason string) { dropped.WithLabelValues(reason).Inc() },
		Lease:   n.cfg.RedisIngestLease,
	})
	if err != nil {
		return err
	}
	n.extras.ingest = in
	return errors.Join(
		reg.Register(dropped),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "announce_ingested_total",
			Help: "Raw Redis messages (--redis-subscribe) this node announced.",
		}, func() float64 { return float64(in.Ingested()) })),
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "announce_ingest_leading",
			Help: "1 while this node holds the raw ingest lease and ingests, else 0.",
		}, func() float64 {
			if in.Leading() {
				return 1
			}
			return 0
		})),
	)
}

// stopRedisExtras stops ingest first (giving its lease to another node at
// once), then the library checks; the library stays loaded in Redis.
func (n *Node) stopRedisExtras() error {
	var err error
	if n.extras.ingest != nil {
		err = n.extras.ingest.Close()
	}
	if n.extras.library != nil {
		err = errors.Join(err, n.extras.library.Close())
	}
	return err
}
