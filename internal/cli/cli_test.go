package cli

import (
	"bytes"
	"strings"
	"testing"
)

// --help answers on stdout with exit 0 (so it pipes into grep), listing each
// flag with its variable; a mistake goes to stderr with exit 2.
func TestHelpOnStdout(t *testing.T) {
	for name, run := range Commands {
		var stdout, stderr bytes.Buffer
		args := []string{"--help"}
		if name == "bench" {
			args = []string{"fanout", "--help"}
		}
		if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Errorf("%s --help: exit %d", name, code)
		}
		if !strings.Contains(stdout.String(), "Usage:") || stderr.Len() != 0 {
			t.Errorf("%s --help: stdout %q, stderr %q; want the usage on stdout alone", name, stdout.String(), stderr.String())
		}
		if name != "token" && name != "version" && !strings.Contains(stdout.String(), "[$ANNOUNCE_") {
			t.Errorf("%s --help names no ANNOUNCE_ variable", name)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Serve([]string{"--no-such-flag"}, nil, &stdout, &stderr); code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "no-such-flag") {
		t.Errorf("a bad flag: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	t.Setenv("ANNOUNCE_MEMORY", "yes")
	stderr.Reset()
	if code := Serve(nil, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "true or false") {
		t.Errorf("ANNOUNCE_MEMORY=yes: exit %d, stderr %q", code, stderr.String())
	}
}
