// Package testenv starts the real system programs that the tests of announce
// talk to: a private redis-server per test, and Debian's headless chromium
// through chromedp.
//
// The programs are never optional. When one is missing the test fails and
// says how to get it (`make test` installs both), because a skipped Redis or
// browser test looks green in CI while testing nothing.
//
// Every helper registers its own cleanup with t.Cleanup, and, like t.Fatal,
// must be called from the goroutine running the test.
package testenv
