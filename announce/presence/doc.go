// Package presence tracks who observes which channel: observer counts per
// transport and the names observers chose, on this node and, through a
// Backend, across every node of the service. It also turns the API's raw
// attach and detach calls into sessions (a long-poll client between two
// polls stays present for a grace period) and feeds them, once each, to
// other announce.Events sinks such as webhooks, and it can deliver join and
// leave events to the channel's streaming observers.
//
// Concurrency contract:
//   - The Tracker's lock guards its sessions, counts and listeners only; no
//     I/O happens under it. Sinks are called under it, in order per
//     session, so they must return at once (announce.Events says so).
//   - Every Backend operation runs on the tracker's own goroutines (the
//     syncer writes this node's state, the emitter computes and broadcasts
//     join and leave events), never on a request path. A slow or absent
//     backend delays presence, never delivery or publishing.
//   - Presence events go to each listener's small queue without waiting; a
//     full queue drops the event (they are best effort, not messages).
//
// The package knows neither HTTP nor Redis: announce/redis implements
// Backend, the API calls the Tracker.
package presence
