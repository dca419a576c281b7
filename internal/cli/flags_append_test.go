package cli

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestAppendListFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  string
		want []string
	}{
		{[]string{"--webhook", "http://a/", "--webhook", " http://b/ ,http://c/,"}, "", []string{"http://a/", "http://b/", "http://c/"}},
		{nil, "http://e1/,http://e2/", []string{"http://e1/", "http://e2/"}},
		{[]string{"--webhook", "http://flag/"}, "http://env/", []string{"http://flag/"}}, // a flag wins over the variable
		{nil, "", nil},
	} {
		t.Setenv("ANNOUNCE_WEBHOOK", c.env)
		var got []string
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.Var((*appendListFlag)(&got), "webhook", "")
		if err := parse(fs, c.args, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("args %q env %q: %q, want %q", c.args, c.env, got, c.want)
		}
	}
}
