package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
)

// LibraryVersion is the version of the Redis Function library that nodes
// load at start (FUNCTION LOAD REPLACE). A node never replaces a library of
// a higher version, so during a rolling upgrade the newer nodes' library
// stays loaded.
const LibraryVersion = 1

// libraryName is the Redis Function library's name; its functions are
// announce_publish (FCALL announce_publish 1 CHANNEL CONTENT: the new id)
// and announce_version (FCALL_RO announce_version 0: LibraryVersion).
const libraryName = "announce"

// libraryLua is the library's text. The key prefix, history length and
// content limit are baked in (the %s, %d, %d), so the function checks what
// the HTTP API checks without any key to read. append is appendLua itself:
// KEYS and ARGV are its parameters' names, so the very text of Append runs.
//
// json_string escapes exactly as encoding/json does (HTML characters and
// U+2028/U+2029 as \u escapes, \b and \f short), and rfc3339 writes
// time.Time's JSON form, so the stored JSON is the bytes Go would write.
const libraryLua = `#!lua name=announce
local version = %d
local prefix = %s
local history = %d
local max_message = %d

local function append(KEYS, ARGV)
%s
end

local function channel_error(name)
  if #name == 0 or #name > %d then return 'must be 1 to %d characters' end
  if name == '.' or name == '..' then return 'is a path segment' end
  if not string.find(name, '^[A-Za-z0-9_.:%%-]+$') then return 'only letters, digits and _ . : - are allowed' end
  return nil
end

local function valid_utf8(s)
  if not string.find(s, '[\128-\255]') then return true end
  local byte, i, n = string.byte, 1, #s
  while i <= n do
    local c = byte(s, i)
    if c < 128 then
      i = i + 1
    elseif c >= 194 and c <= 223 then
      local c2 = byte(s, i + 1)
      if not c2 or c2 < 128 or c2 > 191 then return false end
      i = i + 2
    elseif c >= 224 and c <= 239 then
      local c2, c3 = byte(s, i + 1, i + 2)
      local lo, hi = 128, 191
      if c == 224 then lo = 160 elseif c == 237 then hi = 159 end
      if not c3 or c2 < lo or c2 > hi or c3 < 128 or c3 > 191 then return false end
      i = i + 3
    elseif c >= 240 and c <= 244 then
      local c2, c3, c4 = byte(s, i + 1, i + 3)
      local lo, hi = 128, 191
      if c == 240 then lo = 144 elseif c == 244 then hi = 143 end
      if not c4 or c2 < lo or c2 > hi or c3 < 128 or c3 > 191 or c4 < 128 or c4 > 191 then return false end
      i = i + 4
    else
      return false
    end
  end
  return true
end

local short = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}
local function escape(c) return short[c] or string.format('\\u%%04x', string.byte(c)) end

local function json_string(s)
  s = string.gsub(s, '[%%z\1-\31"\\<>&]', escape)
  s = string.gsub(s, '\226\128\168', '\\u2028')
  s = string.gsub(s, '\226\128\169', '\\u2029')
  return '"' .. s .. '"'
end

local function rfc3339(sec, usec)
  local days = math.floor(sec / 86400)
  local rem = sec - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  local s = string.format('%%04d-%%02d-%%02dT%%02d:%%02d:%%02d', y, m, d,
    math.floor(rem / 3600), math.floor(rem %% 3600 / 60), rem %% 60)
  if usec > 0 then
    s = s .. '.' .. string.gsub(string.format('%%06d', usec), '0+$', '')
  end
  return s .. 'Z'
end

redis.register_function('announce_publish', function(keys, args)
  if #keys ~= 1 or #args ~= 1 then
    return redis.error_reply('ERR announce_publish takes 1 key, the channel, and 1 argument, the content')
  end
  local channel, content = keys[1], args[1]
  local bad = channel_error(channel)
  if bad then return redis.error_reply('ERR invalid channel name: ' .. bad) end
  if #content == 0 then return redis.error_reply('ERR content is empty') end
  if #content > max_message then
    return redis.error_reply(string.format('ERR content is too large: %%d bytes, the limit is %%d', #content, max_message))
  end
  if not valid_utf8(content) then return redis.error_reply('ERR content is not valid UTF-8') end
  local now = redis.call('TIME')
  local tail = ',"channel":' .. json_string(channel) .. ',"content":' .. json_string(content) ..
    ',"time":"' .. rfc3339(tonumber(now[1]), tonumber(now[2])) .. '"}'
  local topic = prefix .. '{' .. channel .. '}'
  return append({topic .. ':id', topic .. ':history'}, {tail, history, topic})
end)

redis.register_function{function_name = 'announce_version', flags = {'no-writes'},
  callback = function() return version end}
`

// libraryText is the library for a store of this prefix and history and a
// content limit of maxMessage bytes.
// On Redis Cluster it publishes by SPUBLISH, as Append does; on Sentinel
// (held) it moves the published watermark too (sentinel.go).
func libraryText(prefix string, history, maxMessage int, cluster, held bool) string {
	body := appendLua
	switch {
	case cluster:
		body = sharded(appendLua)
	case held:
		body = heldLibraryBody
	}
	return fmt.Sprintf(libraryLua, LibraryVersion, luaString(prefix), history, maxMessage,
		body, announce.MaxChannelName, announce.MaxChannelName)
}

// luaString quotes s as a Lua string literal, any byte written as \ddd
// unless it is a letter or digit.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03d", c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Library keeps announce's Redis Function library loaded: LoadLibrary
// loads it, and a background check reloads it when Redis lost it (a
// restart without persistence, a new master).
type Library struct {
	store *Store
	text  string

	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// LoadLibrary loads the function library for maxMessage bytes of content
// (FUNCTION LOAD REPLACE) and checks every interval (default 5 s) that it is
// still there. It fails when Redis does not take the library (Redis before
// 7, a script error); Close stops the checks.
func (s *Store) LoadLibrary(ctx context.Context, maxMessage int, interval time.Duration) (*Library, error) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	l := &Library{store: s, text: libraryText(s.keys.prefix, s.history, maxMessage, s.cluster, s.confirm),
		quit: make(chan struct{}), done: make(chan struct{})}
	if err := l.ensure(ctx); err != nil {
		return nil, err
	}
	go l.watch(interval)
	return l, nil
}

// eachMaster runs fn on the Redis, or on every master of a Cluster: a
// Function library lives on each node, and an FCALL runs on the master of
// its key's slot.
func (l *Library) eachMaster(ctx context.Context, fn func(context.Context, goredis.Cmdable) error) error {
	if cc, ok := l.store.client.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return fn(ctx, c) })
	}
	return fn(ctx, l.store.client)
}

// loadedVersion returns the version of the library c has, 0 if none.
func loadedVersion(ctx context.Context, c goredis.Cmdable) (int64, error) {
	v, err := c.FCallRO(ctx, "announce_version", nil).Int64()
	if err != nil && strings.Contains(err.Error(), "Function not found") {
		return 0, nil
	}
	return v, err
}

// ensure loads the library on every master unless it has it at a version
// above ours. Replacing one of our own version rewrites the baked-in
// limits, so the last node to start with other flags sets them.
func (l *Library) ensure(ctx context.Context) error {
	ctx, cancel := l.store.op(ctx)
	defer cancel()
	return l.eachMaster(ctx, l.ensureOn)
}

func (l *Library) ensureOn(ctx context.Context, c goredis.Cmdable) error {
	v, err := loadedVersion(ctx, c)
	if err != nil {
		return fmt.Errorf("redis: function library: %w", err)
	}
	if v > LibraryVersion {
		l.store.log.Warn("redis has a newer announce function library; keeping it",
			"loaded", v, "ours", LibraryVersion)
		return nil
	}
	if err := c.FunctionLoadReplace(ctx, l.text).Err(); err != nil {
		return fmt.Errorf("redis: FUNCTION LOAD of the announce library (Redis 7 or later needed): %w", err)
	}
	return nil
}

// reloadIfLost loads the library on c if c has none; Redis away is left
// to the next tick.
func (l *Library) reloadIfLost(ctx context.Context, c goredis.Cmdable) error {
	if v, err := loadedVersion(ctx, c); err != nil || v != 0 {
		return nil
	}
	if err := l.ensureOn(ctx, c); err != nil {
		l.store.log.Warn("reloading the redis function library", "err", err)
	} else {
		l.store.log.Info("reloaded the redis function library", "version", LibraryVersion)
	}
	return nil
}

// watch reloads the library when Redis no longer has it.
func (l *Library) watch(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
		}
		ctx, cancel := l.store.op(context.Background())
		_ = l.eachMaster(ctx, l.reloadIfLost)
		cancel()
	}
}

// Close stops the checks; the library stays loaded for other nodes.
func (l *Library) Close() error {
	l.once.Do(func() { close(l.quit) })
	<-l.done
	return nil
}
