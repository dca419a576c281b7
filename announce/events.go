package announce

import "time"

// Session is one observer's attachment to a channel, as presence and
// webhooks see it: from Connected to Disconnected.
//
// A WebSocket or SSE session is one connection. A long-poll session is one
// client across its polls: the API gives every poll of a client the same ID,
// and the presence tracker keeps the session for a grace period after each
// poll, so a client between two polls is still present.
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
	// Alias, for a long-poll session, is the ID its client's first poll had,
	// before the client had a session cookie: a session present under that
	// ID continues under ID (keeping its original ID) rather than counting
	// the client twice.
	Alias string
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
