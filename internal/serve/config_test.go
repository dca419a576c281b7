package serve_test

import (
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/internal/serve"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := serve.DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if c.Listen != ":8000" || c.History != announce.DefaultHistory || c.Presence.Grace != presence.DefaultGrace ||
		c.Limits.MaxChannels != announce.DefaultMaxChannels || c.TLS.Recheck != time.Second || len(c.CORSOrigins) != 1 {
		t.Errorf("DefaultConfig() = %+v", c)
	}
	if err := (serve.Config{}).Validate(); err == nil {
		t.Error("a zero Config validates: Validate must not read zero fields as defaults")
	}
}

// TestValidate: each invalid field fails with the message the CLI prints,
// naming its flag; limits' messages join the others'.
func TestValidate(t *testing.T) {
	for _, c := range []struct {
		change func(*serve.Config)
		want   string
	}{
		{func(c *serve.Config) { c.Listen = "8002" }, "--listen :8002"},
		{func(c *serve.Config) { c.Listen = "nowhere" }, `--listen "nowhere": want HOST:PORT`},
		{func(c *serve.Config) { c.PollTimeout = 500 * time.Millisecond }, "--poll-timeout must be at least 1s"},
		{func(c *serve.Config) { c.History = 0 }, "--history must be at least 1"},
		{func(c *serve.Config) { c.MaxMessage = 0 }, "--max-message must be at least 1"},
		{func(c *serve.Config) { c.Queue = 0 }, "--queue must be at least 1"},
		{func(c *serve.Config) { c.MaxConns = -1 }, "--max-conns must be 0 (no limit) or more"},
		{func(c *serve.Config) { c.Memory, c.Redis = true, "redis://127.0.0.1:1" }, "--memory and --redis exclude each other"},
		{func(c *serve.Config) { c.Presence.Grace = -time.Second }, "--presence-grace must not be negative"},
		{func(c *serve.Config) { c.RedisSubscribe = []string{"x"} }, "--redis-subscribe needs --redis"},
		{func(c *serve.Config) { c.TLS.CertFile = "cert.pem" }, "--tls-cert and --tls-key go together"},
		{func(c *serve.Config) { c.H2C, c.TLS.CertFile, c.TLS.KeyFile = true, "c", "k" }, "--h2c is cleartext HTTP/2"},
		{func(c *serve.Config) { c.PrivatePrefix = "bad prefix" }, "--private-prefix must be"},
		{func(c *serve.Config) { c.Limits.MaxCachedChannels = 0 }, "--max-cached-channels must be at least 1"},
		{func(c *serve.Config) { c.Limits.ChannelTTL = -time.Second }, "--channel-ttl must not be negative"},
		{func(c *serve.Config) { c.Limits.PublishRate = -1 }, "--publish-rate, --publish-burst and --max-conns-per-ip"},
		{func(c *serve.Config) { c.History, c.Limits.MaxScheduled = 0, 0 }, "--history must be at least 1\n--max-scheduled must be at least 1"},
	} {
		cfg := serve.DefaultConfig()
		c.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want %q", err, c.want)
		}
	}
}
