package announce

import (
	"context"
	"time"
)

// The defaults of Limits.
const (
	DefaultMaxCachedChannels = 100_000
	DefaultMaxChannels       = 1_000_000
	DefaultMaxScheduledTotal = 100_000
)

// Limits bound what clients can make a hub hold. Zero fields take the defaults.
type Limits struct {
	// MaxCachedChannels caps the channels kept in memory without
	// observers (least recently used go first); observed ones always stay.
	MaxCachedChannels int
	// MaxChannels caps the channels in the store: a publish that would
	// create one more fails with ErrTooManyChannels. Negative: no limit.
	MaxChannels int
	// ChannelTTL deletes a channel with no publish for this long and no
	// observer (on this node, and on any node when Observed says so); 0
	// keeps channels forever.
	ChannelTTL time.Duration
	// Observed, when set, reports whether any node sharing the store has
	// observers of channel (presence knows); an error keeps the channel.
	Observed func(ctx context.Context, channel string) (bool, error)
	// MaxScheduledTotal caps the pending schedules of the whole store:
	// one more fails with ErrTooManyScheduledTotal. Negative: no limit.
	MaxScheduledTotal int
}

func (l Limits) withDefaults() Limits {
	l.MaxCachedChannels = positive(l.MaxCachedChannels, DefaultMaxCachedChannels)
	if l.MaxChannels == 0 {
		l.MaxChannels = DefaultMaxChannels
	}
	if l.MaxScheduledTotal == 0 {
		l.MaxScheduledTotal = DefaultMaxScheduledTotal
	}
	return l
}

// shardCap is shard i's share of MaxCachedChannels among n shards: the
// shares add up to the limit exactly.
func (l Limits) shardCap(i, n int) int {
	c := l.MaxCachedChannels / n
	if i < l.MaxCachedChannels%n {
		c++
	}
	return c
}
