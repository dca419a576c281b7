// The bench's connections: loopback checks, source addresses, dialing and waiting for the servers.

package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// isLoopback reports whether host names this machine's loopback interface only.
func isLoopback(ctx context.Context, host string) (bool, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, fmt.Errorf("resolving %s: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false, nil
		}
	}
	return len(addrs) > 0, nil
}

// sourceDialers returns dialers bound to 127.0.0.1..127.0.0.count for an
// IPv4 loopback target (each source address has its own ~28K ephemeral
// ports), keeping only addresses this system lets us bind; one plain dialer otherwise.
func sourceDialers(host string, loopback bool, count int) []net.Dialer {
	base := net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
	ip := net.ParseIP(host)
	if !loopback || ip == nil || ip.To4() == nil {
		return []net.Dialer{base}
	}
	var ds []net.Dialer
	for i := 1; i <= count; i++ {
		src := net.IPv4(127, 0, 0, byte(i))
		ln, err := net.Listen("tcp", net.JoinHostPort(src.String(), "0"))
		if err != nil {
			continue // not configured here (macOS has 127.0.0.1 only)
		}
		ln.Close()
		d := base
		d.LocalAddr = &net.TCPAddr{IP: src}
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return []net.Dialer{base}
	}
	return ds
}

// dial opens observer i's connection to its server from its source address (TLS for https).
func (b *benchRun) dial(ctx context.Context, i int) (net.Conn, error) {
	return b.dialServer(ctx, b.serverFor(i), i)
}

// dialPublisher opens publisher i's connection to the first server from its source address.
func (b *benchRun) dialPublisher(ctx context.Context, i int) (net.Conn, error) {
	return b.dialServer(ctx, &b.servers[0], i)
}

// dialServer connects to srv from source address i mod the sources (TLS for https).
func (b *benchRun) dialServer(ctx context.Context, srv *benchServer, i int) (net.Conn, error) {
	d := &b.dialers[i%len(b.dialers)]
	c, err := d.DialContext(ctx, "tcp", srv.hostport)
	if err != nil || srv.tls == nil {
		return c, err
	}
	tc := tls.Client(c, srv.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// waitReady waits for every server's /readyz, up to --wait.
func (b *benchRun) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(b.cfg.wait)
	for _, s := range b.servers {
		if err := b.waitServerReady(ctx, s.base, deadline); err != nil {
			return err
		}
	}
	return nil
}

func (b *benchRun) waitServerReady(ctx context.Context, base *url.URL, deadline time.Time) error {
	ready := "/readyz"
	if b.cfg.target == targetNchan {
		ready = "/nchan_status"
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, base.String()+ready, nil)
		resp, err := b.http.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz answered %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("server %s not ready: %w", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
