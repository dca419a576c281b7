package cli

import (
	"errors"
	"flag"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/serve"
)

// limitFlags are the flags bounding what clients can make a node hold
// (docs/operations.md, "Limits").
func limitFlags(fs *flag.FlagSet, l *serve.LimitsConfig) {
	fs.IntVar(&l.MaxCachedChannels, "max-cached-channels", announce.DefaultMaxCachedChannels, "channels kept in memory without observers (least recently used go first; observed ones always stay)")
	fs.IntVar(&l.MaxChannels, "max-channels", announce.DefaultMaxChannels, "channels in the store; a publish that would create one more answers 507")
	fs.DurationVar(&l.ChannelTTL, "channel-ttl", 0, "delete a channel with no publish and no observers for this long (0: keep channels forever)")
	fs.IntVar(&l.MaxScheduled, "max-scheduled", announce.DefaultMaxScheduledTotal, "pending scheduled publishes in the whole store; one more answers 429")
	fs.Float64Var(&l.PublishRate, "publish-rate", 0, "publishes per second one client (credential, else IP) may sustain (0: no limit)")
	fs.IntVar(&l.PublishBurst, "publish-burst", 0, "publishes one client may send at once (0: one second of --publish-rate)")
	fs.IntVar(&l.MaxConnsPerIP, "max-conns-per-ip", 0, "simultaneous connections from one address (0: no limit)")
	fs.Var((*listFlag)(&l.TrustedProxies), "trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For/Forwarded name the client")
}

func validateLimits(l serve.LimitsConfig) error {
	switch {
	case l.MaxCachedChannels < 1:
		return errors.New("--max-cached-channels must be at least 1")
	case l.MaxChannels < 1:
		return errors.New("--max-channels must be at least 1")
	case l.ChannelTTL < 0:
		return errors.New("--channel-ttl must not be negative")
	case l.MaxScheduled < 1:
		return errors.New("--max-scheduled must be at least 1")
	case l.PublishRate < 0 || l.PublishBurst < 0 || l.MaxConnsPerIP < 0:
		return errors.New("--publish-rate, --publish-burst and --max-conns-per-ip must be 0 (no limit) or more")
	}
	return nil
}
