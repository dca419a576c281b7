package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// Channel administration (announce.ChannelAdmin). The set announce:channels
// names every channel that has a sequence: Append adds a channel when it
// gives id 1, and Delete removes it. Channels made before the set existed
// are not in it, so they are neither counted nor aged. Delete runs as one
// script over the channel's keys and the global schedule keys. On Redis
// Cluster the schedule keys are the channel's own and the set is in
// another slot: the script then leaves the set (no KEYS[8]) to an SREM of
// its own, and the schedule index's entry to the next Due, which drops it.

var _ announce.ChannelAdmin = (*Store)(nil)

// deletedNotice is what a channel's topic carries when the channel is
// deleted; no message encodes to it (a message has an id).
const deletedNotice = `{"event":"deleted"}`

func (k keys) channels() string { return k.prefix + "channels" }

// deleteScript removes a channel: its id, history and schedules (from the
// global due and data keys too), its idempotency keys, and its name; then
// it tells every node on the channel's topic, so each closes its observers.
//
//	KEYS[1] id, KEYS[2] history, KEYS[3] the channel's schedules,
//	KEYS[4] due, KEYS[5] data, KEYS[6] the topic, KEYS[7] the published
//	watermark (sentinel.go), KEYS[8] channels (not on Cluster)
//	ARGV[1] the channel, ARGV[2] the pattern of its idempotency keys,
//	ARGV[3] deletedNotice
const deleteLua = `
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[7])
if KEYS[8] then redis.call('SREM', KEYS[8], ARGV[1]) end
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do redis.call('DEL', k) end
until cursor == '0'
redis.call('PUBLISH', KEYS[6], ARGV[3])
return 1
`

var (
	deleteScript        = goredis.NewScript(deleteLua)
	shardedDeleteScript = goredis.NewScript(sharded(deleteLua))
)

// noteChannel adds a channel that just got id 1 to the set. Its failure
// costs only the count's accuracy, never the message, which is stored.
func (s *Store) noteChannel(ctx context.Context, channel string) {
	if err := s.client.SAdd(ctx, s.keys.channels(), channel).Err(); err != nil {
		s.log.Warn("redis: recording a new channel failed; --max-channels undercounts it", "channel", channel, "err", err)
	}
}

// Channels implements announce.ChannelAdmin.
func (s *Store) Channels(ctx context.Context) (int, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := s.client.SCard(ctx, s.keys.channels()).Result()
	if err != nil {
		return 0, unavailable("channels", err)
	}
	return int(n), nil
}

// Delete implements announce.ChannelAdmin.
func (s *Store) Delete(ctx context.Context, channel string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	sk := s.scheduleKeys(channel) // the channel's, due and data
	keys := []string{s.keys.id(channel), s.keys.history(channel), sk[2], sk[0], sk[1], s.keys.topic(channel),
		s.keys.published(channel)}
	script := shardedDeleteScript
	if !s.cluster {
		keys = append(keys, s.keys.channels())
		script = deleteScript
	}
	if err := script.Run(ctx, s.client, keys, channel, s.keys.idempotency(channel, "*"), deletedNotice).Err(); err != nil {
		return unavailable("delete", err)
	}
	if s.cluster {
		if err := s.client.SRem(ctx, s.keys.channels(), channel).Err(); err != nil {
			return unavailable("delete", err)
		}
	}
	return nil
}

// Idle implements announce.ChannelAdmin: it scans the set and reads each
// channel's current message.
func (s *Store) Idle(ctx context.Context, before time.Time, limit int) ([]string, error) {
	var out []string
	var cursor uint64
	for {
		names, next, err := s.client.SScan(ctx, s.keys.channels(), cursor, "", 1000).Result()
		if err != nil {
			return nil, unavailable("idle", err)
		}
		for _, name := range names {
			m, err := s.Current(ctx, name)
			if err != nil {
				return nil, err
			}
			if (m.ID == 0 || m.Time.Before(before)) && len(out) < limit {
				out = append(out, name)
			}
		}
		if cursor = next; cursor == 0 || len(out) >= limit {
			return out, nil
		}
	}
}

// ScheduledTotal implements announce.ChannelAdmin.
func (s *Store) ScheduledTotal(ctx context.Context) (int, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if s.cluster {
		return s.clusterScheduledTotal(ctx)
	}
	n, err := s.client.ZCard(ctx, s.keys.scheduleDue()).Result()
	if err != nil {
		return 0, unavailable("scheduled total", err)
	}
	return int(n), nil
}
