// Package conn is the connection machinery under api's transports: it takes
// a connection over from net/http, watches it without a goroutine, writes
// to it, closes it and hands it back to net/http.
//
// An idle streaming observer is a socket that nobody reads and nobody
// writes. Parking a goroutine on it costs a stack per connection; here a
// Poller watches every such socket with one epoll instance and calls back
// when one becomes readable, and a Serial runs a connection's work in a
// goroutine that exists only while there is work, on a bounded Pool.
//
// A Session is the one lifecycle of every connection served by hand
// (WebSocket, event stream, deferred long-poll answer): NewSession counts
// it in the server's streams, Start (hijacked) or Serve (ResponseWriter)
// begins it, its work runs for Wake reasons, and Close, Linger or HandBack
// ends it (Abandon when it never began). Start-up failures keep their own
// reason: WakeWatchFailed, not WakeShutdown.
//
// Ownership. From the hijack on, a connection belongs to its Session, and
// only the Session's work (on its Serial, never two runs at once) reads
// from it, writes to it or ends it; the handler that hijacked it no longer
// touches it. WriteNow writes to the bare descriptor, which is safe only
// because that owner is the one who would close it. A ResponseWriter
// session writes only from its work, while its handler waits in Serve.
// Once ended, the connection is closed, lingered on (lingerClose, on a
// goroutine of its own) or given to net/http, which owns it from then on.
//
// Hand-back. HandBack gives a connection back to net/http, through the
// Listener's Accept, only when the whole answer was written, the client did
// not ask to close (Connection: close, HTTP/1.0; see WantsClose) and the
// server is not stopping; otherwise the answer says Connection: close and
// the connection is closed. What the client sent ahead (its next request,
// pipelined) is replayed first by a prefixConn, which has no descriptor to
// watch while it still holds bytes (Buffered); a TLS connection keeps its
// state for Request.TLS (tlsStateConn). handBack never waits: a full queue
// or a closed listener closes the connection.
//
// Locks, in the order they may be taken (never the reverse):
//
//	Poller.mu      held while callbacks run: a callback kicks a Serial
//	  → Pool.mu    a kick may queue the Serial; a leaf
//
// announce's Channel.mu and the presence tracker's lock are held while an
// observer's or listener's notify kicks a Serial, so they too come before
// Pool.mu. Serial is lock-free (atomics) and holds nothing while work runs.
// Registry.mu and Listener.mu are leaves: Registry.Shutdown calls its
// callbacks after unlocking, and nothing is called under Listener.mu. No
// lock is held across network I/O. A function that must be called with a
// lock held ends in Locked; a field a lock guards says "guarded by".
package conn
