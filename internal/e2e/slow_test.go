package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/announce/announce/internal/serve"
)

// TestSlowConsumer: with a send queue of one message, a burst of concurrent
// publishes overflows the streams' queues. The server cuts the WebSocket
// (1008 "slow consumer") and ends the SSE stream with an error event; both
// panels say so, resume from history with their cursor, and end up with
// every message, in order, none twice. The long-poll panel catches up from
// history too.
func TestSlowConsumer(t *testing.T) {
	n := startNode(t, serve.Config{Queue: 1, History: 10000})
	b := newBrowser(t)
	b.open(n.URL() + "/?channel=burst")
	b.waitLive(arriveTimeout)

	const perBurst, publishers = 60, 6
	total := 0
	cut := func() bool {
		return eval[bool](b, `(document.getElementById("ws").getAttribute("data-last-drop") || "").includes("1008")`)
	}
	for burst := 0; burst < 10 && !cut(); burst++ {
		var wg sync.WaitGroup
		for w := range publishers {
			wg.Go(func() {
				for i := range perBurst / publishers {
					publish(t, n.URL(), "burst", fmt.Sprintf("burst %d, publisher %d, message %d", burst, w, i), "")
				}
			})
		}
		wg.Wait()
		total += perBurst
		b.waitJS(fmt.Sprintf("every panel to get all %d messages", total), arriveTimeout,
			allPanels(fmt.Sprintf(`s("messages") === %d`, total)))
	}
	p := b.snapshot()
	for _, tr := range transports {
		pa := p.Panels[tr]
		if len(pa.IDs) == 0 || pa.IDs[0] != uint64(total) {
			t.Errorf("%s log starts at %v, want #%d", tr, pa.IDs, total)
		}
		for i := 1; i < len(pa.IDs); i++ {
			if pa.IDs[i] != pa.IDs[i-1]-1 {
				t.Errorf("%s log goes from #%d to #%d", tr, pa.IDs[i-1], pa.IDs[i])
			}
		}
		if pa.Gaps != 0 {
			t.Errorf("%s counted %v gaps: %q", tr, pa.Gaps, pa.Notes)
		}
	}
	t.Logf("after %d messages: reconnects ws %v, sse %v; ws notes %q; sse notes %q",
		total, p.Panels["ws"].Reconnects, p.Panels["sse"].Reconnects, p.Panels["ws"].Notes, p.Panels["sse"].Notes)
	if !cut() {
		t.Fatalf("%d messages in bursts never overflowed a one-message queue: the test did not test the slow-consumer path", total)
	}
	if !slices.ContainsFunc(p.Panels["ws"].Notes, func(n string) bool { return strings.Contains(n, "closed 1008 (slow consumer)") }) {
		t.Errorf("the WebSocket was cut, but its log does not say so: %q", p.Panels["ws"].Notes)
	}
	if p.Panels["ws"].Reconnects < 1 {
		t.Errorf("the WebSocket was cut but counts %v reconnects", p.Panels["ws"].Reconnects)
	}
}
