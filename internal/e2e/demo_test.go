package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/announce/announce/internal/serve"
	"github.com/chromedp/chromedp"
)

// latencyShown is how a panel writes a latency.
var latencyShown = regexp.MustCompile(`^-?\d+(\.\d)? (ms|s|min)$`)

// TestDemoPage publishes through the page's form and over HTTP and checks
// that all three panels show both messages, with a latency, and that their
// counters moved.
func TestDemoPage(t *testing.T) {
	n := startNode(t, serve.Config{})
	first := publish(t, n.URL(), "default", "Before the page loads", "")

	// The announcement is in the HTML itself, before any script runs, and
	// nothing the page needs comes from another host.
	html := get(t, n.URL()+"/")
	if !regexp.MustCompile(`id="current" data-id="1"[^>]*>Before the page loads</p>`).MatchString(html) {
		t.Errorf("the page does not render the current announcement:\n%s", html)
	}
	if m := regexp.MustCompile(`(src|href)="(https?:)?//`).FindString(html); m != "" {
		t.Errorf("the page loads %s from another host; it must work offline", m)
	}
	for _, link := range []string{`href="/examples/longpoll"`, `href="/examples/websocket"`} {
		if !strings.Contains(html, link) {
			t.Errorf("the page does not link the classic example: %s", link)
		}
	}

	b := newBrowser(t)
	b.open(n.URL() + "/")
	p := b.snapshot()
	if p.Channel != "default" || p.CurrentID != first || p.CurrentText != "Before the page loads" {
		t.Errorf("page shows channel %q, current #%d %q; want default, #%d", p.Channel, p.CurrentID, p.CurrentText, first)
	}
	for _, tr := range transports {
		if got := p.Panels[tr].Current; got != "Before the page loads" {
			t.Errorf("%s panel starts with %q, want the server-rendered announcement", tr, got)
		}
	}
	b.waitLive(arriveTimeout)

	// Through the page's own form.
	b.do(
		chromedp.SendKeys(chromedp.CSS("#content"), "From the form", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#publish button"), chromedp.NodeVisible),
	)
	b.waitArrived(2, "From the form")
	b.waitJS("the form to report the publish", arriveTimeout,
		`document.getElementById("publish-status").textContent.startsWith("published #2")`)
	// The counters are drawn on the next frame after the log.
	b.waitJS("the counters to count it", arriveTimeout, allPanels(`s("messages") === 1`))
	before := b.snapshot()

	// Over HTTP, as curl or another service would.
	id := publish(t, n.URL(), "default", "From curl", "")
	b.waitArrived(id, "From curl")
	b.waitJS("the counters to catch up", arriveTimeout, allPanels(`s("messages") === 2`))
	after := b.snapshot()

	if after.CurrentID != id || after.CurrentText != "From curl" {
		t.Errorf("big announcement shows #%d %q, want #%d %q", after.CurrentID, after.CurrentText, id, "From curl")
	}
	for _, tr := range transports {
		pa, pb := after.Panels[tr], before.Panels[tr]
		if !equalIDs(pa.IDs, []uint64{3, 2}) {
			t.Errorf("%s log ids %v, want [3 2] (newest first, the server-rendered #1 not repeated)", tr, pa.IDs)
		}
		if pa.Current != "From curl" {
			t.Errorf("%s panel shows %q, want the newest announcement", tr, pa.Current)
		}
		if pa.Requests < 1 || pa.Bytes <= pb.Bytes || pb.Bytes <= 0 {
			t.Errorf("%s counters did not move: requests %v, bytes %v then %v", tr, pa.Requests, pb.Bytes, pa.Bytes)
		}
		if !latencyShown.MatchString(pa.Latency) {
			t.Errorf("%s panel shows latency %q", tr, pa.Latency)
		}
		for i, l := range pa.Lats {
			if !latencyShown.MatchString(l) {
				t.Errorf("%s log entry #%d shows latency %q", tr, pa.IDs[i], l)
			}
		}
		if len(pa.Notes) != 0 {
			t.Errorf("%s log has notes %q, want none on a quiet run", tr, pa.Notes)
		}
		row := after.Summary[tr]
		if row["messages"] != "2" || row["state"] != "live" || !latencyShown.MatchString(row["latency"]) ||
			row["requests"] == "0" || row["bytes"] == "0 B" {
			t.Errorf("%s summary row %v", tr, row)
		}
	}
	// Each message is one more long-poll request; the streams need one request in all.
	if got := after.Panels["poll"].Requests - before.Panels["poll"].Requests; got < 1 {
		t.Errorf("long-poll made %v more requests for one message, want at least 1", got)
	}
	for _, tr := range []string{"sse", "ws"} {
		if got := after.Panels[tr].Requests; got != 1 {
			t.Errorf("%s made %v requests, want 1", tr, got)
		}
	}
}

// TestDemoChannel opens another channel with the picker: the URL keeps it,
// and the page follows that channel only.
func TestDemoChannel(t *testing.T) {
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.open(n.URL() + "/")
	b.do(chromedp.SetValue(chromedp.CSS("#channel"), "lobby", chromedp.NodeVisible))
	b.navigateBy(chromedp.Submit(chromedp.CSS("#channel")))
	if got := eval[string](b, `location.pathname + location.search`); got != "/?channel=lobby" {
		t.Errorf("the picker opened %s, want /?channel=lobby", got)
	}
	b.waitLive(arriveTimeout)

	publish(t, n.URL(), "default", "Elsewhere", "")
	id := publish(t, n.URL(), "lobby", "In the lobby", "")
	b.waitArrived(id, "In the lobby")
	p := b.snapshot()
	for _, tr := range transports {
		if !equalIDs(p.Panels[tr].IDs, []uint64{1}) || p.Panels[tr].Texts[0] != "In the lobby" {
			t.Errorf("%s panel on lobby shows %v %q, want only the lobby's #1", tr, p.Panels[tr].IDs, p.Panels[tr].Texts)
		}
	}

	// A link to the channel opens the same view, announcement included.
	b.open(n.URL() + "/?channel=lobby")
	if p := b.snapshot(); p.Channel != "lobby" || p.CurrentText != "In the lobby" {
		t.Errorf("/?channel=lobby shows channel %q with %q", p.Channel, p.CurrentText)
	}
}

// TestDemoPublishKey: with a publish key the form asks for it and sends it
// as a bearer token; a wrong key is refused and the page says why.
func TestDemoPublishKey(t *testing.T) {
	n := startNode(t, serve.Config{PublishKey: "s3cret"})
	b := newBrowser(t)
	b.open(n.URL() + "/?channel=keyed")
	b.waitLive(arriveTimeout)

	b.do(
		chromedp.SendKeys(chromedp.CSS("#content"), "Not allowed", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS("#key"), "wrong", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#publish button"), chromedp.NodeVisible),
	)
	b.waitJS("the form to report the refusal", arriveTimeout,
		`document.getElementById("publish-status").className === "error" && document.getElementById("publish-status").textContent.includes("wrong publish key")`)

	b.do(
		chromedp.SetValue(chromedp.CSS("#key"), "s3cret", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#publish button"), chromedp.NodeVisible),
	)
	b.waitArrived(1, "Not allowed")
	b.waitJS("the form to report the publish", arriveTimeout,
		`document.getElementById("publish-status").className === "ok"`)
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDemoPrivateChannel: a private channel's page is opened with ?token=,
// and every transport passes the token on.
func TestDemoPrivateChannel(t *testing.T) {
	n := startNode(t, serve.Config{PublishKey: "s3cret"})
	req, _ := http.NewRequest(http.MethodPost, n.URL()+"/channels/private-room/tokens", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || err != nil || tok.Token == "" {
		t.Fatalf("minting a token: %s, %v", res.Status, err)
	}

	b := newBrowser(t)
	b.open(n.URL() + "/?channel=private-room&token=" + url.QueryEscape(tok.Token))
	b.waitLive(arriveTimeout)
	id := publish(t, n.URL(), "private-room", "For token holders", "s3cret")
	b.waitArrived(id, "For token holders")
}
