// Command announce serves live announcements on named channels over
// long-poll, Server-Sent Events and WebSocket, and is its own client.
package main

import (
	"os"

	"github.com/announce/announce/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
