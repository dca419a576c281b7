package testenv

import (
	"os"
	"testing"
	"time"
)

// Duration is how long a long-running test (a soak, a chaos run) goes on:
// the Go duration in the environment variable name, else def. A value that
// is not a positive duration fails the test.
func Duration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration such as 10m", name, v)
	}
	return d
}
