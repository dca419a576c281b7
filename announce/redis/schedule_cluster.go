package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// Schedules on Redis Cluster.
//
// A firing writes the schedule's keys and the channel's keys in one script,
// and Cluster runs a script only on keys of one slot. So on Cluster every
// schedule key is the channel's own (its {channel} hash tag):
//
//	announce:{ch}:scheduled       sorted set  the channel's schedule ids by time (also its due set)
//	announce:{ch}:schedule:data   hash        schedule id -> record
//
// and the same scripts as on one Redis run with the channel's sorted set
// as the due set. Due must still find the channels with something due
// without visiting them all, through an index in one slot of its own:
//
//	announce:{#schedules}:channels  sorted set  channel, scored no later than its earliest schedule
//	announce:{#schedules}:touched   hash        channel -> a unique number, new at every touch
//	announce:{#schedules}:seq       string      the source of those numbers
//
// The index may score a channel too early (Due then looks and corrects
// it), never too late. A Schedule (and a Fire that adds an expiry) touches
// the channel, lowering its score to the new schedule's (ZADD LT) and
// renewing its number, before and after its script. Due reads a channel's
// score and number, then the channel, then sets the score to the channel's
// earliest schedule (or drops it when none) only if the number is
// unchanged: a Schedule that ran in between leaves its lower score in
// place, so no schedule is ever indexed later than it is due. ('#' cannot
// be in a channel name, so no channel shares the index's tag.)

func (k keys) scheduleIndex() string        { return k.prefix + "{#schedules}:channels" }
func (k keys) scheduleTouched() string      { return k.prefix + "{#schedules}:touched" }
func (k keys) scheduleSeq() string          { return k.prefix + "{#schedules}:seq" }
func (k keys) dataOn(channel string) string { return k.prefix + "{" + channel + "}:schedule:data" }

func (k keys) indexKeys() []string {
	return []string{k.scheduleIndex(), k.scheduleTouched(), k.scheduleSeq()}
}

// touchScript indexes channel ARGV[1] no later than score ARGV[2].
//
//	KEYS the index keys (index, touched, seq)
var touchScript = goredis.NewScript(`
redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], redis.call('INCR', KEYS[3]))
return 1
`)

// indexDueScript returns the first index score after ARGV[1] (” when
// none), then channel and number of at most ARGV[2] channels scored
// ARGV[1] or less, earliest first.
var indexDueScript = goredis.NewScript(`
local chs = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local nxt = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
local out = {nxt[2] or ''}
for _, ch in ipairs(chs) do
  out[#out + 1] = ch
  out[#out + 1] = redis.call('HGET', KEYS[2], ch) or ''
end
return out
`)

// settleScript scores channel ARGV[1] at ARGV[3] (” drops it) if its
// number is still ARGV[2].
var settleScript = goredis.NewScript(`
if (redis.call('HGET', KEYS[2], ARGV[1]) or '') ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
`)

// touch indexes channel for a schedule at the given score.
func (s *Store) touch(ctx context.Context, channel, at string) error {
	if err := touchScript.Run(ctx, s.client, s.keys.indexKeys(), channel, at).Err(); err != nil {
		return unavailable("schedule index", err)
	}
	return nil
}

// clusterDue is Due on Cluster: the index's due channels, each read and
// its index score corrected.
func (s *Store) clusterDue(ctx context.Context, now time.Time, limit int) ([]announce.Scheduled, time.Time, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if limit <= 0 {
		limit = -1 // LIMIT 0 -1: all
	}
	raws, err := indexDueScript.Run(ctx, s.client, s.keys.indexKeys(), score(now), limit).StringSlice()
	if err != nil {
		return nil, time.Time{}, unavailable("due", err)
	}
	if len(raws) == 0 || len(raws)%2 != 1 {
		return nil, time.Time{}, fmt.Errorf("redis: due index answered %d values", len(raws))
	}
	next, err := parseScore(raws[0])
	if err != nil {
		return nil, time.Time{}, err
	}
	var due []announce.Scheduled
	for i := 1; i < len(raws); i += 2 {
		channel, number := raws[i], raws[i+1]
		got, after, err := s.runDue(ctx, s.scheduleKeys(channel)[:2], now, limit)
		if err != nil {
			return nil, time.Time{}, err
		}
		settle := "" // nothing left
		switch {
		case len(got) > 0:
			settle = score(got[0].At) // still due until fired
		case !after.IsZero():
			settle = score(after)
		}
		if err := settleScript.Run(ctx, s.client, s.keys.indexKeys(), channel, number, settle).Err(); err != nil {
			return nil, time.Time{}, unavailable("due", err)
		}
		if !after.IsZero() && (next.IsZero() || after.Before(next)) {
			next = after
		}
		due = append(due, got...)
	}
	announce.SortScheduled(due)
	if limit > 0 && len(due) > limit {
		due = due[:limit]
	}
	return due, next, nil
}

// parseScore reads a sorted set score in Unix milliseconds; ” is zero.
func parseScore(raw string) (time.Time, error) {
	if raw == "" {
		return time.Time{}, nil
	}
	ms, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("redis: due score %q: %w", raw, err)
	}
	return time.UnixMilli(int64(ms)).UTC(), nil
}

// clusterScheduledTotal adds up the schedules of the indexed channels.
func (s *Store) clusterScheduledTotal(ctx context.Context) (int, error) {
	channels, err := s.client.ZRange(ctx, s.keys.scheduleIndex(), 0, -1).Result()
	if err != nil {
		return 0, unavailable("scheduled total", err)
	}
	cmds, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, ch := range channels {
			p.ZCard(ctx, s.keys.scheduledOn(ch))
		}
		return nil
	})
	if err != nil {
		return 0, unavailable("scheduled total", err)
	}
	total := 0
	for _, c := range cmds {
		total += int(c.(*goredis.IntCmd).Val())
	}
	return total, nil
}
