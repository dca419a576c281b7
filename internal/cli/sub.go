package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/announce/announce/client"
)

// Sub prints a channel's messages as they arrive until SIGINT or SIGTERM,
// reconnecting and resuming by itself.
func Sub(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return sub(ctx, args, stdin, stdout, stderr)
}

// sub is Sub until ctx ends (exit status 0).
func sub(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("announce sub", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	transport := fs.String("transport", string(client.WebSocket), "ws, sse or poll")
	since := fs.String("since", "", "print every message after this id that the server still holds, then the new ones (default: the current message, then the new ones)")
	asJSON := fs.Bool("json", false, "print each message as a JSON line instead of its content")
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	token := fs.String("token", "", "a token for a private channel (better in ANNOUNCE_TOKEN: arguments show in ps)")
	quiet := fs.Bool("quiet", false, "do not report connects and reconnects on standard error")
	name := fs.String("name", "", "the name to go by in the channel's presence (GET /channels/CHANNEL/presence)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: announce sub [-c CHANNEL] [--server URL] [--transport ws|sse|poll] [--since ID] [--json]

Prints each message's content (or, with --json, the message as a JSON line)
as it arrives. Connects, reconnects and missed messages are reported on
standard error; after a disconnect it reconnects by itself and resumes after
the last message it printed. Ends with status 0 on SIGINT or SIGTERM.

Every flag also reads ANNOUNCE_<FLAG> (ANNOUNCE_SERVER, ANNOUNCE_CHANNEL,
ANNOUNCE_TRANSPORT, ...).

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args, stdout, stderr, "announce sub"); !ok {
		return code
	}
	cf.resolve()
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "announce sub: unexpected arguments %q (the channel is -c CHANNEL)\n", fs.Args())
		return 2
	}
	opts := client.SubscribeOptions{Token: *token, Name: *name}
	var err error
	if opts.Transport, err = client.ParseTransport(*transport); err != nil {
		fmt.Fprintln(stderr, "announce sub: --transport:", err)
		return 2
	}
	if *since != "" {
		id, err := strconv.ParseUint(*since, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "announce sub: --since %q: want a message id (a whole number >= 0)\n", *since)
			return 2
		}
		opts.Since = &id
	}
	c, err := client.New(client.Config{Server: cf.server})
	if err != nil {
		fmt.Fprintln(stderr, "announce sub:", err)
		return 2
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := c.Subscribe(ctx, cf.channel, opts)
	defer s.Close()
	events := s.Events()
	printed, hinted := 0, false
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !*quiet || ev.Kind == client.Truncated || ev.Kind == client.Reset {
				fmt.Fprintf(stderr, "announce sub: %s: %s\n", cf.channel, ev)
			}
			switch {
			case ev.Kind == client.Connected:
				hinted = false
			case ev.Kind == client.Reconnecting && ev.Attempt >= hintAfter && !hinted:
				hinted = true
				fmt.Fprintf(stderr, "announce sub: %d attempts failed in a row: is announce running at %s? (start it with `announce serve`, or point --server at it)\n", ev.Attempt, c.Server())
			}
		case m, ok := <-s.Messages():
			if !ok {
				<-s.Done()
				if ctx.Err() != nil {
					return 0 // interrupted: a normal end
				}
				fmt.Fprintf(stderr, "announce sub: %s on %s: %v\n", cf.channel, c.Server(), s.Err())
				return 1
			}
			if err := printMessage(stdout, m, *asJSON); err != nil {
				fmt.Fprintln(stderr, "announce sub: writing:", err)
				return 1
			}
			if printed++; *count > 0 && printed >= *count {
				return 0
			}
		}
	}
}

// hintAfter is how many failed connections in a row earn the hint that
// the server may not be running.
const hintAfter = 3

func printMessage(w io.Writer, m client.Message, asJSON bool) error {
	if !asJSON {
		_, err := fmt.Fprintln(w, m.Content)
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
