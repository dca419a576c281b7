package announce

import (
	"errors"
	"log/slog"
	"time"
)

// Defaults of Config (and of the stores' history); the serve command's
// flags take theirs from here.
const (
	DefaultHistory     = 100
	DefaultMaxMessage  = 64 << 10
	DefaultQueue       = 256
	DefaultIdleTimeout = time.Minute
)

// Config configures a Hub. Zero fields take the defaults.
type Config struct {
	Store      Store // required
	History    int   // messages kept per channel (DefaultHistory)
	MaxMessage int   // largest content in bytes (DefaultMaxMessage)
	Queue      int   // an observer's queue limit (DefaultQueue)
	// Broker, when set, is built with the hub as its sink and carries
	// messages between nodes.
	Broker func(BrokerSink) (Broker, error)
	// IdleTimeout is how long a channel without observers stays cached
	// (DefaultIdleTimeout).
	IdleTimeout time.Duration
	Logger      *slog.Logger
	// SchedulePoll is how often the scheduler looks for schedules made on
	// other nodes (DefaultSchedulePoll); MaxScheduled caps a channel's
	// schedules (DefaultMaxScheduled). Both matter only when Store is a
	// ScheduleStore (schedule.go).
	SchedulePoll time.Duration
	MaxScheduled int
	// Limits bound what clients can make the hub hold (limits.go).
	Limits Limits
}

// Validate reports the settings out of range, all of them joined; a zero
// field is valid (it takes the default). It does not look at Store, so a
// command can check its flags before opening one; NewHub calls it. The
// messages name the serve command's flags that set each field.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, msg string) {
		if bad {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.History < 0, "--history must be at least 1")
	check(c.MaxMessage < 0, "--max-message must be at least 1")
	check(c.Queue < 0, "--queue must be at least 1")
	check(c.IdleTimeout < 0, "the idle timeout must not be negative")
	check(c.SchedulePoll < 0, "the schedule poll interval must not be negative")
	check(c.MaxScheduled < 0, "the schedules per channel must be at least 1")
	check(c.Limits.MaxCachedChannels < 0, "--max-cached-channels must be at least 1")
	check(c.Limits.ChannelTTL < 0, "--channel-ttl must not be negative")
	return errors.Join(errs...)
}

// withDefaults fills the zero fields of c.
func (c Config) withDefaults() Config {
	c.History = positive(c.History, DefaultHistory)
	c.MaxMessage = positive(c.MaxMessage, DefaultMaxMessage)
	c.Queue = positive(c.Queue, DefaultQueue)
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.SchedulePoll <= 0 {
		c.SchedulePoll = DefaultSchedulePoll
	}
	c.MaxScheduled = positive(c.MaxScheduled, DefaultMaxScheduled)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Limits = c.Limits.withDefaults()
	return c
}

func positive(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
