package e2e

import (
	"testing"

	"github.com/announce/announce/internal/serve"
	"github.com/chromedp/chromedp"
)

// TestLayoutFitsEveryWidth opens the demo from a phone's width to a
// projector's and checks that nothing is wider than the screen or than its
// panel: a panel's widest line once pushed the page sideways at 375 px and
// ran the SSE panel under the WebSocket one at 1024 px.
func TestLayoutFitsEveryWidth(t *testing.T) {
	n := startNode(t, serve.Config{})
	publish(t, n.URL(), "default", "Server maintenance at 22:00 in the main hall", "")
	b := newBrowser(t)
	for _, width := range []int64{320, 375, 768, 1024, 1100, 1280, 1920} {
		b.do(chromedp.EmulateViewport(width, 800))
		b.open(n.URL() + "/")
		b.waitLive(arriveTimeout)
		overflow := eval[string](b, `(() => {
			const out = [];
			if (document.documentElement.scrollWidth > innerWidth) out.push("page " + document.documentElement.scrollWidth);
			for (const p of document.querySelectorAll(".panel, .auto-panel")) {
				const box = p.getBoundingClientRect();
				for (const el of p.querySelectorAll("header, .now, .stats, .log")) {
					const r = el.getBoundingClientRect();
					if (r.right > box.right + 1) out.push(p.id + " " + el.className + " " + Math.round(r.right - box.right) + "px");
				}
			}
			return out.join(", ");
		})()`)
		if overflow != "" {
			t.Errorf("at %d px wide, wider than its box: %s", width, overflow)
		}
	}
}
