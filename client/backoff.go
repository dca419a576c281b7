package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff bounds.
const (
	minBackoff        = 100 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
	handshakeTimeout  = 10 * time.Second
)

// backoff is the wait before retry number attempt (0 for the first retry):
// minBackoff doubled per attempt, capped at max, with "equal jitter" (half
// fixed, half random) so that ten thousand clients cut by one server restart
// do not all come back in the same millisecond.
func backoff(attempt int, max time.Duration) time.Duration {
	d := minBackoff
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(half+1)
}

// sleep waits for d or until ctx ends, and reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
