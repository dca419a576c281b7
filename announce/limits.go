package announce

// DefaultMaxCachedChannels is the default of Limits.MaxCachedChannels.
const DefaultMaxCachedChannels = 100_000

// Limits bound what clients can make a hub hold. Zero fields take the defaults.
type Limits struct {
	// MaxCachedChannels caps the channels kept in memory without
	// observers (least recently used go first); observed ones always stay.
	MaxCachedChannels int
}

func (l Limits) withDefaults() Limits {
	l.MaxCachedChannels = positive(l.MaxCachedChannels, DefaultMaxCachedChannels)
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
