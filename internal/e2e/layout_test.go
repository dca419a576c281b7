package e2e

import (
	"strings"
	"testing"

	"github.com/announce/announce/internal/serve"
	"github.com/chromedp/chromedp"
)

// overflowJS lists what does not fit: the page wider than the screen, a
// part of a panel wider than its panel, any element reaching past the
// screen's right edge or scrolling sideways inside (the comparison table
// once did at 1280 px, cutting "RECONNECTS"), text cut short where the page
// has no ellipsis on purpose (a panel's title on a phone), and a
// placeholder wider than its field (the publish field at 390 px). Cut on
// purpose: announcements, which can be any length, in .now, #current and
// the log.
const overflowJS = `(() => {
	const out = [];
	const width = document.documentElement.clientWidth;
	if (document.documentElement.scrollWidth > innerWidth) out.push("page " + document.documentElement.scrollWidth);
	const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "") + (el.dataset.stat ? "[" + el.dataset.stat + "]" : "") + (el.closest("[id]") ? " in #" + el.closest("[id]").id : "");
	for (const p of document.querySelectorAll(".panel, .auto-panel")) {
		const box = p.getBoundingClientRect();
		for (const el of p.querySelectorAll(":scope > *")) {
			const r = el.getBoundingClientRect();
			if (r.right > box.right + 1) out.push(p.id + " " + name(el) + " " + Math.round(r.right - box.right) + "px");
		}
	}
	const onPurpose = ".now, .now *, #current, #current *, .log .text, .sr-only, .sr-only *";
	for (const el of document.body.querySelectorAll("*")) {
		if (el.closest("details:not([open]) > :not(summary)") || el.closest("script, noscript") || el.matches(onPurpose)) continue;
		const r = el.getBoundingClientRect();
		if (r.width === 0 && r.height === 0) continue;
		if (r.right > width + 1) out.push(name(el) + " reaches " + Math.round(r.right) + "px");
		const cs = getComputedStyle(el);
		if ((cs.overflowX !== "visible" || cs.textOverflow === "ellipsis") && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) {
			out.push(name(el) + " cuts " + (el.scrollWidth - el.clientWidth) + "px");
		}
	}
	const ctx = document.createElement("canvas").getContext("2d");
	for (const input of document.querySelectorAll("input[placeholder]")) {
		const cs = getComputedStyle(input);
		ctx.font = cs.font;
		const room = input.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
		const need = ctx.measureText(input.placeholder).width;
		if (need > room + 1) out.push("placeholder of #" + input.id + " needs " + Math.ceil(need) + "px, has " + Math.floor(room));
	}
	return out.join(", ");
})()`

// TestLayoutFitsEveryWidth opens the demo from a phone's width to a
// projector's and checks that everything fits (overflowJS), with the wire
// views and the explanations open and a long unbroken message on the
// wire: a panel's widest line once pushed the page sideways at
// 375 px and ran the SSE panel under the WebSocket one at 1024 px.
func TestLayoutFitsEveryWidth(t *testing.T) {
	n := startNode(t, serve.Config{})
	publish(t, n.URL(), "default", "Server maintenance at 22:00 in the main hall", "")
	b := newBrowser(t)
	for i, width := range []int64{320, 375, 390, 768, 1024, 1100, 1280, 1920} {
		b.do(chromedp.EmulateViewport(width, 800))
		b.open(n.URL() + "/")
		b.waitLive(arriveTimeout)
		if i == 0 {
			// A long unbroken word on every wire view from here on.
			id := publish(t, n.URL(), "default", "Unbroken:"+strings.Repeat("a", 90), "")
			b.waitArrived(id, "Unbroken:"+strings.Repeat("a", 90))
		}
		// Every explanation opened, as a tap would.
		b.do(chromedp.Evaluate[chromedp.Void](`for (const d of document.querySelectorAll("details")) d.open = true`))
		if overflow := eval[string](b, overflowJS); overflow != "" {
			t.Errorf("at %d px wide, does not fit: %s", width, overflow)
		}
	}
}

// TestDemoExplainsByTap: on a phone the counters' explanations open with a
// tap on their summary, and the wire view is open from the start.
func TestDemoExplainsByTap(t *testing.T) {
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.do(chromedp.EmulateViewport(390, 800))
	b.open(n.URL() + "/")
	b.waitLive(arriveTimeout)
	visible := `(() => { const p = document.querySelector("#sse .explain p"); return p.checkVisibility() && p.getBoundingClientRect().height > 0; })()`
	if eval[bool](b, visible) {
		t.Errorf("the explanation is open before the tap")
	}
	b.do(chromedp.Click(chromedp.CSS("#sse .explain summary"), chromedp.NodeVisible))
	b.waitJS("the explanation to open", arriveTimeout, visible)
	if !eval[bool](b, `document.querySelector("#sse [data-role=wire]").checkVisibility()`) {
		t.Errorf("the wire view is not shown")
	}
}
