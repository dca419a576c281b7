package cli

import (
	"context"
	"errors"
	"fmt"
)

// idle holds N idle observers and reports the server's memory and
// goroutines per observer, from its /metrics before and after.
func (b *benchRun) idle(ctx context.Context) (benchReport, error) {
	base, err := b.currentID(ctx)
	if err != nil {
		return nil, err
	}
	before, err := b.serverMetrics(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the server's /metrics: %w", err)
	}
	rep := &idleReport{benchCommon: b.common("idle"), HoldSeconds: b.cfg.hold.Seconds()}
	took := b.openObservers(ctx, base, 0)
	defer b.closeObservers()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	rep.connected(b, took)
	if _, err := b.awaitObservers(ctx); err != nil {
		return nil, err
	}
	if !sleepCtx(ctx, b.cfg.hold) {
		return nil, errors.New("interrupted")
	}
	after, err := b.serverMetrics(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the server's /metrics: %w", err)
	}
	rep.memory(before, after, b.transport)
	for _, o := range b.observers {
		if o != nil && o.ok {
			rep.Reconnects += o.reconnects
		}
	}
	rep.Errors = rep.ConnectErrors + rep.Reconnects
	return rep, nil
}
