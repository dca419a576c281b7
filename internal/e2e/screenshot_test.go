package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/chromedp/chromedp"
)

// screenshotAnnouncements is a plausible stream for the picture.
var screenshotAnnouncements = []string{
	"Doors open at 18:30 — welcome!",
	"Coffee is served in the foyer",
	"Workshop B moves to room 2.14",
	"Wi-Fi: network “venue”, password on your badge",
	"Lightning talks: sign up at the front desk",
	"Lunch is ready on level 1",
	"The 14:00 panel starts 5 minutes late",
	"Keynote starts in 10 minutes in Hall A",
}

// TestScreenshot renders the demo at 1280×800 under a stream of messages,
// checks that every panel received all of them in order, and saves the
// picture: to $SCREENSHOT when set (make the README's docs/demo.png with
// SCREENSHOT=$PWD/docs/demo.png), else into the test's temporary directory.
func TestScreenshot(t *testing.T) {
	out := os.Getenv("SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "demo.png")
	}
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.do(chromedp.EmulateViewport(1280, 800))
	b.open(n.URL() + "/")
	b.waitLive(arriveTimeout)

	// 40 messages at about 20 a second: fast enough that long-poll must catch
	// up from history now and then, slow enough to read the latencies.
	const total = 40
	var last uint64
	for i := range total {
		last = publish(t, n.URL(), "default", screenshotAnnouncements[i%len(screenshotAnnouncements)], "")
		time.Sleep(50 * time.Millisecond) // pacing the load, not waiting for a result
	}
	b.waitJS("every panel to show the whole stream", arriveTimeout, allPanels(fmt.Sprintf(`s("messages") === %d`, total)))
	p := b.snapshot()
	for _, tr := range transports {
		pa := p.Panels[tr]
		if len(pa.IDs) == 0 || pa.IDs[0] != last {
			t.Errorf("%s log starts at %v, want #%d", tr, pa.IDs, last)
		}
		for i := 1; i < len(pa.IDs); i++ {
			if pa.IDs[i] != pa.IDs[i-1]-1 {
				t.Errorf("%s log skips from #%d to #%d", tr, pa.IDs[i-1], pa.IDs[i])
			}
		}
		if pa.Gaps != 0 {
			t.Errorf("%s counted %v gaps: %q", tr, pa.Gaps, pa.Notes)
		}
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))

	ctx, cancel := contextFor(b)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(png))
}
