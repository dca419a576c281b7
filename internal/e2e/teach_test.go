package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/announce/announce/internal/serve"
	"github.com/chromedp/chromedp"
)

// wireOf reads a panel's wire view.
func wireOf(b *browser, transport string) string {
	b.t.Helper()
	return eval[string](b, `document.querySelector("#`+transport+` [data-role=wire]").textContent`)
}

// TestDemoTeaches: each transport says what it is, when to use it and what
// it costs in text on the page itself (no hover), and the numbers' meanings
// are in the page, not in tooltips.
func TestDemoTeaches(t *testing.T) {
	n := startNode(t, serve.Config{})
	html := get(t, n.URL()+"/")
	if strings.Contains(html, `<div title=`) {
		t.Errorf("a counter is still explained only by a tooltip")
	}
	b := newBrowser(t)
	b.open(n.URL() + "/")
	for _, c := range []struct{ transport, cost string }{
		{"poll", "300 B of headers each way"},
		{"sse", "~25 B per message"},
		{"ws", "2 B of frame header per message"},
	} {
		about := eval[string](b, `(() => { const p = document.querySelector("#`+c.transport+` .about"); return p.offsetHeight > 0 ? p.textContent : "(hidden)"; })()`)
		for _, want := range []string{"What:", "When:", "Costs:", c.cost, "idle observer"} {
			if !strings.Contains(about, want) {
				t.Errorf("%s panel's visible explanation %q does not say %q", c.transport, about, want)
			}
		}
	}
}

// TestDemoWireView: after a message, each panel's wire view shows the bytes
// of its last exchange, and the waiting long-poll counts the seconds its
// request has been open.
func TestDemoWireView(t *testing.T) {
	n := startNode(t, serve.Config{})
	publish(t, n.URL(), "default", "Before the page loads", "")
	b := newBrowser(t)
	b.open(n.URL() + "/")
	b.waitLive(arriveTimeout)

	waiting := regexp.MustCompile(`^waiting · request open (\d+) s$`)
	state := `document.querySelector("#poll [data-role=state]").textContent`
	b.waitJS("the long-poll to say it is waiting", arriveTimeout, `/^waiting · request open \d+ s$/.test(`+state+`)`)
	m := waiting.FindStringSubmatch(eval[string](b, state))
	if m == nil {
		t.Fatalf("the long-poll's state reads %q", eval[string](b, state))
	}
	first, _ := strconv.Atoi(m[1])
	b.waitJS("the long-poll's open seconds to count up", arriveTimeout,
		fmt.Sprintf(`(() => { const m = /^waiting · request open (\d+) s$/.exec(%s); return m && Number(m[1]) > %d; })()`, state, first))

	short := publish(t, n.URL(), "default", "On the wire", "")
	b.waitArrived(short, "On the wire")
	poll := wireOf(b, "poll")
	for _, want := range []string{
		"GET /channels/default/status?since=1 HTTP/1.1", "X-Requested-With: XMLHttpRequest",
		"HTTP/1.1 200 OK", "content-type: application/json", "set-cookie: announce_default=2;",
		`{"id":2,"channel":"default","content":"On the wire"`,
	} {
		if !strings.Contains(poll, want) {
			t.Errorf("the long-poll wire view lacks %q:\n%s", want, poll)
		}
	}
	sse := wireOf(b, "sse")
	if want := "id: 2\nevent: message\ndata: {\"id\":2,\"channel\":\"default\",\"content\":\"On the wire\""; !strings.Contains(sse, want) {
		t.Errorf("the SSE wire view lacks the frame %q:\n%s", want, sse)
	}
	checkFrame(t, wireOf(b, "ws"), short)

	// A payload of 126 bytes or more has a 16-bit extended length.
	long := publish(t, n.URL(), "default", strings.Repeat("long ", 40), "")
	b.waitArrived(long, strings.Repeat("long ", 40))
	checkFrame(t, wireOf(b, "ws"), long)
}

var (
	frameHeaderShown = regexp.MustCompile(`Frame header: ((?:[0-9a-f]{2} ?)+)\n`)
	framePayload     = regexp.MustCompile(`Payload:\n(.*)\n`)
)

// checkFrame checks a WebSocket wire view: the header of an unmasked text
// frame whose length is the payload's, and the payload is message id.
func checkFrame(t *testing.T, view string, id uint64) {
	t.Helper()
	h, p := frameHeaderShown.FindStringSubmatch(view), framePayload.FindStringSubmatch(view)
	if h == nil || p == nil {
		t.Fatalf("the WebSocket wire view shows no frame header and payload:\n%s", view)
	}
	if !strings.HasPrefix(p[1], fmt.Sprintf(`{"id":%d,`, id)) {
		t.Errorf("the WebSocket payload is %q, want message #%d", p[1], id)
	}
	var header []byte
	for _, x := range strings.Fields(h[1]) {
		v, _ := strconv.ParseUint(x, 16, 8)
		header = append(header, byte(v))
	}
	n := len(p[1])
	var want []byte
	if n < 126 {
		want = []byte{0x81, byte(n)}
	} else {
		want = []byte{0x81, 126, byte(n >> 8), byte(n)}
	}
	if string(header) != string(want) {
		t.Errorf("the frame header shown is % x, want % x for a %d-byte text payload:\n%s", header, want, n, view)
	}
}

// TestDemoDropRecovers drops each transport's connection with its button,
// publishes while they are down, and checks that each reconnects from the
// last id it showed, replays what it missed, and shows every id once and in
// order.
func TestDemoDropRecovers(t *testing.T) {
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.open(n.URL() + "/")
	b.waitLive(arriveTimeout)
	first := publish(t, n.URL(), "default", "Before the drop", "")
	b.waitArrived(first, "Before the drop")

	eval[bool](b, `(() => { for (const t of ["poll", "sse", "ws"]) document.querySelector("#" + t + " [data-role=drop]").click(); return true; })()`)
	b.waitJS("every panel to be dropped", arriveTimeout, allPanels(`p.getAttribute("data-held") === "true" && p.getAttribute("data-state") === "reconnecting"`))
	var during []uint64
	for i := range 3 {
		during = append(during, publish(t, n.URL(), "default", fmt.Sprintf("During the drop %d", i+1), ""))
	}
	// The panels come back by themselves after a few seconds; hurry those
	// still down.
	eval[bool](b, `(() => { for (const d of document.querySelectorAll(".panel[data-held=true] [data-role=drop]")) d.click(); return true; })()`)
	b.waitJS("every panel to reconnect", resumeTimeout, allPanels(`p.getAttribute("data-state") === "live" && p.getAttribute("data-held") === "false" && s("reconnects") === 1`))
	last := publish(t, n.URL(), "default", "After the drop", "")
	b.waitArrived(last, "After the drop")
	b.waitJS("the counters to catch up", arriveTimeout, allPanels(fmt.Sprintf(`s("messages") === %d`, last)))

	p := b.snapshot()
	for _, tr := range transports {
		pa := p.Panels[tr]
		var want []uint64
		for id := last; id >= first; id-- {
			want = append(want, id)
		}
		if !equalIDs(pa.IDs, want) {
			t.Errorf("%s log ids %v, want %v: each once, in order", tr, pa.IDs, want)
		}
		attr := func(k string) string {
			return eval[string](b, fmt.Sprintf(`document.getElementById(%q).getAttribute("data-%s")`, tr, k))
		}
		replayed, _ := strconv.Atoi(attr("replayed"))
		if attr("missed") != "0" || attr("doubled") != "0" || attr("duplicates") != "0" || pa.Gaps != 0 {
			t.Errorf("%s: missed %s, doubled %s, duplicates %s, gaps %v; want none", tr, attr("missed"), attr("doubled"), attr("duplicates"), pa.Gaps)
		}
		// The first publish was made while the panel was surely down; the
		// others too unless the machine took seconds for each.
		if replayed < 1 || replayed > len(during) {
			t.Errorf("%s replayed %d, want 1 to %d (published while dropped: %v)", tr, replayed, len(during), during)
		}
		if got := attr("resumed-from"); got != fmt.Sprint(first) {
			t.Errorf("%s resumed from #%s, want #%d", tr, got, first)
		}
		recovery := eval[string](b, fmt.Sprintf(`document.querySelector("#%s [data-role=recovery]").textContent`, tr))
		wantText := fmt.Sprintf("Dropped after #%d. Resumed with ", first)
		if !strings.HasPrefix(recovery, wantText) || !strings.Contains(recovery, fmt.Sprintf("since=%d", first)) ||
			!strings.Contains(recovery, fmt.Sprintf("replayed %d (#%d", replayed, first+1)) || !strings.HasSuffix(recovery, "missed 0 · doubled 0.") {
			t.Errorf("%s recovery reads %q", tr, recovery)
		}
	}
}

// TestDemoAutoPanelDrop: the announce.js panel's drop button closes the
// subscription; subscribing again with {since} shows what was published
// meanwhile, each id once and in order.
func TestDemoAutoPanelDrop(t *testing.T) {
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.open(n.URL() + "/")
	auto := `document.getElementById("auto")`
	b.waitJS("the announce.js panel to be live", arriveTimeout, auto+`.getAttribute("data-state") === "live"`)
	first := publish(t, n.URL(), "default", "Before the drop", "")
	hasID := func(id uint64) string {
		return fmt.Sprintf(`!!document.querySelector("#auto .log li[data-id='%d']")`, id)
	}
	b.waitJS("the message in the panel", arriveTimeout, hasID(first))

	b.do(chromedp.Click(chromedp.CSS("#auto [data-role=drop]"), chromedp.NodeVisible))
	b.waitJS("the panel to be dropped", arriveTimeout, auto+`.getAttribute("data-held") === "true"`)
	for i := range 3 {
		publish(t, n.URL(), "default", fmt.Sprintf("During the drop %d", i+1), "")
	}
	eval[bool](b, `(() => { const d = document.querySelector("#auto[data-held=true] [data-role=drop]"); if (d) d.click(); return true; })()`)
	b.waitJS("the panel to be live again", resumeTimeout, auto+`.getAttribute("data-state") === "live" && `+auto+`.getAttribute("data-held") === "false"`)
	last := publish(t, n.URL(), "default", "After the drop", "")
	b.waitJS("the last message in the panel", arriveTimeout, hasID(last))

	ids := eval[[]uint64](b, `[...document.querySelectorAll("#auto .log li[data-id]")].map((li) => Number(li.getAttribute("data-id")))`)
	var want []uint64
	for id := last; id >= first; id-- {
		want = append(want, id)
	}
	if !equalIDs(ids, want) {
		t.Errorf("announce.js log ids %v, want %v: each once, in order", ids, want)
	}
	attr := func(k string) string { return eval[string](b, auto+`.getAttribute("data-`+k+`")`) }
	if attr("missed") != "0" || attr("doubled") != "0" || attr("messages") != fmt.Sprint(len(want)) {
		t.Errorf("announce.js panel: missed %s, doubled %s, messages %s; want 0, 0, %d", attr("missed"), attr("doubled"), attr("messages"), len(want))
	}
	if r, _ := strconv.Atoi(attr("replayed")); r < 1 {
		t.Errorf("announce.js panel replayed %d, want the messages published while dropped", r)
	}
	recovery := eval[string](b, `document.querySelector("#auto [data-role=recovery]").textContent`)
	if !strings.Contains(recovery, fmt.Sprintf("{since: %d}", first)) || !strings.HasSuffix(recovery, "missed 0 · doubled 0.") {
		t.Errorf("announce.js recovery reads %q", recovery)
	}
}
