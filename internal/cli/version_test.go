package cli

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// announce version and announce --version print the version, the commit
// and the Go version; make release links the first two in (and checks them).
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(args, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("announce %s: exit %d: %s", args[0], code, stderr.String())
		}
		out := stdout.String()
		if !strings.HasPrefix(out, "announce ") || !strings.Contains(out, "(commit ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("announce %s printed %q, want the version, commit and %s", args[0], out, runtime.Version())
		}
	}
	version, commit = "v9.8.7", "abc1234"
	defer func() { version, commit = "", "" }()
	var stdout bytes.Buffer
	Main([]string{"version"}, nil, &stdout, &stdout)
	if !strings.HasPrefix(stdout.String(), "announce v9.8.7 (commit abc1234, "+runtime.Version()) {
		t.Errorf("with link-time values: %q", stdout.String())
	}
}
