package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// debianChromium is where Debian's chromium package puts the browser.
const debianChromium = "/usr/bin/chromium"

// browserStartTimeout bounds the launch of the browser in BrowserContext. It
// only covers the start; the context it returns has no deadline.
const browserStartTimeout = time.Minute

// Chromium returns the path of Debian's chromium: /usr/bin/chromium, or
// "chromium" found on PATH. It fails the test if there is none.
func Chromium(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat(debianChromium); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return debianChromium
	}
	if path, err := exec.LookPath("chromium"); err == nil {
		return path
	}
	t.Fatalf("testenv: chromium not found (neither %s nor chromium on PATH): run `make test`, "+
		"which installs it, or install the Debian package chromium (apt-get install chromium)",
		debianChromium)
	return ""
}

// BrowserContext starts a headless chromium for t and returns a chromedp
// context for a tab in it. The browser is already running when
// BrowserContext returns, so a test's first action does not pay for the
// launch. The context has no deadline: add one per action with
// context.WithTimeout. The browser and its fresh profile directory are
// removed when the test ends.
func BrowserContext(t testing.TB) context.Context {
	t.Helper()
	return BrowserContextWith(t)
}

// BrowserContextWith is BrowserContext with extra browser options, such as
// chromedp.Flag("ignore-certificate-errors-spki-list", hash).
func BrowserContextWith(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	execPath := Chromium(t)

	// Not t.TempDir: the crashpad handler can write into the profile a
	// moment after the browser exits, and a failed TempDir removal fails
	// the test. removeAllRetry below tolerates that.
	profile, err := os.MkdirTemp("", "announce-chromium-")
	if err != nil {
		t.Fatalf("testenv: creating the chromium profile directory: %v", err)
	}

	out := new(syncBuffer)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(out),
	)
	opts = append(opts, extra...)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		allocCancel() // waits for the browser process to exit
		if err := removeAllRetry(profile); err != nil {
			t.Logf("testenv: removing the chromium profile %s: %v", profile, err)
		}
	})

	// The first Run (or Do) launches the browser. Its context must be ctx itself,
	// not one with a timeout: chromedp ties the browser's life to it. So
	// the launch is bounded from outside.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("testenv: starting %s: %v\nits output:\n%s", execPath, err, out.String())
		}
	case <-time.After(browserStartTimeout):
		cancel()
		t.Fatalf("testenv: %s did not start within %v\nits output:\n%s",
			execPath, browserStartTimeout, out.String())
	}
	return ctx
}

// removeAllRetry removes dir, trying again for a few seconds while child
// processes of the browser may still be writing into it.
func removeAllRetry(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
