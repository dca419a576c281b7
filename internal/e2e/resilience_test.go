package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
)

// TestLongPollTimeouts: with a 1 s poll timeout the jQuery loop goes through
// several empty answers without spinning, and still gets the next message.
func TestLongPollTimeouts(t *testing.T) {
	n := startNode(t, serve.Config{PollTimeout: time.Second})
	b := newBrowser(t)
	b.open(n.URL() + "/")
	b.waitLive(arriveTimeout)

	start := time.Now()
	r0 := b.snapshot().Panels["poll"].Requests
	// Three timeouts: about 3 s; a loop that spun would get there at once.
	b.waitJS("three long-poll timeouts", 20*time.Second, fmt.Sprintf(
		`Number(document.getElementById("poll").getAttribute("data-requests")) >= %v`, r0+3))
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("three 1 s long-polls came back within %v: the loop spins", took)
	}
	p := b.snapshot()
	if p.Panels["poll"].State != "live" || len(p.Panels["poll"].IDs) != 0 || len(p.Panels["poll"].Notes) != 0 {
		t.Errorf("after timeouts the long-poll panel is %q with log %v %q; want live and empty",
			p.Panels["poll"].State, p.Panels["poll"].IDs, p.Panels["poll"].Notes)
	}

	id := publish(t, n.URL(), "default", "After the timeouts", "")
	b.waitArrived(id, "After the timeouts")
	after := b.snapshot().Panels["poll"]
	if after.Requests <= p.Panels["poll"].Requests {
		t.Errorf("long-poll requests %v then %v: the loop did not go on", p.Panels["poll"].Requests, after.Requests)
	}
	if after.Reconnects != 0 {
		t.Errorf("a timeout counted as %v reconnects", after.Reconnects)
	}
}

// TestRestart: the server goes away (1001 for WebSockets, the end of the SSE
// stream, a refused long-poll) and comes back on the same address with the
// same store. Every panel reconnects by itself, resumes from its last id, and
// shows what is published next with no id skipped.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	n1 := startNode(t, serve.Config{DataDir: dir})
	addr := n1.Addr()
	b := newBrowser(t)
	b.open(n1.URL() + "/")
	b.waitLive(arriveTimeout)
	b.waitArrived(publish(t, n1.URL(), "default", "Before the restart", ""), "Before the restart")
	before := b.snapshot()

	n1.shutdown(t)
	b.waitJS("every panel to notice the server went away", resumeTimeout, allPanels(`p.getAttribute("data-state") === "reconnecting"`))

	n2 := startNode(t, serve.Config{DataDir: dir, Listen: addr})
	b.waitJS("every panel to reconnect", resumeTimeout, allPanels(`p.getAttribute("data-state") === "live" && s("reconnects") >= 1`))

	id2 := publish(t, n2.URL(), "default", "After the restart", "")
	id3 := publish(t, n2.URL(), "default", "And one more", "")
	if id2 != 2 || id3 != 3 {
		t.Fatalf("after the restart the store gave ids %d, %d; want 2, 3 (it keeps its sequence)", id2, id3)
	}
	b.waitArrived(id3, "And one more")
	p := b.snapshot()
	for _, tr := range transports {
		pa := p.Panels[tr]
		if !equalIDs(pa.IDs, []uint64{3, 2, 1}) {
			t.Errorf("%s log ids %v, want [3 2 1]: no id skipped, none twice", tr, pa.IDs)
		}
		if pa.Gaps != 0 {
			t.Errorf("%s counted %v gaps: %q", tr, pa.Gaps, pa.Notes)
		}
		if pa.Reconnects < 1 || pa.Requests <= before.Panels[tr].Requests {
			t.Errorf("%s: reconnects %v, requests %v then %v; the counters should move",
				tr, pa.Reconnects, before.Panels[tr].Requests, pa.Requests)
		}
	}
}

// TestTruncatedHistory: while the page was away, more was published than
// the channel's history keeps. Each panel says so in its log and resumes at
// the oldest message history still has.
func TestTruncatedHistory(t *testing.T) {
	dir := t.TempDir()
	n1 := startNode(t, serve.Config{DataDir: dir, History: 2})
	addr := n1.Addr()
	b := newBrowser(t)
	b.open(n1.URL() + "/?channel=short")
	b.waitLive(arriveTimeout)
	n1.shutdown(t)
	b.waitJS("every panel to notice the server went away", resumeTimeout, allPanels(`p.getAttribute("data-state") === "reconnecting"`))

	// Another node on another address publishes five messages on the same
	// store; history keeps the last two.
	other := startNode(t, serve.Config{DataDir: dir, History: 2})
	for i := 1; i <= 5; i++ {
		publish(t, other.URL(), "short", fmt.Sprintf("Message %d", i), "")
	}
	other.shutdown(t)

	startNode(t, serve.Config{DataDir: dir, History: 2, Listen: addr})
	b.waitArrived(5, "Message 5")
	p := b.snapshot()
	for _, tr := range transports {
		pa := p.Panels[tr]
		if !equalIDs(pa.IDs, []uint64{5, 4}) {
			t.Errorf("%s log ids %v, want [5 4]", tr, pa.IDs)
		}
		if pa.Gaps != 0 {
			t.Errorf("%s counted %v gaps (%q); a truncation it was told about is not a gap", tr, pa.Gaps, pa.Notes)
		}
		truncated := slices.ContainsFunc(pa.Notes, func(n string) bool { return strings.Contains(n, "truncated") })
		if !truncated {
			t.Errorf("%s log notes %q: the truncation is not mentioned", tr, pa.Notes)
		}
	}
}
