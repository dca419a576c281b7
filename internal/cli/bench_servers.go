package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Several nodes: --server takes a comma-separated list of base URLs (nodes
// of one cluster sharing a Redis). Observer i connects to server i mod S
// (round-robin); publishing, the channel's id and readiness use the first;
// the servers' /metrics are summed, so memory and goroutines per observer
// are the cluster's. Several bench processes can share one run: the ones
// with --observe-only count the messages a publishing one sends to the same
// --channel, and --await-observers N holds a process until the servers count
// N observers in all (every process connected) before it publishes or holds.

// benchServer is one server: its base URL (with any path prefix) and how to reach it.
type benchServer struct {
	base     *url.URL
	hostport string
	tls      *tls.Config // https: the handshake's config; nil for http
}

// parseServers reads --server: one base URL or a comma-separated list.
func parseServers(list string) ([]benchServer, error) {
	var out []benchServer
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(strings.TrimRight(s, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--server %q: want http://host:port (several: comma-separated)", s)
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		srv := benchServer{base: u, hostport: net.JoinHostPort(u.Hostname(), port)}
		if u.Scheme == "https" {
			srv.tls = &tls.Config{ServerName: u.Hostname()}
		}
		out = append(out, srv)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--server %q: want http://host:port", list)
	}
	return out, nil
}

// serverFor is observer i's server: round-robin over --server.
func (b *benchRun) serverFor(i int) *benchServer {
	return &b.servers[i%len(b.servers)]
}

// serversText names the servers for the report.
func (b *benchRun) serversText() string {
	names := make([]string, len(b.servers))
	for i, s := range b.servers {
		names[i] = s.base.String()
	}
	return strings.Join(names, ",")
}

// sumMetrics adds series by series: the cluster's totals.
func sumMetrics(into, m map[string]float64) {
	for k, v := range m {
		into[k] += v
	}
}

// observersSeries is the /metrics series counting the servers' observers of the run's transport.
func (b *benchRun) observersSeries() string {
	return `announce_observers{transport="` + string(b.transport) + `"}`
}

// awaitObservers waits, up to --wait, until the servers count --await-observers
// observers of the run's transport in all (every bench process connected);
// it reports how many they counted. Not reaching them is not an error: the
// run goes on and the shortfall shows in the report.
func (b *benchRun) awaitObservers(ctx context.Context) (float64, error) {
	want := float64(b.cfg.awaitObservers)
	if want <= 0 {
		return 0, nil
	}
	var have float64
	stop := b.progress("all observers", func() (int64, int64) { return int64(have), int64(want) }, false)
	defer stop()
	deadline := time.Now().Add(b.cfg.wait)
	for {
		m, err := b.serverMetrics(ctx)
		if err == nil {
			have = m[b.observersSeries()]
			if have >= want {
				return have, nil
			}
		}
		if ctx.Err() != nil {
			return have, errors.New("interrupted")
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(b.stderr, "announce bench: the servers count %.0f observers after %s, not the %.0f of --await-observers: going on\n", have, b.cfg.wait, want)
			return have, nil
		}
		sleepCtx(ctx, 250*time.Millisecond)
	}
}
