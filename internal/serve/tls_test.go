package serve_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// tlsNode starts a node serving cert, and returns it with its files.
func tlsNode(t *testing.T, ca *testenv.TestCA, cert *testenv.TestCert, cfg serve.Config) (*serve.Node, string, string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := cert.Write(t, dir)
	cfg.Memory = true
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
	if cfg.TLS.Recheck == 0 {
		cfg.TLS.Recheck = 50 * time.Millisecond
	}
	n := start(t, cfg)
	if !strings.HasPrefix(n.URL(), "https://") {
		t.Fatalf("URL %s of a TLS node", n.URL())
	}
	return n, certFile, keyFile
}

// tlsClient speaks the given protocols (ALPN) to a node of ca.
func tlsClient(ca *testenv.TestCA, h2 bool) *http.Client {
	tc := ca.ClientConfig("http/1.1")
	if h2 {
		tc = ca.ClientConfig("h2")
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2}
	var p http.Protocols
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	tr.Protocols = &p
	return &http.Client{Transport: tr}
}

// servedSerial is the serial number of the certificate a new handshake gets.
func servedSerial(t *testing.T, addr string, ca *testenv.TestCA) int64 {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, ca.ClientConfig())
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestTLSServesHTTP2AndHTTP11(t *testing.T) {
	ca := testenv.NewTestCA(t)
	n, _, _ := tlsNode(t, ca, ca.Issue(t, 1, 24*time.Hour), serve.Config{})

	for _, h2 := range []bool{true, false} {
		resp, err := tlsClient(ca, h2).Get(n.URL() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		wantProto, wantALPN := "HTTP/1.1", "http/1.1"
		if h2 {
			wantProto, wantALPN = "HTTP/2.0", "h2"
		}
		if resp.StatusCode != http.StatusOK || resp.Proto != wantProto || resp.TLS.NegotiatedProtocol != wantALPN || resp.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("GET /healthz: %d over %s, ALPN %q, TLS %x; want 200 over %s (ALPN %s), TLS 1.2+",
				resp.StatusCode, resp.Proto, resp.TLS.NegotiatedProtocol, resp.TLS.Version, wantProto, wantALPN)
		}
	}
	old := ca.ClientConfig()
	old.MaxVersion = tls.VersionTLS11
	if c, err := tls.Dial("tcp", n.Addr(), old); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	// Plain HTTP on the TLS port is not served.
	resp, err := http.Get("http://" + n.Addr() + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
}

// Over TLS, HTTP/1.1 streams and long-polls are still taken over from
// net/http; their connections have no descriptor to watch, so they take
// the blocking watch, and an answered poll's connection is handed back
// for the next request.
func TestTLSHTTP11StreamsAndKeepAlivePolls(t *testing.T) {
	ca := testenv.NewTestCA(t)
	n, _, _ := tlsNode(t, ca, ca.Issue(t, 1, 24*time.Hour), serve.Config{PollTimeout: 30 * time.Second})
	hc := tlsClient(ca, false)
	m := publishWith(t, hc, n.URL(), "t11", "one")

	c, err := tls.Dial("tcp", n.Addr(), ca.ClientConfig("http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 3 { // three polls on one connection: each answer hands it back
		if _, err := fmt.Fprintf(c, "GET /channels/t11/status?since=%d HTTP/1.1\r\nHost: x\r\n\r\n", m.ID); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, "the waiting poll", func() bool { return n.Hub().Stats().Observers(announce.Poll) == 1 })
		m = publishWith(t, hc, n.URL(), "t11", fmt.Sprintf("poll %d", i))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf("poll %d", i)) || resp.Close {
			t.Fatalf("poll %d answered %d %s (close %v)", i, resp.StatusCode, body, resp.Close)
		}
	}

	sub := subscribe(t, hc, n.URL(), "t11", client.SSE)
	testenv.WaitFor(t, 10*time.Second, "the SSE observer", func() bool { return n.Hub().Stats().Observers(announce.SSE) == 1 })
	publishWith(t, hc, n.URL(), "t11", "streamed")
	expectMessage(t, sub, "streamed")
}

func TestTLSWebSocketWithGobwas(t *testing.T) {
	ca := testenv.NewTestCA(t)
	n, _, _ := tlsNode(t, ca, ca.Issue(t, 1, 24*time.Hour), serve.Config{})
	hc := tlsClient(ca, true)
	publishWith(t, hc, n.URL(), "wss", "before")
	w := testenv.DialWSS(t, "wss://"+n.Addr()+"/channels/wss/ws", ca.ClientConfig())
	if tc, ok := w.Conn.(*tls.Conn); !ok || tc.ConnectionState().NegotiatedProtocol == "h2" {
		t.Fatalf("the WebSocket connection is %T, want TLS over HTTP/1.1", w.Conn)
	}
	w.Expect("before")
	testenv.WaitFor(t, 10*time.Second, "the WebSocket observer", func() bool { return n.Hub().Stats().Observers(announce.WebSocket) == 1 })
	publishWith(t, hc, n.URL(), "wss", "after")
	w.Expect("after")
}

// A certificate replaced on disk, and one swapped in by SIGHUP, serve new
// handshakes while the streams opened before go on.
func TestTLSCertificateReloadKeepsStreams(t *testing.T) {
	ca := testenv.NewTestCA(t)
	n, certFile, _ := tlsNode(t, ca, ca.Issue(t, 1, 24*time.Hour), serve.Config{})
	dir := filepath.Dir(certFile)
	h2, h1 := tlsClient(ca, true), tlsClient(ca, false)
	subH2 := subscribe(t, h2, n.URL(), "rl", client.SSE)
	subWS := subscribe(t, h1, n.URL(), "rl", client.WebSocket)
	testenv.WaitFor(t, 10*time.Second, "both observers", func() bool {
		st := n.Hub().Stats()
		return st.Observers(announce.SSE) == 1 && st.Observers(announce.WebSocket) == 1
	})

	ca.Issue(t, 2, 24*time.Hour).Write(t, dir)
	testenv.WaitFor(t, 10*time.Second, "the replaced certificate", func() bool { return servedSerial(t, n.Addr(), ca) == 2 })
	publishWith(t, h2, n.URL(), "rl", "after the file changed")
	expectMessage(t, subH2, "after the file changed")
	expectMessage(t, subWS, "after the file changed")

	// SIGHUP: the file watch is slow here, so only the signal can explain a swap.
	n2, certFile2, _ := tlsNode(t, ca, ca.Issue(t, 10, 24*time.Hour), serve.Config{TLS: serve.TLSConfig{Recheck: time.Hour}})
	ca.Issue(t, 11, 24*time.Hour).Write(t, filepath.Dir(certFile2))
	if got := servedSerial(t, n2.Addr(), ca); got != 10 {
		t.Fatalf("serial %d served before SIGHUP, want 10", got)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the certificate swapped by SIGHUP", func() bool { return servedSerial(t, n2.Addr(), ca) == 11 })
	if st := n.Hub().Stats(); st.Observers(announce.SSE) != 1 || st.Observers(announce.WebSocket) != 1 {
		t.Fatal("a stream was dropped by a reload")
	}
}

// Past --max-conns a TLS client gets the 503 JSON answer over TLS, and a
// node with an HTTP/2 stream open stops cleanly.
func TestTLSMaxConnsAndShutdown(t *testing.T) {
	ca := testenv.NewTestCA(t)
	n, _, _ := tlsNode(t, ca, ca.Issue(t, 1, 24*time.Hour), serve.Config{MaxConns: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/channels/full/events", nil)
	stream, err := tlsClient(ca, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.ProtoMajor != 2 {
		t.Fatalf("stream over %s", stream.Proto)
	}
	resp, err := tlsClient(ca, false).Get(n.URL() + "/channels/full")
	if err != nil {
		t.Fatalf("the connection past --max-conns: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "max-conns") {
		t.Fatalf("past --max-conns: %d %s, want 503 JSON", resp.StatusCode, body)
	}
	ended := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stream.Body); close(ended) }()
	if err := testenv.Stop(5*time.Second, n.Shutdown); err != nil {
		t.Fatalf("Shutdown with an HTTP/2 stream open: %v", err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the HTTP/2 stream did not end at shutdown")
	}
}

func TestTLSBadFilesFailStart(t *testing.T) {
	ca := testenv.NewTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, 1, time.Hour).Write(t, dir)
	other := t.TempDir()
	_, otherKey := ca.Issue(t, 2, time.Hour).Write(t, other)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, cert, key, want string }{
		{"missing cert", filepath.Join(dir, "nope.pem"), keyFile, "nope.pem"},
		{"missing key", certFile, filepath.Join(dir, "nokey.pem"), "nokey.pem"},
		{"garbage cert", garbage, keyFile, "garbage.pem"},
		{"key of another certificate", certFile, otherKey, "private key does not match"},
		{"key without cert", "", keyFile, "go together"},
	} {
		n, err := serve.Start(serve.Config{Listen: "127.0.0.1:0", Memory: true, TLS: serve.TLSConfig{CertFile: c.cert, KeyFile: c.key}})
		if err == nil {
			testenv.Stop(5*time.Second, n.Shutdown)
			t.Errorf("%s: started", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
}

// The real binary: ANNOUNCE_TLS_CERT and ANNOUNCE_TLS_KEY are the flags,
// and a missing file stops the start with a message naming it.
func TestProcessTLSEnvAndBadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing-cert.pem")
	out, code := runAnnounce(t, []string{"ANNOUNCE_TLS_CERT=" + missing, "ANNOUNCE_TLS_KEY=" + filepath.Join(dir, "key.pem")},
		"serve", "--memory", "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(out, missing) {
		t.Fatalf("announce serve with a missing certificate: exit %d:\n%s", code, out)
	}
	out, code = runAnnounce(t, nil, "serve", "--memory", "--listen", "127.0.0.1:0", "--tls-cert", missing)
	if code != 2 || !strings.Contains(out, "--tls-key") {
		t.Fatalf("--tls-cert without --tls-key: exit %d:\n%s", code, out)
	}
}

func TestTLSExpiringCertificateWarnsAndShowsInMetrics(t *testing.T) {
	ca := testenv.NewTestCA(t)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	n, _, _ := tlsNode(t, ca, ca.Issue(t, 1, 3*24*time.Hour), serve.Config{Logger: log})
	if !strings.Contains(logs.String(), "TLS certificate expires soon") {
		t.Errorf("no expiry warning logged:\n%s", logs)
	}
	resp, err := tlsClient(ca, true).Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var left float64
	if !strings.Contains(string(body), "\nannounce_tls_cert_expiring 1\n") {
		t.Errorf("/metrics does not flag the expiring certificate:\n%s", grepLines(body, "announce_tls"))
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "announce_tls_cert_expiry_seconds "); ok {
			fmt.Sscan(v, &left)
		}
	}
	if left < 2*24*3600 || left > 3*24*3600 {
		t.Errorf("announce_tls_cert_expiry_seconds = %v, want about 3 days", left)
	}

	// A certificate with a month left: no warning, not flagged.
	logs2 := &lockedBuffer{}
	n2, _, _ := tlsNode(t, ca, ca.Issue(t, 2, 30*24*time.Hour), serve.Config{Logger: slog.New(slog.NewTextHandler(logs2, nil))})
	resp, err = tlsClient(ca, true).Get(n2.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "\nannounce_tls_cert_expiring 0\n") || strings.Contains(logs2.String(), "expires soon") {
		t.Errorf("a certificate with 30 days left is flagged:\n%s\n%s", grepLines(body, "announce_tls"), logs2)
	}
}

// --h2c: cleartext HTTP/2 by prior knowledge, HTTP/1.1 (and WebSocket) still.
func TestH2CServesCleartextHTTP2(t *testing.T) {
	n := start(t, serve.Config{Memory: true, H2C: true})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &p}}
	m := publishWith(t, h2c, n.URL(), "h2c", "first")
	resp, err := h2c.Get(n.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Fatalf("h2c answered over %s", resp.Proto)
	}
	sub := subscribe(t, h2c, n.URL(), "h2c", client.SSE)
	ws := subscribe(t, &http.Client{}, n.URL(), "h2c", client.WebSocket)
	expectMessage(t, sub, "first")
	expectMessage(t, ws, "first")
	testenv.WaitFor(t, 10*time.Second, "the observers", func() bool {
		st := n.Hub().Stats()
		return st.Observers(announce.SSE) == 1 && st.Observers(announce.WebSocket) == 1
	})
	publishWith(t, h2c, n.URL(), "h2c", "second")
	expectMessage(t, sub, "second")
	expectMessage(t, ws, "second")
	_ = m
}

// publishWith publishes over hc.
func publishWith(t *testing.T, hc *http.Client, base, channel, content string) announce.Message {
	t.Helper()
	m, err := tryPublish(hc, base, channel, content)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// subscribe opens a client subscription from now on over hc (and its TLS
// settings for WebSocket), closed at the end of the test.
func subscribe(t *testing.T, hc *http.Client, base, channel string, tr client.Transport) *client.Subscription {
	t.Helper()
	cfg := client.Config{Server: base, HTTPClient: hc}
	if t, ok := hc.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		cfg.TLSConfig = &tls.Config{RootCAs: t.TLSClientConfig.RootCAs}
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe(context.Background(), channel, client.SubscribeOptions{Transport: tr})
	t.Cleanup(func() { sub.Close() })
	return sub
}

var expectMu sync.Mutex

// expectMessage waits for a message with content on sub.
func expectMessage(t *testing.T, sub *client.Subscription, content string) {
	t.Helper()
	expectMu.Lock()
	defer expectMu.Unlock()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				t.Fatalf("subscription ended waiting for %q: %v", content, sub.Err())
			}
			if m.Content == content {
				return
			}
		case <-deadline:
			t.Fatalf("no message %q within 10s", content)
		}
	}
}

func grepLines(body []byte, prefix string) string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
