package client

import (
	"fmt"
	"strconv"
	"time"
)

// EventKind says what happened to a subscription's connection.
type EventKind int

// The events a subscription reports.
const (
	// Connected: a connection is established and observing.
	Connected EventKind = iota + 1
	// Reconnecting: the connection failed or ended (Err); the next attempt
	// comes after Delay.
	Reconnecting
	// Truncated: the server's history no longer reached back to the
	// cursor; messages Since+1 .. First-1 were missed.
	Truncated
	// Reset: the server's ids went back behind the cursor Since (its store
	// was reset; First is the id it answered with): every message it holds
	// is news, so the subscription starts over from id 0.
	Reset
)

func (k EventKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Truncated:
		return "truncated"
	case Reset:
		return "reset"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is a change in a subscription's connection, for logs and status lines.
type Event struct {
	Kind      EventKind
	Transport Transport
	// URL is the endpoint connected to (Connected).
	URL string
	// Err is why the connection ended, Delay the wait before the next
	// attempt and Attempt the number of failures in a row (Reconnecting).
	Err     error
	Delay   time.Duration
	Attempt int
	// Since is the cursor and First the first id that follows it (Truncated, Reset).
	Since, First uint64
}

func (e Event) String() string {
	switch e.Kind {
	case Connected:
		return fmt.Sprintf("connected (%s) to %s", e.Transport, e.URL)
	case Reconnecting:
		return fmt.Sprintf("connection lost (%s): %v; reconnecting in %s (attempt %d)",
			e.Transport, e.Err, e.Delay.Round(time.Millisecond), e.Attempt)
	case Truncated:
		return fmt.Sprintf("missed messages %d..%d: the server's history no longer holds them", e.Since+1, e.First-1)
	case Reset:
		return fmt.Sprintf("the server's ids restarted (cursor %d, server now at %d): its store was reset; starting over from its first message", e.Since, e.First)
	}
	return e.Kind.String()
}
