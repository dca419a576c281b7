package serve

import (
	"context"
	"errors"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// LimitsConfig bounds what clients can make a node hold (docs/operations.md).
type LimitsConfig struct {
	MaxCachedChannels int           // channels kept in memory without observers
	MaxChannels       int           // channels in the store; a publish making one more answers 507
	ChannelTTL        time.Duration // a channel idle this long is deleted; 0 keeps channels forever
	MaxScheduled      int           // pending schedules in the store; one more answers 429
	PublishRate       float64       // publishes per second per client; 0: no limit
	PublishBurst      int           // publishes a client may send at once
	MaxConnsPerIP     int           // connections per peer address; 0: no limit
	TrustedProxies    []string      // CIDRs whose forwarding headers name the client
}

func (l LimitsConfig) hub() announce.Limits {
	return announce.Limits{MaxCachedChannels: l.MaxCachedChannels, MaxChannels: l.MaxChannels,
		ChannelTTL: l.ChannelTTL, MaxScheduledTotal: l.MaxScheduled}
}

// observedAnywhere is the hub's Limits.Observed on a shared store: a
// channel some node's presence counts observers of is not idle. Until
// presence has started every channel counts as observed.
func (n *Node) observedAnywhere(ctx context.Context, channel string) (bool, error) {
	t := n.observers.Load()
	if t == nil {
		return true, nil
	}
	snap := t.Snapshot(ctx, channel)
	if snap.Partial {
		return false, errors.New("other nodes' presence is unreadable")
	}
	return snap.Total > 0, nil
}

func (l LimitsConfig) api() (api.ClientLimits, error) {
	proxies, err := api.ParseTrustedProxies(l.TrustedProxies)
	return api.ClientLimits{PublishRate: l.PublishRate, PublishBurst: l.PublishBurst, TrustedProxies: proxies}, err
}
