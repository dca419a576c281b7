// Package api serves the announce HTTP API on gin: long-poll, Server-Sent
// Events and WebSocket observers side by side, publishing, the
// seed-compatible routes and the demo page. It keeps HTTP; what works on
// raw connections lives in internal/conn.
//
// Reading order for a newcomer:
//
//   - config.go, router.go: Config (its defaults and Validate), New, the
//     routes and their middleware (CORS, no-store, body deadline, query
//     and channel-name checks), Shutdown(ctx).
//   - Transports. longpoll.go (/status) and messages.go (/messages?wait=)
//     parse their query and wait in one place, awaitChange: over HTTP/1.1
//     the wait is deferred (deferred.go), the connection taken over and
//     answered by hand later; otherwise the handler waits. sse.go and
//     websocket.go subscribe, then hand the connection to a streamSession
//     (session.go) whose protocol (sse_session.go, websocket_session.go,
//     websocket_read.go) writes the replay, the frames, the keepalives and
//     the last words. An SSE stream that cannot be hijacked (HTTP/2,
//     HTTP/1.0) runs the same protocol through the ResponseWriter.
//   - The session core is conn.Session: one lifecycle (start, wake reasons
//     from one enum, end) for streams and deferred answers, the shutdown
//     registry and the hand-back of answered polls' connections to
//     net/http (Listener). internal/conn/doc.go says who owns a connection
//     and the lock order.
//   - Publishing: publish.go (POST, Idempotency-Key in idempotency.go,
//     scheduled publishes in schedule.go), delete.go, and a WebSocket's
//     publish frames (handleFrame in websocket.go).
//   - Auth: private.go and tokens.go. Channels under the private prefix
//     need a signed token (or the publish key) to observe; guardObserve
//     records what the credential allows (access), and a stream ends when
//     its token expires. Publishing needs the publish key when one is set.
//     ratelimit.go and clientip.go bound what one client may do.
//   - Presence (presence.go) reports every observer's attach and detach,
//     and webhooks receive them.
//   - Errors: the domain's sentinel errors (announce.ErrDeleted, ...) map
//     to statuses in one place (errors.go: statusOf, fail); every error is
//     JSON {"error": reason} with no-store, and a 500 never shows its cause.
//     Streams end with a reason of their own: an SSE error event, a
//     WebSocket close code (1001 shutdown, 1008 slow consumer or token
//     expired, 1011 internal error, ...).
//
// Concurrency: a handler never holds a lock across network I/O; each
// connection has one writer (the handler, or its session's work); the
// domain's observers never wait on a client (a full queue closes one as a
// slow consumer, which resumes from history).
package api
