// Package redis keeps announce's channels in Redis 7 and carries live
// messages between nodes over Redis pub/sub (--redis URL, scale-out mode).
//
// # Keys
//
// With the default prefix "announce:" a channel ch uses:
//
//	announce:{ch}:id         string   the channel's last id (INCR); absent means 0
//	announce:{ch}:history    list     message JSON, oldest first, at most History long
//	announce:{ch}            pub/sub  topic carrying each new message's JSON
//	announce:{ch}:published  string   on Sentinel: the last id published (see Sentinel)
//
// The set announce:channels names every channel (admin.go): it counts them
// for --max-channels and lists them for --channel-ttl.
//
// Scheduled and expiring messages add announce:{ch}:scheduled and two
// global keys, announce:schedule:due and announce:schedule:data; see
// schedule.go. On Redis Cluster they are announce:{ch}:scheduled,
// announce:{ch}:schedule:data and an index of the channels with schedules
// under the tag {#schedules}; see schedule_cluster.go.
//
// Presence (Presence, presence.go) adds announce:{ch}:presence: a hash of
// each node's observers of the channel, and a pub/sub topic of the same
// name carrying join and leave events.
//
// Idempotency (Store.Idempotency, idempotency.go) adds, per Idempotency-Key
// k of channel ch, announce:{ch}:idem:k: a string holding "pending:<token>"
// (SET NX, 30 s expiry) while one node publishes, then the record
// {"message": <message JSON>} for the TTL (24 h). The key may contain any
// printable ASCII, so it ends the name.
//
// Raw ingest (Store.Ingest, ingest.go) adds announce:ingest:<hash of the
// names>: a string holding the ingesting node's random token, set NX with a
// lease expiry and renewed by that node alone. The Redis Function library
// "announce" (function.go) holds announce_publish, whose body is the
// append script itself, and announce_version.
//
// The current message is the last element of the history list, so there is
// no third key to keep in step with the other two. The braces are a Redis
// Cluster hash tag: both keys of a channel land in one slot, which the
// append script needs. Channel names cannot contain braces (see
// announce.ValidateChannel), so the tag is always the whole name.
//
// # Atomicity and order
//
// Append is one Lua script: INCR the id, build the message JSON, RPUSH and
// LTRIM the history and PUBLISH the JSON (on Sentinel the PUBLISH comes in
// a second script, once a replica has the message; see Sentinel). Redis runs scripts one at a time,
// so ids, history order and pub/sub order are the same sequence on every
// node. The JSON is byte-identical to encoding/json's encoding of
// announce.Message: Go encodes the message with id 0 and the script only
// splices the real id in (see script.go).
//
// # Sentinel
//
// Replication is asynchronous: a failover loses what the old master had
// not yet sent to the replica, and the new master's INCR gives those ids
// again. So on Sentinel nobody may learn of a message before a replica has
// it, neither its publisher nor any observer:
//
//   - Append runs the script without its PUBLISH, then WAIT 1 on the same
//     connection, then (only if a replica confirmed) a second script that
//     publishes every stored entry above the channel's published watermark
//     up to this id, in id order, and moves the watermark there. The HTTP
//     answer comes after that. Fire (schedules) does the same.
//   - Since and Current serve entries above the watermark only after a
//     replica confirmed them (INCR of a key of its own and WAIT 1: the
//     replication stream is in order), which publishes them too. Without a
//     replica Since stops at the watermark and Current fails: answering an
//     older message would look like a sequence gone back.
//   - An idempotent replay is answered once a replica has the record, after
//     the same publish.
//
// A node that dies after WAIT but before publishing leaves a replicated
// message that nobody saw or was told of: the next publish or read of the
// channel publishes it (its publisher got no 201; it appears as an
// unacknowledged message, as a 503 with the outcome unknown may). A message
// whose WAIT failed is held the same way; if a failover follows, it is
// gone, and its id goes to another message, but nobody saw the first.
//
// Every id anybody saw is at most the watermark on the master of the time,
// and a replica had it first; Sentinel promotes that replica, whose id key
// is then at least that id (INCR and RPUSH replicate with the entry), so
// the new master never gives a seen id again. Its watermark may be lower
// (the SET that moved it may not have been replicated): then entries above
// it that observers saw are published again, which nodes drop by id, and
// reads confirm them before serving. FCALL cannot wait in a script: on
// Sentinel announce_publish publishes at once, held entries before it
// included, and moves the watermark (docs/operations.md).
//
// # Redis Cluster
//
// With a redis+cluster:// URL the client is go-redis's ClusterClient.
// Scripts publish by SPUBLISH (sharded pub/sub, in the channel's slot),
// and the Broker keeps one SSUBSCRIBE connection per master, routing each
// channel to the master of its slot and following it when the slot moves
// (broker_cluster.go). The function library is loaded on every master.
//
// # Memory
//
// A channel costs about History × (len(JSON) + ~30 bytes of list-node
// overhead) plus ~100 bytes for its two keys. The JSON is the content plus
// about 90 bytes plus the channel name, so 100 messages of 200 bytes take
// roughly 30 KB (MEMORY USAGE on Redis 7: 28.9 KB). Large strings are
// rounded up to the allocator's size class: 100 of the largest (64 KiB)
// messages take about 8 MB (measured: 8.2 MB), not 6.5.
// Keys never expire: ids must not restart while clients hold cursors.
//
// # Redis requirements
//
// Run Redis with maxmemory-policy noeviction (the default): evicting an id
// key would restart the channel's sequence at 1.
package redis
