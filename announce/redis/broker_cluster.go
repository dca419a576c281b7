package redis

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// shardRouter is the Broker on Redis Cluster. Append publishes a channel's
// messages by SPUBLISH, which reaches only the shard of the channel's slot,
// so each channel is SSUBSCRIBEd on the master serving its slot: one
// sharded Broker (one connection, the same reader and watch bookkeeping as
// on one Redis) per master, created when a channel first needs it.
//
// When a slot changes master (a failover, a resharding) its channels move:
// every PingInterval the router refreshes its slot map (CLUSTER SLOTS) and
// asks it which master serves each watched channel. A channel on the wrong shard is watched on the right
// one first, then the sink resyncs it from the history (covering what was
// published while it was on the wrong shard) and the old shard lets it go.
// The hub drops what it would receive twice by id.
type shardRouter struct {
	cc   *goredis.ClusterClient
	cfg  BrokerConfig
	sink announce.BrokerSink

	// stripes serialize Watch, Unwatch and moves of one channel, so that
	// routes always names the shard really watching it. A stripe is held
	// across that shard's Watch (bounded by OpTimeout).
	stripes [64]sync.Mutex

	mu      sync.Mutex         // guards the maps; never held during I/O
	shards  map[string]*Broker // by master address
	routes  map[string]*Broker // by channel: the shard watching it
	retired atomic.Uint64      // reconnects of closed shards, for Reconnects

	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func newShardRouter(cc *goredis.ClusterClient, cfg BrokerConfig, sink announce.BrokerSink) *shardRouter {
	r := &shardRouter{cc: cc, cfg: cfg, sink: sink,
		shards: make(map[string]*Broker), routes: make(map[string]*Broker),
		quit: make(chan struct{}), done: make(chan struct{})}
	go r.follow()
	return r
}

func (r *shardRouter) stripe(channel string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(channel))
	return &r.stripes[h.Sum32()%uint32(len(r.stripes))]
}

// shardFor returns the broker of the master serving channel's slot.
func (r *shardRouter) shardFor(ctx context.Context, channel string) (*Broker, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	defer cancel()
	node, err := r.cc.MasterForKey(ctx, keys{prefix: r.cfg.Prefix}.topic(channel))
	if err != nil {
		return nil, unavailable("cluster slots", err)
	}
	addr := node.Options().Addr
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing() {
		return nil, announce.ErrClosed
	}
	sh := r.shards[addr]
	if sh == nil {
		sh = newBroker(r.cfg, r.sink, node.SSubscribe(context.Background()), nil)
		sh.sharded = true
		r.shards[addr] = sh
	}
	return sh, nil
}

// routed is the shard channel is watched on, nil if none.
func (r *shardRouter) routed(channel string) *Broker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routes[channel]
}

func (r *shardRouter) watch(ctx context.Context, channel string) error {
	mu := r.stripe(channel)
	mu.Lock()
	defer mu.Unlock()
	if cur := r.routed(channel); cur != nil {
		return cur.Watch(ctx, channel) // already watched: the same confirmation
	}
	sh, err := r.shardFor(ctx, channel)
	if err != nil {
		return err
	}
	if err := sh.Watch(ctx, channel); err != nil {
		return err
	}
	r.mu.Lock()
	r.routes[channel] = sh
	r.mu.Unlock()
	return nil
}

func (r *shardRouter) unwatch(channel string) {
	mu := r.stripe(channel)
	mu.Lock()
	defer mu.Unlock()
	r.mu.Lock()
	sh := r.routes[channel]
	delete(r.routes, channel)
	r.mu.Unlock()
	if sh != nil {
		sh.Unwatch(channel)
	}
}

// follow moves channels whose slot changed master, every PingInterval.
func (r *shardRouter) follow() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-t.C:
		}
		// Refresh the slot map in the background for the next tick: this
		// client only subscribes, so no MOVED ever tells it of a change.
		r.cc.ReloadState(context.Background())
		r.mu.Lock()
		channels := make([]string, 0, len(r.routes))
		for ch := range r.routes {
			channels = append(channels, ch)
		}
		r.mu.Unlock()
		for _, ch := range channels {
			if r.closing() {
				return
			}
			r.move(ch)
		}
		r.retireIdle()
	}
}

// move watches channel on the shard now serving it, if that is another.
func (r *shardRouter) move(channel string) {
	mu := r.stripe(channel)
	mu.Lock()
	defer mu.Unlock()
	old := r.routed(channel)
	if old == nil {
		return // unwatched meanwhile
	}
	sh, err := r.shardFor(context.Background(), channel)
	if err != nil || sh == old {
		return
	}
	if err := sh.Watch(context.Background(), channel); err != nil {
		r.cfg.Logger.Warn("redis cluster: moving a channel to its new shard; retrying", "channel", channel, "err", err)
		return
	}
	r.mu.Lock()
	r.routes[channel] = sh
	r.mu.Unlock()
	r.sink.Resync(channel)
	old.Unwatch(channel)
	r.cfg.Logger.Info("redis cluster: channel moved to a new shard", "channel", channel)
}

// retireIdle closes the shards no channel is routed to any more and that
// are down (a master that left), so they neither redial forever nor count
// against readiness.
func (r *shardRouter) retireIdle() {
	r.mu.Lock()
	used := make(map[*Broker]bool, len(r.shards))
	for _, sh := range r.routes {
		used[sh] = true
	}
	var idle []*Broker
	for addr, sh := range r.shards {
		if !used[sh] && !sh.Healthy() {
			delete(r.shards, addr)
			idle = append(idle, sh)
		}
	}
	r.mu.Unlock()
	for _, sh := range idle {
		r.retired.Add(sh.Reconnects())
		_ = sh.Close()
	}
}

// ping is nil while every shard a channel is routed to is connected.
func (r *shardRouter) ping() error {
	r.mu.Lock()
	used := make(map[*Broker]bool)
	for _, sh := range r.routes {
		used[sh] = true
	}
	r.mu.Unlock()
	var errs []error
	for sh := range used {
		errs = append(errs, sh.Ping(context.Background()))
	}
	return errors.Join(errs...)
}

// sum adds up a counter over the shards.
func (r *shardRouter) sum(counter func(*Broker) uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n uint64
	for _, sh := range r.shards {
		n += counter(sh)
	}
	return n
}

func (r *shardRouter) closing() bool {
	select {
	case <-r.quit:
		return true
	default:
		return false
	}
}

func (r *shardRouter) close() error {
	var err error
	r.once.Do(func() {
		r.mu.Lock()
		close(r.quit)
		shards := r.shards
		r.shards = map[string]*Broker{}
		r.mu.Unlock()
		<-r.done
		var errs []error
		for _, sh := range shards {
			errs = append(errs, sh.Close())
		}
		err = errors.Join(append(errs, r.cc.Close())...)
	})
	return err
}
