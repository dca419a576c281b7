// Package e2e tests the demo page and the classic example pages in a real
// headless Chromium (Debian's chromium, driven by chromedp) against real
// nodes started with serve.Start: the three transports side by side, their
// counters, long-poll timeouts, resuming after a server restart and after
// history was truncated.
//
// TestScreenshot also renders the page under load; with SCREENSHOT=path it
// writes the PNG there (the README's docs/demo.png):
//
//	SCREENSHOT=$PWD/docs/demo.png go test -run TestScreenshot ./internal/e2e/
package e2e
