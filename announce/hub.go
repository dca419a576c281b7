package announce

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Hub holds the channels by name and publishes through the Store.
type Hub struct {
	store      Store
	broker     Broker
	history    int
	maxMessage int
	queue      int
	idle       time.Duration
	gapGrace   time.Duration
	log        *slog.Logger
	stats      Stats
	sched      *Scheduler // nil when the store cannot schedule
	limits     Limits
	count      channelCount // for Limits.MaxChannels (store_admin.go)

	seed   maphash.Seed
	shards [32]shard

	closed    atomic.Bool
	ctx       context.Context // cancelled by Shutdown: ends the periodic jobs and fills
	cancel    context.CancelFunc
	janitorWG sync.WaitGroup // the periodic jobs (every)
	stopped   chan struct{}  // closed when Shutdown's waiting is over
	stopErr   error          // written before stopped is closed
}

// shard is one of the hub's locks over the channels by name.
type shard struct {
	mu       sync.Mutex
	channels map[string]*Channel // guarded by mu
	lru      lru                 // the channels, most recently used first (cache.go); guarded by mu
}

// Stats are the hub's running counters, read by the metrics endpoint.
type Stats struct {
	published     atomic.Uint64
	slowConsumers atomic.Uint64
	gapsFilled    atomic.Uint64
	delivered     [numTransports]atomic.Uint64
	observers     [numTransports]atomic.Int64
}

// Published counts accepted publishes.
func (s *Stats) Published() uint64 { return s.published.Load() }

// SlowConsumers counts observers cut for a full queue.
func (s *Stats) SlowConsumers() uint64 { return s.slowConsumers.Load() }

// GapsFilled counts messages recovered from the store after a gap.
func (s *Stats) GapsFilled() uint64 { return s.gapsFilled.Load() }

// Delivered counts messages queued to observers of transport t.
func (s *Stats) Delivered(t Transport) uint64 { return s.delivered[t].Load() }

// Observers counts registered observers of transport t.
func (s *Stats) Observers(t Transport) int64 { return s.observers[t].Load() }

// NewHub validates cfg, fills its defaults and starts the hub.
func NewHub(cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		return nil, errors.New("announce: Config.Store is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	h := &Hub{
		store:      cfg.Store,
		history:    cfg.History,
		maxMessage: cfg.MaxMessage,
		queue:      cfg.Queue,
		idle:       cfg.IdleTimeout,
		gapGrace:   defaultGapGrace,
		log:        cfg.Logger,
		limits:     cfg.Limits,
		seed:       maphash.MakeSeed(),
		stopped:    make(chan struct{}),
	}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*Channel)
		h.shards[i].lru.init(h.limits.shardCap(i, len(h.shards)))
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if cfg.Broker != nil {
		b, err := cfg.Broker(h)
		if err != nil {
			h.cancel()
			return nil, err
		}
		h.broker = b
	}
	h.every(max(h.idle/2, time.Millisecond), h.evictIdle) // NewTicker panics on 0
	if h.limits.ChannelTTL > 0 {
		// Every quarter of the TTL, at most every minute.
		h.every(min(max(h.limits.ChannelTTL/4, 10*time.Millisecond), time.Minute), func(now time.Time) {
			ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
			defer cancel()
			h.expireIdle(ctx, now)
		})
	}
	if st, ok := cfg.Store.(ScheduleStore); ok {
		h.sched = newScheduler(h, st, cfg.SchedulePoll, cfg.MaxScheduled)
	}
	return h, nil
}

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// MaxMessage is the largest content the hub accepts, in bytes.
func (h *Hub) MaxMessage() int { return h.maxMessage }

// QueueLimit is the queue limit for new observers.
func (h *Hub) QueueLimit() int { return h.queue }

// Store returns the hub's store.
func (h *Hub) Store() Store { return h.store }

func (h *Hub) shard(name string) *shard {
	return &h.shards[maphash.String(h.seed, name)%uint64(len(h.shards))]
}

// Channel returns the named channel, loading its state from the store the
// first time and keeping it cached. The name must be valid. To only read a
// channel, use Read, which caches no empty channel.
func (h *Hub) Channel(ctx context.Context, name string) (*Channel, error) {
	if err := ValidateChannel(name); err != nil {
		return nil, err
	}
	s := h.shard(name)
	for {
		if h.closed.Load() {
			return nil, ErrClosed
		}
		s.mu.Lock()
		c, ok := s.channels[name]
		var evicted []string
		if ok {
			s.lru.touch(c)
		} else {
			c = newChannel(h, name)
			s.channels[name] = c
			evicted = s.admitLocked(c)
		}
		s.mu.Unlock()
		h.unwatchEvicted(evicted)
		if !ok {
			return h.loadOrForget(ctx, s, c)
		}
		if err := c.awaitLoad(ctx); err != nil {
			if ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				// The loading caller's own request ended; that is no
				// reason to fail this one. The failed channel is out of
				// the map, so try again.
				continue
			}
			return nil, err
		}
		return c, nil
	}
}

// loadOrForget loads c, which this caller just put in s; on failure it takes
// it out again so the next caller retries.
func (h *Hub) loadOrForget(ctx context.Context, s *shard, c *Channel) (*Channel, error) {
	// This caller loads; the channel is already in the map, so any message
	// committed after the read below is delivered to it and kept in pending.
	err := h.loadChannel(ctx, c)
	if err != nil {
		s.mu.Lock()
		s.removeLocked(c)
		s.mu.Unlock()
		c.loaded(err)
		return nil, err
	}
	c.loaded(nil)
	return c, nil
}

func (h *Hub) loadChannel(ctx context.Context, c *Channel) error {
	if h.broker != nil {
		if err := h.broker.Watch(ctx, c.name); err != nil {
			return err
		}
	}
	// No limit: Since returns the oldest messages first, and the store may
	// keep more than the hub; load keeps the newest h.history of them.
	msgs, err := h.store.Since(ctx, c.name, 0, 0)
	if err != nil {
		return err
	}
	c.load(msgs)
	return nil
}

// lookup returns a loaded channel if the hub has it.
func (h *Hub) lookup(name string) *Channel {
	s := h.shard(name)
	s.mu.Lock()
	c := s.channels[name]
	s.mu.Unlock()
	return c
}

// Subscribe registers o on the named channel and returns its replay (see
// Channel.subscribe). since == nil means no cursor.
func (h *Hub) Subscribe(ctx context.Context, name string, o *Observer, since *uint64) (*Channel, Replay, error) {
	for {
		c, err := h.Channel(ctx, name)
		if err != nil {
			return nil, Replay{}, err
		}
		if since != nil {
			h.CatchUp(ctx, c, *since)
		}
		if r, ok := c.subscribe(o, since); ok {
			return c, r, nil
		}
	}
}

// Wait is the long-poll entry: it returns the message to answer at once, or
// registers o (and returns nil) to be woken by the next message.
func (h *Hub) Wait(ctx context.Context, name string, o *Observer, since *uint64) (*Channel, *Envelope, error) {
	for {
		c, err := h.Channel(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		if since != nil {
			h.CatchUp(ctx, c, *since)
		}
		if e, ok := c.wait(o, since); ok {
			return c, e, nil
		}
	}
}

// Publish validates content, has the store commit it, and only then
// delivers it to this node's observers.
func (h *Hub) Publish(ctx context.Context, name, content string) (*Envelope, error) {
	if err := ValidateChannel(name); err != nil {
		return nil, err
	}
	if err := ValidateContent(content, h.maxMessage); err != nil {
		return nil, err
	}
	if h.closed.Load() {
		return nil, ErrClosed
	}
	if err := h.admitChannel(ctx, name); err != nil {
		return nil, err
	}
	if c := h.lookup(name); c != nil {
		c.startPublish()
		defer c.endPublish() // after the delivery below
	}
	m, err := h.store.Append(ctx, name, content, time.Now().Truncate(time.Microsecond))
	if err != nil {
		return nil, err
	}
	h.stats.published.Add(1)
	e := NewEnvelope(m)
	if c := h.lookup(name); c != nil {
		c.deliver(e)
	}
	return e, nil
}

// every runs task each interval on a goroutine of its own until the hub
// shuts down (Shutdown waits for it through janitorWG).
func (h *Hub) every(interval time.Duration, task func(now time.Time)) {
	h.janitorWG.Add(1)
	go func() {
		defer h.janitorWG.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-h.ctx.Done():
				return
			case now := <-t.C:
				task(now)
			}
		}
	}()
}

// evictIdle drops channels that had no observers for the idle timeout, so
// memory follows the live channels and a broker stops watching idle ones.
func (h *Hub) evictIdle(now time.Time) {
	var gone []string
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for name, c := range s.channels {
			if c.evictIdleLocked(now, h.idle) {
				s.removeLocked(c)
				gone = append(gone, name)
			}
		}
		s.mu.Unlock()
	}
	h.unwatchEvicted(gone)
}

// unwatchEvicted stops the broker watching channels just evicted; it may
// wait on the network, so never call it under a lock.
func (h *Hub) unwatchEvicted(gone []string) {
	if h.broker == nil {
		return
	}
	for _, name := range gone {
		h.broker.Unwatch(name) // may wait on the network: never under a lock
		if c := h.lookup(name); c != nil {
			// A subscriber brought the channel back while we unwatched:
			// watch it again and recover what the gap may have lost.
			ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
			if err := h.broker.Watch(ctx, name); err != nil {
				h.log.Warn("re-watch after eviction failed", "channel", name, "err", err)
			}
			cancel()
			go c.fill()
		}
	}
}

// Shutdown stops the hub: new publishes and subscriptions fail with
// ErrClosed and every observer is closed with ErrShutdown, at once. Then it
// waits for the hub's jobs (idle eviction, channel TTL, the scheduler's
// firing) to end and closes the broker; when ctx ends first it returns
// ctx.Err(), and they go on ending in the background. A later call waits
// likewise and returns the same. The store is the caller's: close it after.
func (h *Hub) Shutdown(ctx context.Context) error {
	if !h.closed.Swap(true) {
		h.cancel() // the jobs' and fills' store calls end early
		for i := range h.shards {
			for _, c := range h.shards[i].snapshot() {
				c.closeAll(ErrShutdown)
			}
		}
		go func() {
			h.janitorWG.Wait()
			h.sched.close()
			if h.broker != nil {
				h.stopErr = h.broker.Close()
			}
			close(h.stopped)
		}()
	}
	select {
	case <-h.stopped: // first: done in time is done, whatever ctx says now
		return h.stopErr
	default:
	}
	select {
	case <-h.stopped:
		return h.stopErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// snapshot returns the shard's channels.
func (s *shard) snapshot() []*Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	chans := make([]*Channel, 0, len(s.channels))
	for _, c := range s.channels {
		chans = append(chans, c)
	}
	return chans
}
