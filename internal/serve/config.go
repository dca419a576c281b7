package serve

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/api"
)

// Defaults of a node that are not some package's own default.
const (
	DefaultListen          = ":8000"
	DefaultDataDir         = "./data"
	DefaultShutdownTimeout = 10 * time.Second // the deadline announce serve gives Shutdown
	DefaultTLSRecheck      = time.Second
)

// DefaultConfig is the configuration of `announce serve` without flags: the
// CLI's flags start from it. Start also takes a zero field as its default.
func DefaultConfig() Config {
	return Config{
		Listen:        DefaultListen,
		DataDir:       DefaultDataDir,
		History:       announce.DefaultHistory,
		MaxMessage:    announce.DefaultMaxMessage,
		PollTimeout:   api.DefaultPollTimeout,
		CORSOrigins:   []string{"*"},
		Queue:         announce.DefaultQueue,
		PrivatePrefix: api.DefaultPrivatePrefix,
		Presence:      DefaultPresenceConfig(),
		TLS:           DefaultTLSConfig(),
		Limits:        DefaultLimitsConfig(),
	}
}

// DefaultLimitsConfig bounds what the hub bounds by default; the per-client
// limits are off.
func DefaultLimitsConfig() LimitsConfig {
	return LimitsConfig{
		MaxCachedChannels: announce.DefaultMaxCachedChannels,
		MaxChannels:       announce.DefaultMaxChannels,
		MaxScheduled:      announce.DefaultMaxScheduledTotal,
	}
}

// DefaultPresenceConfig counts observers without events or webhooks.
func DefaultPresenceConfig() PresenceConfig {
	return PresenceConfig{Grace: presence.DefaultGrace}
}

// DefaultTLSConfig serves plain HTTP; with files set, they are rechecked every second.
func DefaultTLSConfig() TLSConfig { return TLSConfig{Recheck: DefaultTLSRecheck} }

// Validate checks a complete configuration, DefaultConfig with changes, as
// `announce serve` builds it from its flags: unlike Start it does not read a
// zero field as the default. Its messages name the flags.
func (c Config) Validate() error {
	return errors.Join(c.validate(), c.Limits.Validate())
}

func (c Config) validate() error {
	if err := validateListen(c.Listen); err != nil {
		return err
	}
	switch {
	case c.PollTimeout < time.Second:
		return errors.New("--poll-timeout must be at least 1s")
	case c.History < 1:
		return errors.New("--history must be at least 1")
	case c.MaxMessage < 1:
		return errors.New("--max-message must be at least 1")
	case c.Queue < 1:
		return errors.New("--queue must be at least 1")
	case c.MaxConns < 0:
		return errors.New("--max-conns must be 0 (no limit) or more")
	case c.Memory && c.Redis != "":
		return errors.New("--memory and --redis exclude each other")
	}
	if err := c.Presence.Validate(); err != nil {
		return err
	}
	switch {
	case len(c.RedisSubscribe) > 0 && c.Redis == "":
		return errors.New("--redis-subscribe needs --redis")
	case len(c.RedisSubscribe) > 0 && redis.ValidateIngestNames(c.RedisSubscribe, "") != nil:
		return fmt.Errorf("--redis-subscribe: %w", redis.ValidateIngestNames(c.RedisSubscribe, ""))
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	switch {
	case c.H2C && c.TLS.CertFile != "":
		return errors.New("--h2c is cleartext HTTP/2; with --tls-cert HTTP/2 is already on (ALPN)")
	case announce.ValidateChannel(c.PrivatePrefix+"x") != nil:
		return errors.New("--private-prefix must be 1 to 63 of [A-Za-z0-9_.:-]")
	}
	return nil
}

// Validate checks the limits as the flags set them.
func (l LimitsConfig) Validate() error {
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

// Validate checks that presence's durations are not negative.
func (p PresenceConfig) Validate() error {
	if p.Grace < 0 {
		return errors.New("--presence-grace must not be negative")
	}
	return nil
}

// Validate checks that the certificate and its key come together.
func (t TLSConfig) Validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("--tls-cert and --tls-key go together: give both files")
	}
	return nil
}

// validateListen checks --listen is host:port, suggesting the colon that a
// bare port number lacks.
func validateListen(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return nil
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return fmt.Errorf("--listen %s: an address is HOST:PORT; for port %s on every interface write --listen :%s (or 127.0.0.1:%s for this machine only)", addr, addr, addr, addr)
	}
	return fmt.Errorf("--listen %q: want HOST:PORT, e.g. :8000 or 127.0.0.1:8000", addr)
}
