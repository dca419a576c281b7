package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/announce/announce/client"
)

// defaultServer is where pub, sub and bench find the server unless told.
const defaultServer = "http://127.0.0.1:8000"

// clientFlags are the flags pub and sub share.
type clientFlags struct {
	server  string
	channel string
	short   string // -c, the shorthand of --channel
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", defaultServer, "the server's base URL")
	fs.StringVar(&f.channel, "channel", "default", "the channel")
	fs.StringVar(&f.short, "c", "", "shorthand for --channel")
}

// resolve applies -c over --channel (and so over ANNOUNCE_CHANNEL).
func (f *clientFlags) resolve() {
	if f.short != "" {
		f.channel = f.short
	}
}

// Pub publishes its arguments as one message, or each line of standard
// input as its own message, and prints each acknowledged id.
// Ctrl-C ends it the default way: what was acknowledged is printed already.
func Pub(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return pub(context.Background(), args, stdin, stdout, stderr)
}

func pub(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("announce pub", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	key := fs.String("publish-key", "", "the server's publish key (better in ANNOUNCE_PUBLISH_KEY: arguments show in ps)")
	keyShort := fs.String("key", "", "shorthand for --publish-key")
	retries := fs.Int("retries", client.DefaultRetries, "retries after a network error or 502/503/504 (never after a 4xx)")
	timeout := fs.Duration("timeout", 30*time.Second, "longest one publish may take, retries included")
	asJSON := fs.Bool("json", false, "print each stored message as a JSON line instead of its id")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: announce pub [-c CHANNEL] [--server URL] [--publish-key KEY] [TEXT...]

Publishes TEXT (the arguments joined by spaces) as one message, or, without
TEXT, each line of standard input as its own message (empty lines are
skipped). Prints the id of each message once the server stored it. Stops at
the first failure, with the reason on standard error and exit status 1.

Every flag also reads ANNOUNCE_<FLAG>: ANNOUNCE_SERVER, ANNOUNCE_CHANNEL, and
ANNOUNCE_PUBLISH_KEY, the variable the server reads its key from too.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args, stdout, stderr, "announce pub"); !ok {
		return code
	}
	cf.resolve()
	if *keyShort != "" {
		*key = *keyShort
	}
	r := *retries
	if r == 0 {
		r = -1 // the flag's 0 means none; the client's 0 means its default
	}
	c, err := client.New(client.Config{Server: cf.server, Key: *key, Retries: r})
	if err != nil {
		fmt.Fprintln(stderr, "announce pub:", err)
		return 2
	}
	publish := func(content string) bool {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		m, err := c.Publish(ctx, cf.channel, content)
		if err != nil {
			fmt.Fprintf(stderr, "announce pub: publishing to %s on %s: %v\n", cf.channel, c.Server(), err)
			return false
		}
		if *asJSON {
			b, _ := json.Marshal(m)
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			fmt.Fprintln(stdout, m.ID)
		}
		return true
	}

	if fs.NArg() > 0 {
		if !publish(strings.Join(fs.Args(), " ")) {
			return 1
		}
		return 0
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "announce pub: publishing each line you type (end with Ctrl-D)")
		}
	}
	lines := bufio.NewScanner(stdin)
	lines.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for lines.Scan() {
		line := strings.TrimSuffix(lines.Text(), "\r")
		if line == "" {
			continue
		}
		if !publish(line) {
			return 1
		}
	}
	if err := lines.Err(); err != nil {
		fmt.Fprintln(stderr, "announce pub: reading standard input:", err)
		return 1
	}
	return 0
}
