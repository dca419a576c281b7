package cli

import (
	"flag"

	"github.com/announce/announce/internal/serve"
)

// limitFlags are the flags bounding what clients can make a node hold
// (docs/operations.md, "Limits").
func limitFlags(fs *flag.FlagSet, l *serve.LimitsConfig) {
	fs.IntVar(&l.MaxCachedChannels, "max-cached-channels", l.MaxCachedChannels, "channels kept in memory without observers (least recently used go first; observed ones always stay)")
	fs.IntVar(&l.MaxChannels, "max-channels", l.MaxChannels, "channels in the store; a publish that would create one more answers 507")
	fs.DurationVar(&l.ChannelTTL, "channel-ttl", 0, "delete a channel with no publish and no observers for this long (0: keep channels forever)")
	fs.IntVar(&l.MaxScheduled, "max-scheduled", l.MaxScheduled, "pending scheduled publishes in the whole store; one more answers 429")
	fs.Float64Var(&l.PublishRate, "publish-rate", 0, "publishes per second one client (credential, else IP) may sustain (0: no limit)")
	fs.IntVar(&l.PublishBurst, "publish-burst", 0, "publishes one client may send at once (0: one second of --publish-rate)")
	fs.IntVar(&l.MaxConnsPerIP, "max-conns-per-ip", 0, "simultaneous connections from one address (0: no limit)")
	fs.Var((*listFlag)(&l.TrustedProxies), "trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For/Forwarded name the client")
}
