package redis

import (
	"context"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// On Sentinel a message is stored, then confirmed by a replica (WAIT 1),
// then published: observers never see a message a failover could take back
// (see the package doc, "Sentinel"). The channel's published key is the
// watermark between the two: every id up to it was published, and every
// one of those a replica had first. Reads serve nothing above it unless a
// replica confirms it first, which also publishes it.

// published names the channel's watermark: the last id published.
func (k keys) published(channel string) string {
	return k.prefix + "{" + channel + "}:published"
}

// publishHeldLua defines publish_held: it publishes the stored entries
// from the watermark + 1 up to upto, in id order, and moves the watermark
// to upto. The caller knows a replica has upto, hence all before it
// (replication keeps order). An entry that was published already (another
// node's release covered it) is not published again; one older than the
// history is gone and skipped (the nodes see the gap and read the
// history). Without a watermark (a channel from before it existed) only
// upto itself is published.
const publishHeldLua = `
local function publish_held(idk, histk, pubk, upto, topic)
  local last = tonumber(redis.call('GET', idk) or '0')
  if upto > last then upto = last end
  if upto <= 0 then return 0 end
  local w = redis.call('GET', pubk)
  if w then w = tonumber(w) else w = upto - 1 end
  if upto <= w then return w end
  local n = redis.call('LLEN', histk)
  local first = last - n + 1
  local from = w + 1
  if from < first then from = first end
  if from <= upto then
    for _, m in ipairs(redis.call('LRANGE', histk, from - first, upto - first)) do
      redis.call('PUBLISH', topic, m)
    end
  end
  redis.call('SET', pubk, string.format('%d', upto))
  return upto
end
`

var (
	// heldAppendScript is Append's script without its PUBLISH.
	heldAppendScript = goredis.NewScript(storeLua + "return id\n")
	// heldFireScript is Fire's script without its PUBLISH.
	heldFireScript = goredis.NewScript(rewrite(fireLua, "redis.call('PUBLISH', ARGV[6], msg)\n", ""))

	// publishHeldScript runs publish_held.
	//
	//	KEYS[1] id key, KEYS[2] history key, KEYS[3] published key
	//	ARGV[1] upto, ARGV[2] topic
	publishHeldScript = goredis.NewScript(publishHeldLua +
		"return publish_held(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), ARGV[2])\n")

	// heldSinceScript is sinceScript (KEYS[3] the published key) with the
	// watermark first in its answer ('-1' when there is none).
	heldSinceScript = goredis.NewScript(sinceRangeLua + `
local out = {}
if start < n then out = redis.call('LRANGE', KEYS[2], start, stop) end
table.insert(out, 1, redis.call('GET', KEYS[3]) or '-1')
return out
`)

	// heldCurrentScript answers the watermark ('-1': none) and the last
	// history entry ('': none).
	//
	//	KEYS[1] history key, KEYS[2] published key
	heldCurrentScript = goredis.NewScript(`
return {redis.call('GET', KEYS[2]) or '-1', redis.call('LINDEX', KEYS[1], -1) or ''}
`)
)

// heldLibraryBody is the function library's append on Sentinel: a script
// cannot wait for a replica, so an FCALL publishes at once, with every
// held entry before it (see the package doc).
const heldLibraryBody = publishHeldLua + storeLua +
	"publish_held(KEYS[1], KEYS[2], ARGV[3] .. ':published', id, ARGV[3])\nreturn id\n"

// evalConfirmed runs script and, in the same round trip on the same
// connection, WAIT 1: its answer counts only once a replica has the
// script's writes. It returns the script's integer answer.
func (s *Store) evalConfirmed(ctx context.Context, script *goredis.Script, keys []string, args ...any) (int64, error) {
	var eval, wait *goredis.Cmd
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		eval = script.Eval(ctx, p, keys, args...)
		wait = p.Do(ctx, "WAIT", 1, (s.opTimeout / 2).Milliseconds())
		return nil
	})
	n, eerr := eval.Int64()
	if eerr != nil {
		return 0, eerr
	}
	w, werr := wait.Int64()
	switch {
	case werr != nil:
		return 0, fmt.Errorf("waiting for a replica: %w", werr)
	case w < 1:
		return 0, fmt.Errorf("no replica confirmed the write (answer %d): %w", n, context.DeadlineExceeded)
	}
	return n, err
}

// appendHeld is Append's step on Sentinel (and, with heldFireScript,
// Fire's): the script stores (no PUBLISH) with WAIT 1, then the entry is
// published. A node that dies between the two leaves a stored, replicated
// message that nobody saw and nobody was told about; the next publish of
// the channel, or the next read that reaches it, publishes it.
func (s *Store) appendHeld(ctx context.Context, script *goredis.Script, channel string, keys []string, args ...any) (int64, error) {
	id, err := s.evalConfirmed(ctx, script, keys, args...)
	if err != nil || id <= 0 {
		return id, err
	}
	if err := s.publishHeld(ctx, channel, uint64(id)); err != nil {
		return 0, fmt.Errorf("id %d is stored and replicated, publishing it: %w", id, err)
	}
	return id, nil
}

// publishHeld publishes channel's held entries up to upto, which a replica
// has confirmed.
func (s *Store) publishHeld(ctx context.Context, channel string, upto uint64) error {
	return publishHeldScript.Run(ctx, s.client,
		[]string{s.keys.id(channel), s.keys.history(channel), s.keys.published(channel)},
		strconv.FormatUint(upto, 10), s.keys.topic(channel)).Err()
}

// confirmAndPublish waits until a replica has every write so far, then
// publishes channel's held entries up to upto: a read that found them,
// or an idempotent replay answering one, may then serve them.
func (s *Store) confirmAndPublish(ctx context.Context, channel string, upto uint64) error {
	if err := s.confirmReplicated(ctx); err != nil {
		return err
	}
	if err := s.publishHeld(ctx, channel, upto); err != nil {
		return unavailable("publishing held messages", err)
	}
	return nil
}

// parseWatermark reads the published key's value as a script answered it;
// '-1' (none) counts as 0, so every entry needs confirming.
func parseWatermark(raw string) (uint64, error) {
	if raw == "-1" {
		return 0, nil
	}
	w, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: corrupt published watermark %.30q: %w", raw, err)
	}
	return w, nil
}

// sinceHeld is Since on Sentinel. Entries above the watermark are served
// once a replica confirms them; while none does (no replica is up), the
// answer stops at the watermark. That only delays them: they are served,
// and published, once a replica is back.
func (s *Store) sinceHeld(ctx context.Context, channel string, since uint64, limit int) ([]announce.Message, error) {
	raws, err := heldSinceScript.Run(ctx, s.client,
		[]string{s.keys.id(channel), s.keys.history(channel), s.keys.published(channel)},
		strconv.FormatUint(since, 10), limit).StringSlice()
	if err != nil {
		return nil, unavailable("since", err)
	}
	if len(raws) == 0 {
		return nil, fmt.Errorf("redis: since script answered nothing")
	}
	w, err := parseWatermark(raws[0])
	if err != nil {
		return nil, err
	}
	msgs, err := decodeAll(raws[1:])
	if err != nil || len(msgs) == 0 || msgs[len(msgs)-1].ID <= w {
		return msgs, err
	}
	if err := s.confirmAndPublish(ctx, channel, msgs[len(msgs)-1].ID); err != nil {
		s.log.Debug("redis: history above the published watermark not confirmed yet; serving up to it",
			"channel", channel, "published", w, "err", err)
		for len(msgs) > 0 && msgs[len(msgs)-1].ID > w {
			msgs = msgs[:len(msgs)-1]
		}
	}
	return msgs, nil
}

// currentHeld is Current on Sentinel. A last entry above the watermark is
// served once a replica confirms it, else the read fails: answering an
// older message would tell a node that the sequence went back.
func (s *Store) currentHeld(ctx context.Context, channel string) (announce.Message, error) {
	raws, err := heldCurrentScript.Run(ctx, s.client,
		[]string{s.keys.history(channel), s.keys.published(channel)}).StringSlice()
	if err != nil {
		return announce.Message{}, unavailable("current", err)
	}
	if len(raws) != 2 {
		return announce.Message{}, fmt.Errorf("redis: current script answered %d values", len(raws))
	}
	if raws[1] == "" {
		return announce.Message{Channel: channel}, nil
	}
	w, err := parseWatermark(raws[0])
	if err != nil {
		return announce.Message{}, err
	}
	m, err := decode(raws[1])
	if err != nil || m.ID <= w {
		return m, err
	}
	if err := s.confirmAndPublish(ctx, channel, m.ID); err != nil {
		return announce.Message{}, err
	}
	return m, nil
}
