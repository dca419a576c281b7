package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// Schedules (announce.ScheduleStore).
//
// Keys, with the default prefix:
//
//	announce:schedule:due       sorted set  schedule id, scored by its time in Unix milliseconds
//	announce:schedule:data      hash        schedule id -> the schedule's JSON (record)
//	announce:{ch}:scheduled     sorted set  the ids of channel ch's schedules, scored alike
//
// Every change is one Lua script, so the three always agree. Fire is the
// whole of a firing in one script: take the schedule (ZREM, HDEL; a node
// that finds it gone stops there: another node fired it, or it was
// cancelled), check an expiry's message is still current, append the
// message exactly like Append (INCR, RPUSH, LTRIM, PUBLISH) and put its
// expiry. Redis runs one script at a time, so a schedule fires once however
// many nodes poll, and a node dying mid-firing cannot half-fire one: either
// the script ran (the message is stored and published) or it did not (the
// schedule is still due and the next poll, on any node, fires it).
//
// Unlike Append's keys, a firing touches the global schedule keys and the
// channel's keys together, which needs a single Redis; on Redis Cluster
// the schedule keys are the channel's own instead (schedule_cluster.go).
//
// Each node compares schedule times with its own clock: keep the nodes'
// clocks in sync (NTP), or a fast one fires early.

func (k keys) scheduleDue() string               { return k.prefix + "schedule:due" }
func (k keys) scheduleData() string              { return k.prefix + "schedule:data" }
func (k keys) scheduledOn(channel string) string { return k.prefix + "{" + channel + "}:scheduled" }

var _ announce.ScheduleStore = (*Store)(nil)

// record is a schedule's JSON in the data hash. Expire comes first so that
// the fire script can write an expiry's record by splicing in the id it has
// just assigned (see jsonTail), and check which expiry it claims by the
// record's start.
type record struct {
	Expire  uint64    `json:"expire"`
	ID      string    `json:"id"`
	Channel string    `json:"channel"`
	Content string    `json:"content,omitempty"`
	At      time.Time `json:"at"`
	TTL     int64     `json:"ttl,omitempty"` // nanoseconds
}

const recordHead = `{"expire":`

func encodeRecord(sc announce.Scheduled) ([]byte, error) {
	b, err := json.Marshal(record{sc.Expire, sc.ID, sc.Channel, sc.Content, sc.At.UTC(), int64(sc.TTL)})
	if err != nil {
		return nil, fmt.Errorf("redis: encode schedule: %w", err)
	}
	return b, nil
}

// recordTail is sc's record after `{"expire":N`, N being filled in by the script.
func recordTail(sc announce.Scheduled) ([]byte, error) {
	sc.Expire = 0
	b, err := encodeRecord(sc)
	if err != nil {
		return nil, err
	}
	const head = recordHead + "0,"
	if !bytes.HasPrefix(b, []byte(head)) {
		return nil, fmt.Errorf("redis: schedule JSON does not start with %q: %.40s", head, b)
	}
	return b[len(head)-1:], nil
}

func decodeRecord(raw string) (announce.Scheduled, error) {
	var r record
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return announce.Scheduled{}, fmt.Errorf("redis: corrupt schedule %.60q: %w", raw, err)
	}
	return announce.Scheduled{ID: r.ID, Channel: r.Channel, Content: r.Content, At: r.At.UTC(),
		TTL: time.Duration(r.TTL), Expire: r.Expire}, nil
}

func score(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func (s *Store) scheduleKeys(channel string) []string {
	if s.cluster { // the channel's set is its due set too
		return []string{s.keys.scheduledOn(channel), s.keys.dataOn(channel), s.keys.scheduledOn(channel)}
	}
	return []string{s.keys.scheduleDue(), s.keys.scheduleData(), s.keys.scheduledOn(channel)}
}

// scheduleScript stores a schedule unless its channel holds max already.
//
//	KEYS[1] due, KEYS[2] data, KEYS[3] the channel's schedules
//	ARGV[1] id, ARGV[2] score, ARGV[3] record, ARGV[4] max (0: no limit)
var scheduleScript = goredis.NewScript(`
local max = tonumber(ARGV[4])
if max > 0 and redis.call('ZCARD', KEYS[3]) >= max then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
`)

// cancelScript removes the channel's schedule ARGV[1] and returns its
// record, or nil when the channel has no such schedule. KEYS as above.
var cancelScript = goredis.NewScript(`
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return false end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return rec or ''
`)

// pendingScript returns the records of the channel's first ARGV[1]
// schedules (0: all). KEYS as above.
var pendingScript = goredis.NewScript(`
local ids = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)
local out = {}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[2], id)
  if rec then out[#out + 1] = rec end
end
return out
`)

// dueScript returns the score of the first schedule after ARGV[1] (an
// empty string when none), then the records of at most ARGV[2] schedules
// scored ARGV[1] or less, earliest first. A due id without a record (only a
// hand-edited Redis has one) is dropped, so it cannot hold up the schedules
// behind it.
//
//	KEYS[1] due, KEYS[2] data
var dueScript = goredis.NewScript(`
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local nxt = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
local out = {nxt[2] or ''}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[2], id)
  if rec then out[#out + 1] = rec else redis.call('ZREM', KEYS[1], id) end
end
return out
`)

// fireScript is the whole of a firing (see the top of this file). It
// returns -1 when the schedule was not there to claim, 0 when an expiry
// found its message superseded, else the new message's id.
//
//	KEYS[1] due, KEYS[2] data, KEYS[3] the channel's schedules,
//	KEYS[4] the channel's id key, KEYS[5] its history key
//	ARGV[1] '1' to claim schedule ARGV[2], ARGV[3] the id it expires ('0': none)
//	ARGV[4] the message JSON after the id, ARGV[5] history length, ARGV[6] topic
//	ARGV[7] the expiry's schedule id ('' for no TTL), ARGV[8] its score,
//	ARGV[9] its record after the expired id
//
// A claim checks the record's start, `{"expire":N,`: the channel's expiry
// id may hold a newer expiry by now, which is not the one to take.
var fireScript = goredis.NewScript(fireLua)

// shardedFireScript is fireScript on Redis Cluster.
var shardedFireScript = goredis.NewScript(sharded(fireLua))

const fireLua = `
if ARGV[1] == '1' then
  local rec = redis.call('HGET', KEYS[2], ARGV[2])
  local head = '{"expire":' .. ARGV[3] .. ','
  if not rec or string.sub(rec, 1, #head) ~= head then return -1 end
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
end
if ARGV[3] ~= '0' and (redis.call('GET', KEYS[4]) or '0') ~= ARGV[3] then return 0 end
local id = redis.call('INCR', KEYS[4])
local msg = '{"id":' .. string.format('%d', id) .. ARGV[4]
redis.call('RPUSH', KEYS[5], msg)
redis.call('LTRIM', KEYS[5], -tonumber(ARGV[5]), -1)
redis.call('PUBLISH', ARGV[6], msg)
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[1], ARGV[8], ARGV[7])
  redis.call('HSET', KEYS[2], ARGV[7], '{"expire":' .. string.format('%d', id) .. ARGV[9])
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[7])
end
return id
`

// Schedule implements announce.ScheduleStore.
func (s *Store) Schedule(ctx context.Context, sc announce.Scheduled, max int) error {
	rec, err := encodeRecord(sc)
	if err != nil {
		return err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	if s.cluster { // index first: a node dying after the script leaves it findable
		if err := s.touch(ctx, sc.Channel, score(sc.At)); err != nil {
			return err
		}
	}
	ok, err := scheduleScript.Run(ctx, s.client, s.scheduleKeys(sc.Channel), sc.ID, score(sc.At), rec, max).Int()
	if err != nil {
		return unavailable("schedule", err)
	}
	if ok == 0 {
		return announce.ErrTooManyScheduled
	}
	if s.cluster { // and again, against a Due that read the channel before the script
		return s.touch(ctx, sc.Channel, score(sc.At))
	}
	return nil
}

// Cancel implements announce.ScheduleStore.
func (s *Store) Cancel(ctx context.Context, channel, id string) (announce.Scheduled, bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	raw, err := cancelScript.Run(ctx, s.client, s.scheduleKeys(channel), id).Text()
	if errors.Is(err, goredis.Nil) {
		return announce.Scheduled{}, false, nil
	}
	if err != nil {
		return announce.Scheduled{}, false, unavailable("cancel", err)
	}
	if raw == "" { // an id without a record: removed all the same
		return announce.Scheduled{ID: id, Channel: channel}, true, nil
	}
	sc, err := decodeRecord(raw)
	return sc, err == nil, err
}

// Pending implements announce.ScheduleStore.
func (s *Store) Pending(ctx context.Context, channel string, limit int) ([]announce.Scheduled, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	raws, err := pendingScript.Run(ctx, s.client, s.scheduleKeys(channel), max(limit, 0)).StringSlice()
	if err != nil {
		return nil, unavailable("pending", err)
	}
	out := make([]announce.Scheduled, 0, len(raws))
	for _, raw := range raws {
		sc, err := decodeRecord(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	announce.SortScheduled(out) // equal scores come in id order already; this also orders by nanosecond
	return out, nil
}

// Due implements announce.ScheduleStore. now is rounded down to the
// millisecond of the scores, and schedule times are whole milliseconds, so
// nothing is returned before its time.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]announce.Scheduled, time.Time, error) {
	if s.cluster {
		return s.clusterDue(ctx, now, limit)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	if limit <= 0 {
		limit = -1 // LIMIT 0 -1: all
	}
	return s.runDue(ctx, []string{s.keys.scheduleDue(), s.keys.scheduleData()}, now, limit)
}

// runDue runs the due script on a due set and data hash (keys): the due
// schedules and the time of the first after now.
func (s *Store) runDue(ctx context.Context, keys []string, now time.Time, limit int) ([]announce.Scheduled, time.Time, error) {
	raws, err := dueScript.Run(ctx, s.client, keys, score(now), limit).StringSlice()
	if err != nil {
		return nil, time.Time{}, unavailable("due", err)
	}
	if len(raws) == 0 {
		return nil, time.Time{}, fmt.Errorf("redis: due script answered nothing")
	}
	next, err := parseScore(raws[0])
	if err != nil {
		return nil, time.Time{}, err
	}
	var due []announce.Scheduled
	for _, raw := range raws[1:] {
		sc, err := decodeRecord(raw)
		if err != nil {
			return nil, time.Time{}, err
		}
		due = append(due, sc)
	}
	return due, next, nil
}

// Fire implements announce.ScheduleStore in one script (on Sentinel: with
// WAIT 1, then the publish, as Append).
//
// A timeout leaves the outcome unknown, as for Append: the script may have
// run with only its reply lost. Nothing is lost either way: if it ran, the
// message was published to every node; if not, the schedule is still due.
func (s *Store) Fire(ctx context.Context, f announce.Firing) (announce.Message, bool, error) {
	m := announce.Message{Channel: f.Channel, Content: f.Content, Time: f.Time.UTC(), Expired: f.Expire}
	tail, err := jsonTail(m)
	if err != nil {
		return announce.Message{}, false, err
	}
	claim := "0"
	if f.Claim {
		claim = "1"
	}
	var expID, expScore string
	var expTail []byte
	if f.TTL > 0 {
		exp := f.Expiry(m) // Expire (m's id) is spliced in by the script
		if expTail, err = recordTail(exp); err != nil {
			return announce.Message{}, false, err
		}
		expID, expScore = exp.ID, score(exp.At)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	script := fireScript
	if s.cluster {
		script = shardedFireScript
		if expID != "" { // the expiry is a new schedule: indexed as Schedule does
			if err := s.touch(ctx, f.Channel, expScore); err != nil {
				return announce.Message{}, false, err
			}
		}
	}
	keys := append(s.scheduleKeys(f.Channel), s.keys.id(f.Channel), s.keys.history(f.Channel))
	args := []any{claim, f.ID, strconv.FormatUint(f.Expire, 10),
		tail, s.history, s.keys.topic(f.Channel),
		expID, expScore, expTail}
	var id int64
	if s.confirm {
		id, err = s.appendHeld(ctx, heldFireScript, f.Channel, keys, args...)
	} else {
		id, err = script.Run(ctx, s.client, keys, args...).Int64()
	}
	if err != nil {
		if outcomeUnknown(err) {
			s.log.Warn("redis fire timed out; the schedule may still have fired", "channel", f.Channel, "schedule", f.ID, "err", err)
		}
		return announce.Message{}, false, unavailable("fire", err)
	}
	if id <= 0 {
		return announce.Message{}, false, nil
	}
	m.ID = uint64(id)
	if s.cluster && expID != "" {
		if err := s.touch(ctx, f.Channel, expScore); err != nil {
			// The message is out; the expiry is indexed by the first touch
			// unless a Due settled the channel in between.
			s.log.Warn("redis: indexing a scheduled expiry", "channel", f.Channel, "err", err)
		}
	}
	if m.ID == 1 {
		s.noteChannel(ctx, f.Channel)
	}
	return m, true, nil
}
