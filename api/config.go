package api

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/announce/announce/announce"
	"github.com/prometheus/client_golang/prometheus"
)

// The defaults of Config's zero fields; the CLI's flags start from them.
const (
	DefaultPollTimeout  = 30 * time.Second // longest long-poll wait
	DefaultHeartbeat    = 15 * time.Second // SSE keepalive comment interval
	DefaultPingInterval = 25 * time.Second // WebSocket ping interval
	DefaultPongTimeout  = 60 * time.Second // a silent WebSocket client is closed after it
	DefaultWriteTimeout = 10 * time.Second // bound of every write to a client
	DefaultBodyTimeout  = 15 * time.Second // bound of reading a request's body
)

// Validate reports what in c New would refuse. Zero fields are valid:
// they take the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Hub == nil {
		errs = append(errs, errors.New("api: Config.Hub is required"))
	}
	if c.PrivatePrefix != "" && announce.ValidateChannel(c.PrivatePrefix+"x") != nil { // a prefix some valid name can have
		errs = append(errs, fmt.Errorf("api: private prefix %q: must be [A-Za-z0-9_.:-], at most %d characters", c.PrivatePrefix, announce.MaxChannelName-1))
	}
	if c.Limits.PublishRate < 0 || c.Limits.PublishBurst < 0 {
		errs = append(errs, errors.New("api: Limits.PublishRate and Limits.PublishBurst must be 0 (no limit) or more"))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with its zero fields filled.
func (c Config) withDefaults() Config {
	setDefault(&c.PollTimeout, DefaultPollTimeout)
	setDefault(&c.Heartbeat, DefaultHeartbeat)
	setDefault(&c.PingInterval, DefaultPingInterval)
	setDefault(&c.PongTimeout, DefaultPongTimeout)
	setDefault(&c.BodyTimeout, DefaultBodyTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	if c.PrivatePrefix == "" {
		c.PrivatePrefix = DefaultPrivatePrefix
	}
	if c.CORSOrigins == nil {
		c.CORSOrigins = []string{"*"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	return c
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}
