package api_test

import (
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/announce/announce/announce"
)

var scriptTag = regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`)

// TestPagesSecurityHeaders: every HTML page carries its policy, framing
// and referrer rules, and runs no inline script: each script is a file
// under /assets, or data (the demo's rendered announcement, which markup in
// it cannot end early).
func TestPagesSecurityHeaders(t *testing.T) {
	ts := newTestServer(t)
	const markup = `</script><script>alert(1)</script> & <!-- "quoted"`
	m := ts.Publish(t, "default", markup)
	for _, path := range []string{"/", "/?channel=default", "/examples/longpoll", "/examples/websocket"} {
		resp, body := ts.get(t, path)
		assertStatus(t, resp, body, http.StatusOK)
		h := resp.Header
		for k, want := range map[string]string{
			"Content-Security-Policy": "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
			"X-Content-Type-Options":  "nosniff",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s %q, want %q", path, k, got, want)
			}
		}
		scripts := scriptTag.FindAllStringSubmatch(string(body), -1)
		if len(scripts) < 2 {
			t.Fatalf("%s has %d scripts", path, len(scripts))
		}
		for _, s := range scripts {
			attrs, text := s[1], s[2]
			switch {
			case (strings.Contains(attrs, `src="/assets/`) || strings.Contains(attrs, `src="/announce.js"`)) && strings.TrimSpace(text) == "":
				src := html.UnescapeString(regexp.MustCompile(`src="([^"]+)"`).FindStringSubmatch(attrs)[1])
				if r, b := ts.get(t, src); r.StatusCode != http.StatusOK {
					t.Errorf("%s: script %s answers %d %s", path, src, r.StatusCode, b)
				}
			case strings.Contains(attrs, `type="application/json"`):
				var got announce.Message
				if err := json.Unmarshal([]byte(text), &got); err != nil || got.ID != m.ID || got.Content != markup {
					t.Errorf("%s: the JSON block %s reads %+v (%v), want message %d", path, text, got, err, m.ID)
				}
			default:
				t.Errorf("%s runs an inline script: %s", path, s[0])
			}
		}
	}
}
