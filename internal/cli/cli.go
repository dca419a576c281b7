// Package cli implements announce's commands: serve, pub, sub and bench.
// Every flag also reads an ANNOUNCE_* environment variable.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Command runs one command with its arguments and returns the exit status.
type Command func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Commands are the commands by name.
var Commands = map[string]Command{
	"serve":   Serve,
	"pub":     Pub,
	"sub":     Sub,
	"bench":   Bench,
	"token":   Token,
	"version": Version,
}

// parse parses args into fs after applying ANNOUNCE_<FLAG> variables for
// flags not given on the command line (the command line wins).
func parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	// --help names each flag's variable next to it.
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " [$" + EnvName(f.Name) + "]" })
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := EnvName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
					e = errors.New("want true or false (or 1 or 0)")
				}
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// parseFlags is fs.Parse with the help that --help asks for on stdout (so
// that it pipes into grep or less), and a mistake's on stderr. Flags may
// follow positional arguments (announce pub hello -c ops); after "--"
// everything is positional (announce pub -- -5 degrees).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := parseInterspersed(fs, args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = out.WriteTo(stdout)
	} else {
		_, _ = out.WriteTo(stderr)
	}
	return err
}

// parseInterspersed parses the flags wherever they stand among args and
// leaves fs.Args() holding the positional arguments in their order.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...) // after "--": no flags
			break
		}
		i := 0
		for i < len(rest) && (len(rest[i]) < 2 || rest[i][0] != '-') {
			i++
		}
		positional = append(positional, rest[:i]...)
		if i == len(rest) {
			break
		}
		args = rest[i:]
	}
	// A final "--" leaves fs.Args() the positional arguments alone; the
	// flags set so far stay set.
	return fs.Parse(append([]string{"--"}, positional...))
}

// parseArgs is parse for a command named name: when parsing ends the
// command (--help, or a bad flag or variable, reported on stderr) it returns
// the exit status (0 or 2) and false.
func parseArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, name string) (int, bool) {
	err := parse(fs, args, stdout, stderr)
	if err == nil {
		return 0, true
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0, false
	}
	fmt.Fprintln(stderr, name+":", err)
	return 2, false
}

// EnvName is the environment variable of a flag: --poll-timeout ↔ ANNOUNCE_POLL_TIMEOUT.
func EnvName(flagName string) string {
	return "ANNOUNCE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// listFlag is a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
