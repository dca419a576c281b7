package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/announce/announce/api"
)

// A slow rate (one token per ~3 hours) so that no bucket refills during the test.
const testRate = 0.0001

func postFrom(t *testing.T, ts *testServer, channel string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/channels/"+channel+"/messages", strings.NewReader(`{"content":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Each client has its own bucket: past its burst it gets 429 JSON with
// Retry-After; forwarding headers from an untrusted peer change nothing.
func TestPublishRateLimitPerClient(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *api.Config) {
		c.Limits = api.ClientLimits{PublishRate: testRate, PublishBurst: 2}
	})
	for range 2 {
		if resp, b := postFrom(t, ts, "rl"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("within the burst: %d %s", resp.StatusCode, b)
		}
	}
	resp, b := postFrom(t, ts, "rl", "X-Forwarded-For", "10.9.9.9")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(b, `"error"`) {
		t.Fatalf("past the burst: %d Retry-After %q %s, want 429 JSON with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	// The WebSocket publishes of the same client share its bucket.
	w := dialRawWS(t, ts, "/channels/rl/ws")
	w.send(t, frame(true, 0x1, []byte(`{"type":"publish","content":"ws"}`), true))
	if m := w.expectEvent(t, "error"); !strings.Contains(fmt.Sprint(m), "rate limit") {
		t.Fatalf("ws publish past the rate: %v", m)
	}
	if c := currentID(t, ts, "rl"); c != 2 {
		t.Fatalf("current id %d, want 2: a limited publish was stored", c)
	}
	metrics := getBody(t, ts.URL+"/metrics")
	if !strings.Contains(metrics, `announce_limited_total{limit="publish_rate"} 2`) {
		t.Fatalf("metrics:\n%s", metrics)
	}
}

// Behind a trusted proxy the client is the address it forwards, so two
// clients behind one proxy have two buckets.
func TestPublishRateLimitTrustsOnlyConfiguredProxies(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *api.Config) {
		c.Limits = api.ClientLimits{PublishRate: testRate, PublishBurst: 1,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	})
	for _, client := range []string{"10.0.0.1", "10.0.0.2"} {
		if resp, b := postFrom(t, ts, "px", "X-Forwarded-For", "6.6.6.6, "+client); resp.StatusCode != http.StatusCreated {
			t.Fatalf("first publish of %s: %d %s", client, resp.StatusCode, b)
		}
	}
	if resp, _ := postFrom(t, ts, "px", "Forwarded", `for="10.0.0.1:5555"`); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second publish of 10.0.0.1 (Forwarded): %d, want 429", resp.StatusCode)
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, resp.Body)
	return b.String()
}
