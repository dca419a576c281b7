package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// announce bench over https and wss, trusting a private CA with --ca, or
// nothing with --insecure.
func TestBenchOverTLS(t *testing.T) {
	ca := testenv.NewTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, 1, 24*time.Hour).Write(t, dir)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	node := startTestNode(t, serve.Config{TLS: serve.TLSConfig{CertFile: certFile, KeyFile: keyFile}})
	for _, tr := range []string{"ws", "sse", "poll"} {
		rep := runBench(t, "fanout", "--server", node.URL(), "--ca", caFile, "--transport", tr, "-n", "10", "--messages", "5", "--rate", "50")
		if rep["deliveries"] != 50.0 || rep["missed"] != 0.0 {
			t.Errorf("fanout over TLS (%s): %v", tr, rep)
		}
	}
	rep := runBench(t, "idle", "--server", node.URL(), "--insecure", "--transport", "sse", "-n", "10", "--hold", "100ms")
	if rep["connected"] != 10.0 || rep["server_observers"] != 10.0 {
		t.Errorf("idle over TLS with --insecure: %v", rep)
	}
	// Without either, the test CA is not trusted.
	if _, err := benchJSON("idle", "--server", node.URL(), "--transport", "sse", "-n", "2", "--hold", "10ms"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a certificate of an unknown CA was accepted: %v", err)
	}
	if _, err := benchJSON("idle", "--server", node.URL(), "--ca", certFile+".missing", "-n", "1"); err == nil || !strings.Contains(err.Error(), "--ca") {
		t.Errorf("a missing --ca file: %v", err)
	}
}
