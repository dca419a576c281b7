// Command announce serves live announcements on named channels over
// long-poll, Server-Sent Events and WebSocket, and is its own client.
package main

import (
	"fmt"
	"os"

	"github.com/announce/announce/internal/cli"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	run, ok := cli.Commands[cmd]
	if !ok {
		fmt.Fprintf(os.Stderr, "announce: unknown command %q (commands: serve, pub, sub, bench, token, version)\n", cmd)
		os.Exit(2)
	}
	os.Exit(run(args, os.Stdin, os.Stdout, os.Stderr))
}
