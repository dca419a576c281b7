package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fanout opens the observers, publishes the messages at the rate, waits for
// the deliveries (or the drain timeout) and reports.
func (b *benchRun) fanout(ctx context.Context) (benchReport, error) {
	cfg := b.cfg
	base, err := b.currentID(ctx)
	if err != nil {
		return nil, err
	}
	rep := &fanoutReport{benchCommon: b.common("fanout"), Messages: cfg.messages, Rate: cfg.rate}
	before, _ := b.serverMetrics(ctx)

	took := b.openObservers(ctx, base, cfg.messages)
	defer b.closeObservers()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	rep.connected(b, took)
	afterConnect, _ := b.serverMetrics(ctx)
	rep.memory(before, afterConnect, b.transport)
	if rep.Connected == 0 {
		return nil, fmt.Errorf("no observer could connect: %v", b.firstError())
	}
	if _, err := b.awaitObservers(ctx); err != nil {
		return nil, err
	}
	if cfg.observeOnly {
		return b.observeMessages(ctx, rep, base, before)
	}

	// Publish at the rate, each message carrying its send time.
	pad := ""
	if cfg.size > 0 {
		pad = `,"pad":"` + strings.Repeat("x", cfg.size) + `"`
	}
	var acked []uint64
	var publishErr error
	var sent atomic.Int64
	var mu sync.Mutex // guards acked, publishErr, rep.PublishErrors, lastAck
	var lastAck time.Time
	interval := time.Duration(float64(time.Second) / cfg.rate)
	stopProgress := b.progress("publishing", func() (int64, int64) { return sent.Load(), int64(cfg.messages) }, false)
	// Each message's publish starts at its time; up to --publishers wait for
	// their acknowledgement at once (one: each waits for the one before),
	// each on a keep-alive connection of its own (bench_publisher.go).
	pubs, err := b.newPublishers()
	if err != nil {
		return nil, err
	}
	idle := make(chan *benchPublisher, len(pubs))
	for _, p := range pubs {
		idle <- p
	}
	defer func() {
		for _, p := range pubs {
			p.close()
		}
	}()
	head := b.publishHead()
	// A refused publish (401, 403) ends the publishing at once.
	pctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	var inflight sync.WaitGroup
	cpuBefore, _ := b.serverMetrics(ctx)
	start := time.Now()
	for i := range cfg.messages {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			if !sleepCtx(pctx, d) {
				break
			}
		}
		var p *benchPublisher
		select {
		case p = <-idle:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { idle <- p }()
			content := fmt.Sprintf(`{"t":%d,"seq":%d%s}`, time.Now().UnixNano(), i, pad)
			id, err := p.publish(ctx, head, content, i)
			if refused := (*refusedError)(nil); errors.As(err, &refused) {
				refuse(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.PublishErrors++
				if publishErr == nil {
					publishErr = err
				}
				return
			}
			acked = append(acked, id)
			lastAck = time.Now()
			sent.Add(1)
		}()
	}
	inflight.Wait()
	if err := context.Cause(pctx); ctx.Err() == nil && err != nil && !errors.Is(err, context.Canceled) {
		stopProgress()
		return nil, err
	}
	slices.Sort(acked)
	published := lastAck.Sub(start)
	stopProgress()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	rep.Published = len(acked)
	if published > 0 && len(acked) > 1 {
		rep.PublishRate = float64(len(acked)-1) / published.Seconds()
	}

	// Wait for the deliveries, or the drain timeout: those of a publish that
	// failed too, since one that timed out may still be delivered (the other
	// processes of a several-process run count it), as long as --drain allows.
	rep.Expected = rep.Connected * int64(len(acked))
	awaited := rep.Connected * int64(len(acked)+rep.PublishErrors)
	stopProgress = b.progress("delivering", func() (int64, int64) { return b.delivered.Load(), rep.Expected }, false)
	deadline := time.Now().Add(cfg.drain)
	for b.delivered.Load() < awaited && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stopProgress()
	cpuAfter, _ := b.serverMetrics(context.WithoutCancel(ctx))
	b.tally(ctx, rep, acked, start, before)
	const cpu = "process_cpu_seconds_total"
	if _, ok := cpuAfter[cpu]; ok && rep.Deliveries > 0 {
		rep.ServerCPUSeconds = cpuAfter[cpu] - cpuBefore[cpu]
		rep.CPUPer1000 = rep.ServerCPUSeconds * 1000 / float64(rep.Deliveries) * 1000
	}
	if publishErr != nil && rep.FirstError == "" {
		rep.FirstError = "publish: " + publishErr.Error()
	}
	return rep, nil
}

// observeMessages is --observe-only: another bench process publishes
// --messages on the channel; from the first one's arrival (waited for up to
// --wait), wait until every observer has every message, or until --drain
// passes without a new delivery; then tally as fanout does. The run's
// messages are the ids after the channel's id read before any publish (base).
func (b *benchRun) observeMessages(ctx context.Context, rep *fanoutReport, base uint64, before map[string]float64) (benchReport, error) {
	cfg := b.cfg
	rep.ObserveOnly = true
	rep.Expected = rep.Connected * int64(cfg.messages)
	stop := b.progress("awaiting the first message", func() (int64, int64) { return 0, 1 }, false)
	deadline := time.Now().Add(cfg.wait)
	for b.delivered.Load() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	start := time.Now()
	if b.delivered.Load() == 0 && ctx.Err() == nil {
		fmt.Fprintf(b.stderr, "announce bench: no message on %s within --wait %s\n", cfg.channel, cfg.wait)
	}
	stop = b.progress("delivering", func() (int64, int64) { return b.delivered.Load(), rep.Expected }, false)
	seen, lastProgress := b.delivered.Load(), time.Now()
	for seen > 0 && seen < rep.Expected && time.Since(lastProgress) < cfg.drain && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		if d := b.delivered.Load(); d != seen {
			seen, lastProgress = d, time.Now()
		}
	}
	stop()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	ids := make([]uint64, cfg.messages)
	for i := range ids {
		ids[i] = base + 1 + uint64(i)
	}
	b.tally(ctx, rep, ids, start, before)
	return rep, nil
}

// tally closes the observers and counts what every observer saw of the
// acknowledged ids: deliveries, latency, misses, duplicates.
func (b *benchRun) tally(ctx context.Context, rep *fanoutReport, acked []uint64, start time.Time, before map[string]float64) {
	b.closeObservers()
	after, _ := b.serverMetrics(context.WithoutCancel(ctx))
	rep.SlowConsumers = after["announce_slow_consumers_total"] - before["announce_slow_consumers_total"]

	// Tally what every observer saw.
	var latency []int64
	var last int64
	for _, o := range b.observers {
		if o == nil || !o.ok {
			continue // never connected: a connect error, not a miss
		}
		latency = append(latency, o.latency...)
		last = max(last, o.lastAt)
		for _, id := range acked {
			if id <= o.base || id > o.base+uint64(len(o.counts)) {
				continue
			}
			switch c := o.counts[id-o.base-1]; {
			case c == 0:
				rep.Missed++
			case c > 1:
				rep.Duplicated += int64(c) - 1
			}
		}
		rep.Reordered += o.reordered
		rep.Foreign += o.foreign
		rep.Reconnects += o.reconnects
	}
	rep.Deliveries = int64(len(latency))
	if span := time.Duration(last - start.UnixNano()); span > 0 {
		rep.DeliveryRate = float64(rep.Deliveries) / span.Seconds()
	}
	slices.Sort(latency)
	rep.Latency = latencyReport{
		P50: ms(percentile(latency, 50)), P90: ms(percentile(latency, 90)),
		P99: ms(percentile(latency, 99)), Max: ms(percentile(latency, 100)),
	}
	rep.Errors = rep.ConnectErrors + int64(rep.PublishErrors) + rep.Reconnects
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// currentID is the channel's id before the run (nchan: 0, the bench's
// channel is fresh and its messages count by their sequence number).
func (b *benchRun) currentID(ctx context.Context) (uint64, error) {
	if b.cfg.target == targetNchan {
		return 0, nil
	}
	info, err := b.client.Info(ctx, b.cfg.channel)
	if err != nil {
		return 0, fmt.Errorf("reading channel %s: %w", b.cfg.channel, err)
	}
	return info.Current.ID, nil
}
