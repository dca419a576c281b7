package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
)

func TestConfigValidateRefusesWhatNewRefuses(t *testing.T) {
	hub := newTestServer(t).Hub
	for name, tc := range map[string]struct {
		cfg  api.Config
		want string
	}{
		"no hub":             {api.Config{}, "Config.Hub is required"},
		"bad prefix":         {api.Config{Hub: hub, PrivatePrefix: "no/slash"}, `private prefix "no/slash"`},
		"negative rate":      {api.Config{Hub: hub, Limits: api.ClientLimits{PublishRate: -1}}, "Limits.PublishRate"},
		"two faults at once": {api.Config{PrivatePrefix: "a b"}, "Config.Hub is required\napi: private prefix"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tc.want)
			}
			if _, errNew := api.New(tc.cfg); errNew == nil || errNew.Error() != err.Error() {
				t.Fatalf("New() = %v, want Validate's error %v", errNew, err)
			}
		})
	}
	if err := (api.Config{Hub: hub}).Validate(); err != nil {
		t.Fatalf("a config of defaults: %v", err)
	}
}

// Shutdown returns ctx's error while a stream cannot end (its client reads
// nothing, so its last write waits), and nil once it did.
func TestShutdownHonoursItsContext(t *testing.T) {
	t.Parallel()
	ts := newTestServerHub(t, func(c *announce.Config) { c.Queue = 4; c.MaxMessage = 1 << 20 },
		func(c *api.Config) { c.WriteTimeout = time.Minute })
	stuck := dialRawSSE(t, ts, "/channels/stuck/events") // and never read
	waitObservers(t, ts.Hub, announce.SSE, 1)
	big := strings.Repeat("x", 256<<10)
	// The queue overflows only while the session waits on a full socket.
	testenv.WaitFor(t, 30*time.Second, "the stream's writes to block", func() bool {
		if _, err := ts.Hub.Publish(context.Background(), "stuck", big); err != nil {
			t.Fatal(err)
		}
		return ts.Hub.Stats().Observers(announce.SSE) == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ts.API.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stream still writing = %v, want context.DeadlineExceeded", err)
	}
	stuck.conn.Close() // the write fails: the stream ends
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ts.API.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown once the stream could end = %v, want nil", err)
	}
}
