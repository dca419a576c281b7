package serve_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// Past --max-conns-per-ip, a connection is answered 429 JSON with
// Retry-After before any request is read: a WebSocket gets no upgrade.
// Closing one frees its place.
func TestMaxConnsPerIPRefusesWith429BeforeTheUpgrade(t *testing.T) {
	t.Parallel()
	n := start(t, serve.Config{Memory: true, Limits: serve.LimitsConfig{MaxConnsPerIP: 3}})
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		held = append(held, c)
	}
	// Each held connection is served: a request on it answers 200.
	for _, c := range held {
		resp := rawGet(t, c, "/healthz", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("held connection: %d", resp.StatusCode)
		}
	}
	c, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := rawGet(t, c, "/channels/x/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"error"`) {
		t.Fatalf("4th connection: %d Retry-After %q %s, want 429 JSON with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	held[0].Close()
	testenv.WaitFor(t, 30*time.Second, "a freed place", func() bool {
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get(n.URL() + "/channels/x")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, c := range held {
		c.Close()
	}
	// Places free as the server sees the closes: ask until one is free.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var metrics string
	testenv.WaitFor(t, 30*time.Second, "the refusal counted in /metrics", func() bool {
		resp, err := client.Get(n.URL() + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		metrics = grepLines(b, `announce_limited_total{limit="conns_per_ip"}`)
		return resp.StatusCode == http.StatusOK && metrics != "" && !strings.HasSuffix(metrics, " 0")
	})
}

// rawGet sends one GET on c and reads its answer.
func rawGet(t *testing.T, c net.Conn, path, headers string) *http.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+headers+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// With TLS, a connection past --max-conns-per-ip (and one past --max-conns
// under it) is still answered over TLS.
func TestTLSMaxConnsPerIPAnswersOverTLS(t *testing.T) {
	t.Parallel()
	ca := testenv.NewTestCA(t)
	n, _, _ := tlsNode(t, ca, ca.Issue(t, 1, 24*time.Hour), serve.Config{MaxConns: 100, Limits: serve.LimitsConfig{MaxConnsPerIP: 1}})
	held, err := tls.Dial("tcp", n.Addr(), ca.ClientConfig("http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if resp := rawGet(t, held, "/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("held connection: %d", resp.StatusCode)
	}
	resp, err := tlsClient(ca, false).Get(n.URL() + "/channels/x")
	if err != nil {
		t.Fatalf("the connection past --max-conns-per-ip: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "max-conns-per-ip") {
		t.Fatalf("past --max-conns-per-ip over TLS: %d %s, want 429 JSON", resp.StatusCode, body)
	}
}
