package announce

import (
	"context"
	"time"
)

// The channel cache: a channel is kept in memory while it has observers,
// and after that only as long as it was used recently. Each shard keeps its
// channels in a least-recently-used list with a cap (its share of
// Limits.MaxCachedChannels); a new channel pushes out the least recently
// used one that nobody observes. A read of a channel that holds no message
// caches nothing, so reads of made-up names cost no memory.

// lru is a shard's channels, most recently used first, linked through the
// channels themselves. It has no lock of its own: it is guarded by the
// shard's mu, held for every call of its methods.
type lru struct {
	head, tail *Channel
	n, cap     int
}

func (l *lru) init(cap int) { l.cap = cap }

func (l *lru) pushFront(c *Channel) {
	c.lruPrev, c.lruNext = nil, l.head
	if l.head != nil {
		l.head.lruPrev = c
	}
	l.head = c
	if l.tail == nil {
		l.tail = c
	}
	l.n++
}

func (l *lru) unlink(c *Channel) {
	if c.lruPrev != nil {
		c.lruPrev.lruNext = c.lruNext
	} else if l.head == c {
		l.head = c.lruNext
	} else {
		return // not in the list
	}
	if c.lruNext != nil {
		c.lruNext.lruPrev = c.lruPrev
	} else {
		l.tail = c.lruPrev
	}
	c.lruPrev, c.lruNext = nil, nil
	l.n--
}

func (l *lru) touch(c *Channel) {
	if l.head != c {
		l.unlink(c)
		l.pushFront(c)
	}
}

// evictScan bounds how many observed channels one admission steps over
// looking for one to evict, so a cache full of observed channels costs an
// admission little; those it steps over move to the front.
const evictScan = 16

// admitLocked adds c, just put in s.channels, to the lru and evicts what
// the cap leaves no room for. It returns the names evicted. Requires s.mu
// held.
func (s *shard) admitLocked(c *Channel) []string {
	s.lru.pushFront(c)
	var gone []string
	for scanned := 0; s.lru.n > s.lru.cap && scanned < evictScan; scanned++ {
		old := s.lru.tail
		if old == c {
			break
		}
		if !old.evictLocked() {
			s.lru.touch(old) // observed (or busy): never evicted
			continue
		}
		s.removeLocked(old)
		gone = append(gone, old.name)
	}
	return gone
}

// removeLocked takes c out of the shard. Requires s.mu held.
func (s *shard) removeLocked(c *Channel) {
	if s.channels[c.name] == c {
		delete(s.channels, c.name)
	}
	s.lru.unlink(c)
}

// evictLocked marks c evicted, and reports so, when nothing holds it: no
// observer, nothing pending or being filled, loaded, and (with idle > 0)
// no observer for idle until now. Requires the shard's mu held (the caller
// takes c out of the shard); takes c.mu.
func (c *Channel) evictLocked() bool { return c.evictIdleLocked(time.Time{}, 0) }

// evictIdleLocked is evictLocked for a channel unobserved for idle at now.
// Requires the shard's mu held; takes c.mu.
func (c *Channel) evictIdleLocked(now time.Time, idle time.Duration) bool {
	if !c.isLoaded() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.unusedLocked() || idle > 0 && now.Sub(c.idleSince) < idle {
		return false
	}
	c.evicted = true
	return true
}

// evictEmptyLocked is evictLocked for a channel that holds no message.
// Requires the shard's mu held; takes c.mu.
func (c *Channel) evictEmptyLocked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.unusedLocked() || c.seq.current.ID != 0 {
		return false
	}
	c.evicted = true
	return true
}

// unusedLocked reports whether c could go from the cache. Requires c.mu
// held.
func (c *Channel) unusedLocked() bool {
	return c.seq.current != nil && len(c.observers) == 0 && !c.seq.busyLocked() && !c.evicted
}

// dropEmpty takes c out of the cache if it is still unused and empty.
func (h *Hub) dropEmpty(c *Channel) {
	s := h.shard(c.name)
	s.mu.Lock()
	if s.channels[c.name] != c {
		s.mu.Unlock()
		return
	}
	ok := c.evictEmptyLocked()
	if ok {
		s.removeLocked(c)
	}
	s.mu.Unlock()
	if ok && h.broker != nil {
		go h.unwatchEvicted([]string{c.name}) // may wait on the network
	}
}

// Read returns the named channel for reading. A cached channel is
// returned as it is; otherwise its state is read from the store, and the
// channel is cached only when it holds a message. An empty one comes back
// detached: right for this read, then forgotten. The name must be valid.
func (h *Hub) Read(ctx context.Context, name string) (*Channel, error) {
	if err := ValidateChannel(name); err != nil {
		return nil, err
	}
	if h.closed.Load() {
		return nil, ErrClosed
	}
	s := h.shard(name)
	s.mu.Lock()
	_, ok := s.channels[name]
	s.mu.Unlock()
	if ok {
		return h.Channel(ctx, name) // waits for its load and marks it used
	}
	cur, err := h.store.Current(ctx, name)
	if err != nil {
		return nil, err
	}
	if cur.ID > 0 {
		return h.Channel(ctx, name)
	}
	return detachedChannel(h, name), nil
}

// CachedChannels counts the channels held in memory.
func (h *Hub) CachedChannels() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		n += len(s.channels)
		s.mu.Unlock()
	}
	return n
}

// detachedChannel returns an empty, loaded channel that is in no cache:
// what Read answers for a channel that holds nothing.
func detachedChannel(h *Hub, name string) *Channel {
	c := newChannel(h, name)
	c.evicted = true // before anyone else can see c
	c.load(nil)
	c.loaded(nil)
	return c
}
