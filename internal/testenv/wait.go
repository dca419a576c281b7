package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond every few milliseconds until it holds, failing the test
// with what after timeout. Tests wait with it for something to happen,
// never with a fixed sleep; to prove that something did not happen, wait
// for a later event that must come after it instead.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
