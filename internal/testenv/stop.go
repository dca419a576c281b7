package testenv

import (
	"context"
	"time"
)

// Stop calls a Shutdown(ctx) method with a context ending after timeout,
// for a deferred stop or a cleanup (where the test's own context is
// already done).
func Stop(timeout time.Duration, shutdown func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return shutdown(ctx)
}
