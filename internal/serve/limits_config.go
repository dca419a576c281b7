package serve

import (
	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// LimitsConfig bounds what clients can make a node hold (docs/operations.md).
type LimitsConfig struct {
	MaxCachedChannels int      // channels kept in memory without observers
	PublishRate       float64  // publishes per second per client; 0: no limit
	PublishBurst      int      // publishes a client may send at once
	MaxConnsPerIP     int      // connections per peer address; 0: no limit
	TrustedProxies    []string // CIDRs whose forwarding headers name the client
}

func (l LimitsConfig) hub() announce.Limits {
	return announce.Limits{MaxCachedChannels: l.MaxCachedChannels}
}

func (l LimitsConfig) api() (api.ClientLimits, error) {
	proxies, err := api.ParseTrustedProxies(l.TrustedProxies)
	return api.ClientLimits{PublishRate: l.PublishRate, PublishBurst: l.PublishBurst, TrustedProxies: proxies}, err
}
