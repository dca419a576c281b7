package serve

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TLSConfig turns on HTTPS: the certificate chain and key, PEM files.
type TLSConfig struct {
	CertFile string
	KeyFile  string
	// Recheck is how often the files are looked at for a change; zero: every second.
	Recheck time.Duration
}

// ExpiryWarning is how close to its end a certificate is logged as expiring.
const ExpiryWarning = 7 * 24 * time.Hour

// certReloader serves the current certificate to every handshake
// (tls.Config.GetCertificate) and swaps it when the files change or on
// SIGHUP. Connections already open keep their session; new handshakes get
// the new certificate, so nothing is dropped. A failed reload is logged
// and the certificate in use stays.
type certReloader struct {
	cfg TLSConfig
	log *slog.Logger

	mu       sync.Mutex // guards the fields below
	cert     *tls.Certificate
	notAfter time.Time
	stamp    fileStamp // of the files cert was read from
	warned   bool      // the expiry warning for cert was logged

	stop chan struct{}
	done chan struct{}
}

// fileStamp is what changes when a file is rewritten or replaced.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// newCertReloader loads the files once: a missing or bad file is an error.
func newCertReloader(cfg TLSConfig, log *slog.Logger) (*certReloader, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together: give both files")
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = DefaultTLSRecheck
	}
	r := &certReloader{cfg: cfg, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload reads the files and, when they hold a valid pair, serves it.
func (r *certReloader) reload() error {
	stamp, _ := r.statFiles()
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s with key %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("TLS certificate %s: %w", r.cfg.CertFile, err)
	}
	cert.Leaf = leaf
	r.mu.Lock()
	r.cert, r.notAfter, r.stamp, r.warned = &cert, leaf.NotAfter, stamp, false
	r.mu.Unlock()
	r.log.Info("TLS certificate loaded", "file", r.cfg.CertFile, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC())
	r.checkExpiry()
	return nil
}

func (r *certReloader) statFiles() (fileStamp, error) {
	c, err := os.Stat(r.cfg.CertFile)
	if err != nil {
		return fileStamp{}, err
	}
	k, err := os.Stat(r.cfg.KeyFile)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

// getCertificate is the tls.Config's GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, nil
}

// expiresIn is how long the served certificate has left.
func (r *certReloader) expiresIn() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Until(r.notAfter)
}

// checkExpiry logs, once per certificate, that it expires within ExpiryWarning.
func (r *certReloader) checkExpiry() {
	r.mu.Lock()
	left, warn := time.Until(r.notAfter), !r.warned && time.Until(r.notAfter) < ExpiryWarning
	if warn {
		r.warned = true
	}
	r.mu.Unlock()
	if warn {
		r.log.Warn("TLS certificate expires soon: renew it (the server reloads it when the files change, or on SIGHUP)",
			"file", r.cfg.CertFile, "expires_in", left.Round(time.Second).String())
	}
}

// start reloads on SIGHUP and when the files change, until close.
func (r *certReloader) start() {
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer close(r.done)
		defer signal.Stop(hup)
		tick := time.NewTicker(r.cfg.Recheck)
		defer tick.Stop()
		for {
			select {
			case <-hup:
				r.tryReload("SIGHUP")
			case <-tick.C:
				r.mu.Lock()
				old := r.stamp
				r.mu.Unlock()
				if now, err := r.statFiles(); err == nil && now != old {
					r.tryReload("files changed")
				}
				r.checkExpiry()
			case <-r.stop:
				return
			}
		}
	}()
}

func (r *certReloader) tryReload(why string) {
	if err := r.reload(); err != nil {
		// Often the moment between writing the certificate and the key:
		// the next change of the files tries again.
		r.log.Warn("TLS certificate not reloaded; the current one stays", "why", why, "err", err)
		r.mu.Lock()
		r.stamp, _ = r.statFiles()
		r.mu.Unlock()
	}
}

// close stops watching.
func (r *certReloader) close() {
	if r.stop != nil {
		close(r.stop)
		<-r.done
		r.stop = nil
	}
}

// tlsConfig serves TLS 1.2 or later with ALPN offering h2 when http2.
func (r *certReloader) tlsConfig(http2 bool) *tls.Config {
	protos := []string{"http/1.1"}
	if http2 {
		protos = []string{"h2", "http/1.1"}
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate, NextProtos: protos}
}

// collectors are the certificate's /metrics series.
func (r *certReloader) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "announce_tls_cert_expiry_seconds",
			Help: "Seconds until the served TLS certificate expires (negative: expired).",
		}, func() float64 { return r.expiresIn().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "announce_tls_cert_expiring",
			Help: "1 when the served TLS certificate expires within 7 days, else 0.",
		}, func() float64 {
			if r.expiresIn() < ExpiryWarning {
				return 1
			}
			return 0
		}),
	}
}
