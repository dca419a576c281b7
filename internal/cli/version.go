package cli

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at link time by `make release`:
//
//	-ldflags "-X github.com/announce/announce/internal/cli.version=v1.2.3 -X github.com/announce/announce/internal/cli.commit=abc1234"
//
// Without them, what the Go toolchain recorded in the binary is used.
var (
	version = ""
	commit  = ""
)

// Version prints the version, the commit and the Go version.
func Version(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("announce version", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: announce version (or announce --version)\n\nPrints the version, the commit and the Go version it was built with.\n")
	}
	if code, ok := parseArgs(fs, args, stdout, stderr, "announce version"); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "announce version: takes no arguments")
		return 2
	}
	v, c, goVersion := buildInfo()
	fmt.Fprintf(stdout, "announce %s (commit %s, %s, %s/%s)\n", v, c, goVersion, runtime.GOOS, runtime.GOARCH)
	return 0
}

// buildInfo is the version and commit from the link flags, else from the
// module and VCS information the toolchain embeds, else "devel"/"unknown".
func buildInfo() (v, c, goVersion string) {
	v, c, goVersion = version, commit, runtime.Version()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return orDefault(v, "devel"), orDefault(c, "unknown"), goVersion
	}
	if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	var revision string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if c == "" && revision != "" {
		c = revision
		if modified {
			c += "-dirty"
		}
	}
	return orDefault(v, "devel"), orDefault(c, "unknown"), goVersion
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
