package redis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// appendLua is the whole of Append, atomic because Redis runs one script at
// a time: the id, the history and the pub/sub order can never disagree. It
// is also the body of the announce_publish function (function.go), so an
// FCALL appends exactly as an HTTP publish does.
//
//	KEYS[1] id key, KEYS[2] history key
//	ARGV[1] the message JSON after the id (see jsonTail)
//	ARGV[2] history length, ARGV[3] pub/sub topic
//
// It returns the new id. string.format('%d') rather than `..` on the number:
// Lua 5.1 prints large numbers as 1.2e+14, which would not be JSON we want.
//
// With an Idempotency-Key (KEYS[3] its key, ARGV[4] the publishing call's
// pending marker, ARGV[5] the record's TTL in ms) the record is written in
// the same step, so a retry after a lost reply or a dead node finds the
// message instead of publishing it again; and without the marker in place
// nothing is appended (-1): a script that reaches Redis late, after its
// caller gave up and released the marker, cannot publish a second copy.
//
// storeLua is its first part, everything but the PUBLISH: on Sentinel the
// message is published only once a replica has it (sentinel.go).
const (
	storeLua = `
if KEYS[3] and redis.call('GET', KEYS[3]) ~= ARGV[4] then return -1 end
local id = redis.call('INCR', KEYS[1])
local msg = '{"id":' .. string.format('%d', id) .. ARGV[1]
redis.call('RPUSH', KEYS[2], msg)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
if KEYS[3] then redis.call('SET', KEYS[3], '{"message":' .. msg .. '}', 'PX', ARGV[5]) end
`
	appendLua = storeLua + `redis.call('PUBLISH', ARGV[3], msg)
return id
`
)

var (
	appendScript        = goredis.NewScript(appendLua)
	shardedAppendScript = goredis.NewScript(sharded(appendLua))
)

// sharded turns a script's PUBLISH into SPUBLISH, for Redis Cluster: a
// shard channel's messages reach only the nodes of its slot's shard, where
// the broker subscribes (broker_cluster.go), instead of every node of the
// cluster. The topic carries the channel's hash tag, so it is in the slot
// of the keys the script writes, as Cluster requires.
func sharded(lua string) string {
	return rewrite(lua, "redis.call('PUBLISH'", "redis.call('SPUBLISH'")
}

// rewrite replaces the one occurrence of old in a script's source with new,
// at package init: a script edited so that old is gone panics at start
// instead of silently keeping what the variant must not do (a PUBLISH
// before the replica's confirmation, a PUBLISH that reaches every shard).
func rewrite(lua, old, new string) string {
	if strings.Count(lua, old) != 1 {
		panic(fmt.Sprintf("redis: script variant: want exactly one %q in its source", old))
	}
	return strings.Replace(lua, old, new, 1)
}

// sinceScript returns the history entries with id > since, oldest first, at
// most limit of them (limit <= 0: all). The history holds consecutive ids
// ending at the id key's value, so the first wanted index is computed rather
// than found by decoding every entry; reading both keys in one script keeps
// the two consistent.
//
//	KEYS[1] id key, KEYS[2] history key
//	ARGV[1] since, ARGV[2] limit
var sinceScript = goredis.NewScript(sinceRangeLua + `
if start >= n then return {} end
return redis.call('LRANGE', KEYS[2], start, stop)
`)

// sinceRangeLua computes the indexes start..stop of the history entries
// sinceScript returns; none when start >= n.
const sinceRangeLua = `
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = redis.call('LLEN', KEYS[2])
local since = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local first = last - n + 1
local start = 0
if since >= first then start = since - first + 1 end
local stop = n - 1
if limit > 0 and stop - start + 1 > limit then stop = start + limit - 1 end
`

// jsonHead is what encoding/json writes for a Message before the id's digits.
const jsonHead = `{"id":`

// jsonTail returns m's JSON after the id: `,"channel":...}`. Encoding the
// whole message with encoding/json and cutting at the id makes the stored
// JSON byte-identical to json.Marshal of the returned Message by
// construction, whatever escaping or omitzero rules the struct tags imply;
// the script only splices the id in.
func jsonTail(m announce.Message) ([]byte, error) {
	m.ID = 0
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("redis: encode message: %w", err)
	}
	const head = jsonHead + "0,"
	if !bytes.HasPrefix(b, []byte(head)) {
		// Only a change to announce.Message's field order gets here.
		return nil, fmt.Errorf("redis: message JSON does not start with %q: %.40s", head, b)
	}
	return b[len(head)-1:], nil
}
