// The servers' /metrics as the bench reads them.

package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// serverMetrics reads the servers' /metrics into series → value
// ("process_resident_memory_bytes", `announce_observers{transport="ws"}`),
// summed over the servers.
func (b *benchRun) serverMetrics(ctx context.Context) (map[string]float64, error) {
	if b.cfg.pid > 0 || b.cfg.target == targetNchan {
		if b.cfg.pid <= 0 {
			return map[string]float64{}, nil // nchan without --pid: no memory figures
		}
		return procStats(b.cfg.pid)
	}
	if len(b.servers) == 1 {
		return readMetrics(ctx, b.http, b.base)
	}
	sum := map[string]float64{}
	for _, s := range b.servers {
		m, err := readMetrics(ctx, b.http, s.base)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.base, err)
		}
		sumMetrics(sum, m)
	}
	return sum, nil
}

// readMetrics reads one server's /metrics.
func readMetrics(ctx context.Context, hc *http.Client, base *url.URL) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format's samples (no timestamps).
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// openObservers starts n observers (on b.observers) and waits until each
