package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/announce/announce/client"
)

// benchReport is a scenario's result: a table for people, a JSON line for machines.
type benchReport interface {
	printTable(w io.Writer)
	// failed reports a result that should fail the command (lost or duplicated messages...).
	failed() bool
}

// benchCommon is what both scenarios report.
type benchCommon struct {
	Scenario       string  `json:"scenario"`
	Transport      string  `json:"transport"`
	Server         string  `json:"server"`
	Channel        string  `json:"channel"`
	Observers      int     `json:"observers"`
	Connected      int64   `json:"connected"`
	ConnectErrors  int64   `json:"connect_errors"`
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectRate    float64 `json:"connects_per_second"`
	Reconnects     int64   `json:"reconnects"`
	Errors         int64   `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`

	// From the server's /metrics, before and after the observers connected:
	// the resident set (what the machine pays, but memory the Go runtime
	// keeps from earlier load hides new use), and the Go heap and stacks in
	// use (what the observers hold, garbage not yet collected included).
	ServerRSSBefore       float64 `json:"server_rss_before_bytes"`
	ServerRSSAfter        float64 `json:"server_rss_after_bytes"`
	BytesPerObserver      float64 `json:"server_bytes_per_observer"`
	ServerGoBefore        float64 `json:"server_go_inuse_before_bytes"`
	ServerGoAfter         float64 `json:"server_go_inuse_after_bytes"`
	GoBytesPerObserver    float64 `json:"server_go_bytes_per_observer"`
	GoroutinesPerObserver float64 `json:"server_goroutines_per_observer"`
	ServerObservers       float64 `json:"server_observers"`
}

func (b *benchRun) common(scenario string) benchCommon {
	return benchCommon{Scenario: scenario, Transport: string(b.transport), Server: b.serversText(),
		Channel: b.cfg.channel, Observers: b.cfg.n}
}

func (c *benchCommon) connected(b *benchRun, took time.Duration) {
	c.Connected, c.ConnectErrors = b.connected.Load(), b.failed.Load()
	c.ConnectSeconds = took.Seconds()
	if took > 0 {
		c.ConnectRate = float64(c.Connected) / took.Seconds()
	}
	if err := b.firstError(); err != nil {
		c.FirstError = err.Error()
	}
}

// memory fills the server's cost per observer from /metrics before and after.
func (c *benchCommon) memory(before, after map[string]float64, t client.Transport) {
	const rss, goroutines = "process_resident_memory_bytes", "go_goroutines"
	inuse := func(m map[string]float64) float64 {
		return m["go_memstats_heap_inuse_bytes"] + m["go_memstats_stack_inuse_bytes"]
	}
	c.ServerRSSBefore, c.ServerRSSAfter = before[rss], after[rss]
	c.ServerGoBefore, c.ServerGoAfter = inuse(before), inuse(after)
	c.ServerObservers = after[`announce_observers{transport="`+string(t)+`"}`]
	if c.Connected > 0 && before != nil && after != nil {
		c.BytesPerObserver = (after[rss] - before[rss]) / float64(c.Connected)
		c.GoBytesPerObserver = (inuse(after) - inuse(before)) / float64(c.Connected)
		c.GoroutinesPerObserver = (after[goroutines] - before[goroutines]) / float64(c.Connected)
	}
}

func (b *benchRun) firstError() error {
	for _, o := range b.observers {
		if o != nil && o.err != nil && !o.ok {
			return o.err
		}
	}
	return nil
}

func (c *benchCommon) rows(w io.Writer) {
	fmt.Fprintf(w, "  transport\t%s\n", c.Transport)
	fmt.Fprintf(w, "  server, channel\t%s, %s\n", c.Server, c.Channel)
	fmt.Fprintf(w, "  observers\t%d connected of %d, %d failed\n", c.Connected, c.Observers, c.ConnectErrors)
	fmt.Fprintf(w, "  connect\t%.2fs, %.0f connections/s\n", c.ConnectSeconds, c.ConnectRate)
	if c.ServerRSSAfter > 0 {
		fmt.Fprintf(w, "  server memory (RSS)\t%s before, %s after: %s\n",
			bytesText(c.ServerRSSBefore), bytesText(c.ServerRSSAfter), perObserverText(c.BytesPerObserver))
		fmt.Fprintf(w, "  server Go heap+stacks\t%s before, %s after: %s\n",
			bytesText(c.ServerGoBefore), bytesText(c.ServerGoAfter), perObserverText(c.GoBytesPerObserver))
		fmt.Fprintf(w, "  server goroutines\t%.2f per observer; the server counts %.0f %s observers\n",
			c.GoroutinesPerObserver, c.ServerObservers, c.Transport)
	}
}

func (c *benchCommon) tail(w io.Writer) {
	fmt.Fprintf(w, "  reconnects, errors\t%d, %d\n", c.Reconnects, c.Errors)
	if c.FirstError != "" {
		fmt.Fprintf(w, "  first error\t%s\n", c.FirstError)
	}
}

// perObserverText is a memory cost per observer; a negative one is a server
// that gave back more than the observers took meanwhile.
func perObserverText(b float64) string {
	if b < 0 {
		return "below the noise per observer (run more observers for a figure)"
	}
	return bytesText(b) + " per observer"
}

func bytesText(b float64) string {
	neg := ""
	if b < 0 {
		neg, b = "-", -b
	}
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%s%.2f GiB", neg, b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%s%.1f KiB", neg, b/(1<<10))
	}
	return fmt.Sprintf("%s%.0f B", neg, b)
}

type latencyReport struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// fanoutReport is the result of `announce bench fanout`.
type fanoutReport struct {
	benchCommon
	ObserveOnly   bool          `json:"observe_only,omitempty"` // another process published
	Messages      int           `json:"messages"`
	Rate          float64       `json:"rate"`
	Published     int           `json:"published"`
	PublishErrors int           `json:"publish_errors"`
	PublishRate   float64       `json:"publishes_per_second"`
	Expected      int64         `json:"expected_deliveries"`
	Deliveries    int64         `json:"deliveries"`
	DeliveryRate  float64       `json:"deliveries_per_second"`
	Latency       latencyReport `json:"latency_ms"`
	Missed        int64         `json:"missed"`
	Duplicated    int64         `json:"duplicated"`
	Reordered     int64         `json:"reordered"`
	Foreign       int64         `json:"foreign"`
	SlowConsumers float64       `json:"server_slow_consumers"`
	// Server CPU (user+system) from the first publish to the last delivery,
	// and per 1000 deliveries in ms (from process_cpu_seconds_total or /proc).
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	CPUPer1000       float64 `json:"server_cpu_ms_per_1000_deliveries"`
}

func (r *fanoutReport) printTable(out io.Writer) {
	fmt.Fprintln(out, "announce bench fanout")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	r.rows(w)
	if r.ObserveOnly {
		fmt.Fprintf(w, "  published\tby another process: %d messages expected\n", r.Messages)
	} else {
		fmt.Fprintf(w, "  published\t%d of %d at %.1f/s (asked %.1f/s), %d errors\n", r.Published, r.Messages, r.PublishRate, r.Rate, r.PublishErrors)
	}
	fmt.Fprintf(w, "  deliveries\t%d of %d expected, %.0f/s\n", r.Deliveries, r.Expected, r.DeliveryRate)
	fmt.Fprintf(w, "  latency\tp50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	fmt.Fprintf(w, "  missed, duplicated\t%d, %d\n", r.Missed, r.Duplicated)
	fmt.Fprintf(w, "  reordered, foreign\t%d, %d\n", r.Reordered, r.Foreign)
	fmt.Fprintf(w, "  slow consumers cut\t%.0f (server)\n", r.SlowConsumers)
	if r.ServerCPUSeconds > 0 {
		fmt.Fprintf(w, "  server CPU\t%.2fs, %.2f ms per 1000 deliveries\n", r.ServerCPUSeconds, r.CPUPer1000)
	}
	r.tail(w)
	w.Flush()
}

func (r *fanoutReport) failed() bool {
	return r.Missed > 0 || r.Duplicated > 0 || r.Reordered > 0 || r.ConnectErrors > 0 || r.PublishErrors > 0
}

// idleReport is the result of `announce bench idle`.
type idleReport struct {
	benchCommon
	HoldSeconds float64 `json:"hold_seconds"`
}

func (r *idleReport) printTable(out io.Writer) {
	fmt.Fprintln(out, "announce bench idle")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	r.rows(w)
	fmt.Fprintf(w, "  held\t%.0fs\n", r.HoldSeconds)
	r.tail(w)
	w.Flush()
}

func (r *idleReport) failed() bool { return r.ConnectErrors > 0 }

// jsonLine encodes a report as one line.
func jsonLine(r benchReport) []byte {
	b, _ := json.Marshal(r)
	return b
}
