package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/announce/announce/announce/token"
)

// Token mints a channel token offline, with the server's secret, and prints it.
func Token(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("announce token", flag.ContinueOnError)
	var channel, duration, name, secret, key string
	var publish bool
	fs.StringVar(&channel, "c", "", "channel the token is for (required)")
	fs.StringVar(&channel, "channel", "", "same as -c")
	fs.StringVar(&duration, "duration", token.DefaultTTL.String(), "lifetime: a Go duration (90m) or seconds, at most "+token.MaxTTL.String())
	fs.BoolVar(&publish, "publish", false, "also allow publishing to the channel")
	fs.StringVar(&name, "name", "", "the holder's name (the sub claim)")
	fs.StringVar(&secret, "secret", "", "the server's --token-secret (default $ANNOUNCE_TOKEN_SECRET)")
	fs.StringVar(&key, "publish-key", "", "the server's --publish-key, when it has no token secret (default $ANNOUNCE_PUBLISH_KEY)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: announce token -c CHANNEL [--duration 1h] [--publish] [--name NAME] [--secret S]\n\n"+
			"Mints a token for a channel offline and prints it. It must be signed like the server's own:\n"+
			"with its --token-secret, or, when the server has none, with its --publish-key.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	// The server's own variables, so one environment serves both.
	if secret == "" {
		secret = os.Getenv("ANNOUNCE_TOKEN_SECRET")
	}
	if key == "" {
		key = os.Getenv("ANNOUNCE_PUBLISH_KEY")
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "announce token: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if channel == "" {
		fmt.Fprintln(stderr, "announce token: -c CHANNEL is required")
		return 2
	}
	ttl, err := token.ParseTTL(duration)
	if err != nil {
		fmt.Fprintln(stderr, "announce token: --duration:", err)
		return 2
	}
	sec := token.Secret(secret, key)
	if sec == nil {
		fmt.Fprintln(stderr, "announce token: no secret: pass --secret (or ANNOUNCE_TOKEN_SECRET) or --publish-key (or ANNOUNCE_PUBLISH_KEY), as the server has them")
		return 2
	}
	signer, err := token.NewSigner(sec, nil)
	if err != nil {
		fmt.Fprintln(stderr, "announce token:", err)
		return 1
	}
	tok, _, err := signer.Mint(token.Grant{Channel: channel, TTL: ttl, Publish: publish, Name: name})
	if err != nil {
		fmt.Fprintln(stderr, "announce token:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
