// Package client is the Go client of an announce server: it publishes
// messages and observes channels over WebSocket, Server-Sent Events or
// HTTP long-poll, resuming by its cursor after every disconnect.
//
//	c, err := client.New(client.Config{Server: "http://127.0.0.1:8000"})
//	m, err := c.Publish(ctx, "ops", "Server maintenance at 22:00")
//	sub := c.Subscribe(ctx, "ops", client.SubscribeOptions{Transport: client.SSE})
//	for m := range sub.Messages() { ... }
//
// A Subscription delivers each message of a channel once, in id order: it
// remembers the id of the last message it delivered, reconnects by itself
// with exponential backoff and jitter, asks the server for everything after
// that id, and drops anything at or below it. When the server's history no
// longer reaches back to the cursor it says so with a Truncated event rather
// than pretending nothing was missed; when the server's ids went back (its
// store was reset) it reports a Reset event and starts over from the new
// sequence's first message instead of dropping it all as old.
//
// Publish retries network errors and 502/503/504 answers with backoff, under
// one Idempotency-Key, and never retries a 4xx. The server's refusals come
// back as *Error with the HTTP status and the server's reason.
//
// The announce command line (pub, sub and bench) is built on this package.
package client
