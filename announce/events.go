package announce

import "time"

// Session is one observer's attachment to a channel, as presence and
// webhooks see it: from Connected to Disconnected.
//
// A WebSocket or SSE session is one connection. A long-poll session is one
// client across its polls: each poll's ID is its client's cookie, the one
// it presented or the one its answer issues; the presence tracker keeps the
// session for a grace period after each poll, so a client between two polls
// is still present.
type Session struct {
	// ID identifies the session; unique on this node (stream IDs include
	// the node's ID, so they are unique across nodes too).
	ID        string
	Channel   string
	Transport Transport
	// Name is the name the observer chose (?name=) or its token's holder;
	// empty for anonymous observers.
	Name string
	// Time is when the event happened.
	Time time.Time
	// Fingerprint, for a long-poll, tells apart clients that keep no
	// cookie (the API hashes their address, User-Agent and name). A poll
	// whose ID the tracker does not know continues the session its
	// fingerprint began, until a poll of that session presents its cookie.
	Fingerprint string
	// Issued, for a long-poll, reports that ID is the cookie this poll's
	// answer gives its client, which had none; otherwise the client
	// presented ID, and the session is its cookie's from then on.
	Issued bool
}

// Publication is an accepted publish, as webhooks see it.
type Publication struct {
	Message
	// Via is how it was published: "http" or "ws" (or another source,
	// such as a scheduler, naming itself).
	Via string
	// Name is the publisher's name when it has one (its token's holder, or
	// the name a WebSocket observer chose); empty otherwise.
	Name string
}

// Events receives what happens to channels' observers and messages. The API
// calls it; presence and webhooks are fed from it.
//
// Implementations must return at once, never waiting on the network or a
// client: they are called on the paths that deliver and publish messages.
// Calls for one session come in order (Connected before Disconnected), but
// calls for different sessions may come concurrently.
type Events interface {
	// Connected reports an observer attaching. For long-poll it is called
	// for every poll with the client's session ID.
	Connected(Session)
	// Disconnected reports an observer detaching, also when its connection
	// was lost or the server shuts down. For long-poll it is called when
	// each poll is answered.
	Disconnected(Session)
	// Published reports a message committed by the store and accepted on
	// this node (once per message, on the node that accepted it).
	Published(Publication)
}
