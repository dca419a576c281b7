package serve

import (
	"crypto/tls"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// How a node speaks HTTP:
//   - plain: HTTP/1.1 (plus cleartext HTTP/2 with H2C, for a proxy in front);
//   - TLS: HTTP/2 and HTTP/1.1 by ALPN. WebSocket upgrades stay on HTTP/1.1
//     connections, which a browser opens for them.
//
// HTTP/1.1 streams and long-polls are taken over from net/http (hijacked)
// in either case; over TLS their connection has no descriptor to watch, so
// each holds one goroutine in a read (internal/conn's blocking watch).
// HTTP/2 streams cannot be hijacked: their handler goroutine serves them.

// loadTLS reads the certificate when TLS is configured and adds its series to reg.
func (n *Node) loadTLS(reg *prometheus.Registry) error {
	if n.cfg.TLS.CertFile == "" && n.cfg.TLS.KeyFile == "" {
		return nil
	}
	certs, err := newCertReloader(n.cfg.TLS, n.cfg.Logger)
	if err != nil {
		return err
	}
	for _, c := range certs.collectors() {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	n.certs = certs
	return nil
}

// secure wraps ln in TLS when configured, and starts watching the files.
func (n *Node) secure(ln net.Listener) net.Listener {
	if n.certs == nil {
		return ln
	}
	n.certs.start()
	setRefusalTLS(ln, n.certs.tlsConfig(false)) // a refusal answers HTTP/1.1
	return tls.NewListener(ln, n.certs.tlsConfig(true))
}

// configureHTTP sets the protocols srv speaks.
func (n *Node) configureHTTP(srv *http.Server) {
	var p http.Protocols
	p.SetHTTP1(true)
	switch {
	case n.certs != nil:
		p.SetHTTP2(true)
		// Listing h2 in the server's own config is what makes Serve (which
		// gets connections already wrapped by secure) set HTTP/2 up.
		srv.TLSConfig = n.certs.tlsConfig(true)
	case n.cfg.H2C:
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &p
}

func (n *Node) scheme() string {
	if n.certs != nil {
		return "https"
	}
	return "http"
}

func (n *Node) stopTLS() {
	if n.certs != nil {
		n.certs.close()
	}
}
