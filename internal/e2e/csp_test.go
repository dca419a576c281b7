package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/announce/announce/internal/serve"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// cspMarker starts the console error the recorder writes for each
// Content-Security-Policy violation, so a test's console fails it.
const cspMarker = "CSP violation:"

// cspRecorder runs in every document before its own scripts: it keeps each
// securitypolicyviolation in window.cspViolations and writes it to the
// console. A script the protocol adds is not subject to the page's policy.
const cspRecorder = `window.cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  var v = e.effectiveDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber;
  window.cspViolations.push(v);
  console.error(` + "`" + cspMarker + " ${v}`" + `);
});`

// violatesCSP reports whether a console text tells of a policy violation:
// the recorder's, or the browser's own message.
func violatesCSP(text string) bool {
	return strings.Contains(text, cspMarker) || strings.Contains(text, "Content Security Policy")
}

// recordCSPViolations installs cspRecorder on the tab for every page it opens.
func (b *browser) recordCSPViolations() {
	b.t.Helper()
	ctx, cancel := contextFor(b)
	defer cancel()
	if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder}); err != nil {
		b.t.Fatalf("installing the CSP recorder: %v", err)
	}
}

// cspViolations returns the violations the open page has had.
func (b *browser) cspViolations() []string {
	b.t.Helper()
	return eval[[]string](b, `window.cspViolations || ["the CSP recorder did not run"]`)
}

// TestPagesUnderCSP opens both classic examples and the demo: each is
// sent with its Content-Security-Policy and framing and referrer rules,
// works, and has no violation of its policy, also with markup in the
// announcement it renders. The policy is really enforced: an inline script
// added to the page is refused.
func TestPagesUnderCSP(t *testing.T) {
	n := startNode(t, serve.Config{})
	const markup = `Before </script><script>window.injected=1</script> the pages`
	publish(t, n.URL(), "default", markup, "")
	publish(t, n.URL(), "csp", markup, "")
	b := newBrowser(t)
	check := func(path string) {
		t.Helper()
		resp, err := http.Get(n.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: X-Frame-Options %q, Referrer-Policy %q", path, h.Get("X-Frame-Options"), h.Get("Referrer-Policy"))
		}
		if v := b.cspViolations(); len(v) != 0 {
			t.Errorf("%s violates its policy: %q", path, v)
		}
		if eval[bool](b, `window.injected === 1`) {
			t.Errorf("%s ran a script from an announcement", path)
		}
	}

	b.open(n.URL() + "/examples/longpoll")
	b.waitJS("the long-poll example to show the rendered announcement", arriveTimeout, chatContent+jsString(markup))
	waitObservers(t, n.URL(), "default", "poll", 1)
	publish(t, n.URL(), "default", "Over the loop", "")
	b.waitJS("the long-poll example to show the message", arriveTimeout, chatContent+jsString("Over the loop"))
	check("/examples/longpoll")

	b.open(n.URL() + "/examples/websocket")
	waitObservers(t, n.URL(), "default", "ws", 1)
	publish(t, n.URL(), "default", "Over the socket", "")
	b.waitJS("the WebSocket example to show the message", arriveTimeout, chatContent+jsString("Over the socket"))
	check("/examples/websocket")

	b.open(n.URL() + "/?channel=csp")
	b.waitLive(arriveTimeout)
	for _, tr := range transports {
		if got := b.snapshot().Panels[tr].Current; got != markup {
			t.Errorf("the demo's %s panel starts from %q, want the rendered %q", tr, got, markup)
		}
	}
	id := publish(t, n.URL(), "csp", "Over every transport", "")
	b.waitArrived(id, "Over every transport")
	check("/?channel=csp")

	// An inline script is refused, and the recorder sees the refusal.
	eval[bool](b, `(() => { const s = document.createElement("script"); s.textContent = "window.inline = 1"; document.body.append(s); return true; })()`)
	b.waitJS("the refusal of an inline script", arriveTimeout, `window.cspViolations.length === 1 && window.inline === undefined`)
	b.allowConsole(cspMarker, "Content Security Policy") // the one violation made on purpose
}
