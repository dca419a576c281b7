package cli

import (
	"fmt"
	"io"
	"strings"
)

// commandSummaries name each command with one line, in the order help lists them.
var commandSummaries = []struct{ name, summary string }{
	{"serve", "run the server (the default: `announce` alone is `announce serve`)"},
	{"pub", "publish a message: announce pub -c CHANNEL TEXT"},
	{"sub", "print a channel's messages as they arrive: announce sub -c CHANNEL"},
	{"token", "mint a token that lets its holder observe a private channel"},
	{"bench", "measure a server: announce bench fanout|idle"},
	{"version", "print the version, commit and Go version (also announce --version)"},
	{"help", "show a command's flags: announce help COMMAND"},
}

// Main runs the command args name (serve when args start with a flag or are
// empty) and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" {
		return help(args, stdin, stdout, stderr)
	}
	if cmd == "serve" && len(args) > 0 && isHelpFlag(args[0]) {
		// announce --help: the commands first, then the server's flags.
		usage(stdout)
		fmt.Fprintln(stdout)
	}
	run, ok := Commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "announce: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
	return run(args, stdin, stdout, stderr)
}

// help is `announce help [COMMAND]`: the commands, or one command's usage.
func help(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	run, ok := Commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "announce help: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	helpArgs := []string{"--help"}
	if args[0] == "bench" {
		scenario := "fanout"
		if len(args) > 1 {
			scenario = args[1]
		}
		helpArgs = []string{scenario, "--help"}
	}
	return run(helpArgs, stdin, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "Usage: announce [COMMAND] [flags]\n\nCommands:\n")
	for _, c := range commandSummaries {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\n`announce help COMMAND` (or `announce COMMAND --help`) lists its flags.\n")
}

func isHelpFlag(arg string) bool {
	switch strings.TrimLeft(arg, "-") {
	case "h", "help":
		return strings.HasPrefix(arg, "-")
	}
	return false
}
