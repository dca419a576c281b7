package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
)

// benchTLSConfig is the TLS configuration for https servers: the system's
// roots, plus --ca's certificates, or no verification at all with
// --insecure (a throwaway certificate on this machine). nil when neither.
func benchTLSConfig(caFile string, insecure bool) (*tls.Config, error) {
	if caFile == "" && !insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // asked for with --insecure
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// applyTLS gives every https server tc (its ServerName kept), and returns
// the HTTP client for /readyz and /metrics.
func applyTLS(servers []benchServer, tc *tls.Config) *http.Client {
	if tc == nil {
		return http.DefaultClient
	}
	for i := range servers {
		if servers[i].tls != nil {
			name := servers[i].tls.ServerName
			servers[i].tls = tc.Clone()
			servers[i].tls.ServerName = name
		}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true}}
}
