package redis

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce/presence"
)

// Presence shares presence between nodes (a presence.Backend):
//
//	announce:{ch}:presence   hash     field: node ID, value: that node's state JSON
//	                                  {"poll":n,"sse":n,"ws":n,"names":[...],"exp":unix-ms}
//	announce:{ch}:presence   pub/sub  join and leave events, {"node":ID,"event":{...}}
//
// Every node rewrites its fields on each change and every heartbeat, with
// an expiry time in the value; readers skip (and delete) expired fields, so
// a crashed node's observers age out, and the whole hash expires when no
// node refreshes it. Events travel on one topic per channel; a node
// receives them with a single pattern subscription (announce:{*}:presence),
// only when presence events are on.
type Presence struct {
	client    goredis.UniversalClient
	keys      keys
	opTimeout time.Duration
	log       *slog.Logger

	mu   sync.Mutex
	ps   *goredis.PubSub
	done chan struct{}
}

var _ presence.Backend = (*Presence)(nil)

// PresenceConfig configures a Presence; its fields mean what they mean in
// Config and must match the Store's.
type PresenceConfig struct {
	URL       string
	Prefix    string
	OpTimeout time.Duration
	Logger    *slog.Logger
}

// NewPresence returns a presence backend. Like Open it does not connect.
func NewPresence(cfg PresenceConfig) (*Presence, error) {
	c := Config{URL: cfg.URL, Prefix: cfg.Prefix, OpTimeout: cfg.OpTimeout, Logger: cfg.Logger}
	if err := c.fill(); err != nil {
		return nil, err
	}
	client, err := newClient(c.URL, c.OpTimeout)
	if err != nil {
		return nil, err
	}
	return &Presence{client: client, keys: keys{prefix: c.Prefix}, opTimeout: c.OpTimeout, log: c.Logger}, nil
}

func (k keys) presence(channel string) string { return k.prefix + "{" + channel + "}:presence" }

// presencePattern matches every channel's presence topic.
func (k keys) presencePattern() string {
	var b strings.Builder
	for _, r := range k.prefix { // the prefix is literal: escape glob characters
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + "{*}:presence"
}

// presenceChannel returns the channel of a presence topic.
func (k keys) presenceChannel(topic string) (string, bool) {
	rest, ok := strings.CutSuffix(topic, ":presence")
	if !ok {
		return "", false
	}
	return k.channel(rest)
}

// presenceEntry is a node's field value.
type presenceEntry struct {
	presence.State
	Exp int64 `json:"exp"` // Unix milliseconds after which the entry is dead
}

// Put implements presence.Backend in one round trip.
func (p *Presence) Put(ctx context.Context, node string, states map[string]presence.State, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, p.opTimeout)
	defer cancel()
	exp := time.Now().Add(ttl).UnixMilli()
	_, err := p.client.Pipelined(ctx, func(pl goredis.Pipeliner) error {
		for ch, st := range states {
			key := p.keys.presence(ch)
			if st.Empty() {
				pl.HDel(ctx, key, node)
				continue
			}
			b, err := json.Marshal(presenceEntry{State: st, Exp: exp})
			if err != nil {
				return err
			}
			pl.HSet(ctx, key, node, b)
			// The hash lives as long as its longest-lived entry: set a
			// TTL on a new hash (NX) and only ever extend it (GT), so a
			// node with a shorter heartbeat cannot expire the others'.
			ms := max(ttl.Milliseconds(), 1)
			pl.Do(ctx, "pexpire", key, ms, "nx")
			pl.Do(ctx, "pexpire", key, ms, "gt")
		}
		return nil
	})
	if err != nil {
		return unavailable("presence put", err)
	}
	return nil
}

// Read implements presence.Backend. Expired entries are left out, and
// deleted so they do not pile up on a busy channel.
func (p *Presence) Read(ctx context.Context, channel string) (map[string]presence.State, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opTimeout)
	defer cancel()
	key := p.keys.presence(channel)
	all, err := p.client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, unavailable("presence read", err)
	}
	now := time.Now().UnixMilli()
	out := make(map[string]presence.State, len(all))
	var dead []string
	for node, raw := range all {
		var e presenceEntry
		if err := json.Unmarshal([]byte(raw), &e); err != nil || e.Exp <= now {
			dead = append(dead, node)
			continue
		}
		out[node] = e.State
	}
	if len(dead) > 0 {
		if err := p.client.HDel(ctx, key, dead...).Err(); err != nil {
			p.log.Debug("presence: removing expired entries failed", "channel", channel, "err", err)
		}
	}
	return out, nil
}

// broadcast is the payload of a presence event on the topic.
type broadcast struct {
	Node  string          `json:"node"`
	Event json.RawMessage `json:"event"`
}

// Broadcast implements presence.Backend.
func (p *Presence) Broadcast(ctx context.Context, node, channel string, event []byte) error {
	ctx, cancel := context.WithTimeout(ctx, p.opTimeout)
	defer cancel()
	b, err := json.Marshal(broadcast{Node: node, Event: event})
	if err != nil {
		return err
	}
	if err := p.client.Publish(ctx, p.keys.presence(channel), b).Err(); err != nil {
		return unavailable("presence publish", err)
	}
	return nil
}

// Listen implements presence.Backend with one pattern subscription.
// go-redis redials and resubscribes by itself after a connection loss.
func (p *Presence) Listen(fn func(node, channel string, event []byte)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ps != nil {
		return errors.New("redis: presence Listen called twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opTimeout)
	defer cancel()
	p.ps = p.client.PSubscribe(ctx, p.keys.presencePattern()) // an error here is retried by the reader
	msgs := p.ps.Channel(goredis.WithChannelSize(1024), goredis.WithChannelSendTimeout(time.Second))
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		for m := range msgs {
			ch, ok := p.keys.presenceChannel(m.Channel)
			if !ok {
				continue
			}
			var b broadcast
			if err := json.Unmarshal([]byte(m.Payload), &b); err != nil {
				p.log.Warn("presence: undecodable event", "topic", m.Channel, "err", err)
				continue
			}
			fn(b.Node, ch, b.Event)
		}
	}()
	return nil
}

// Close implements presence.Backend.
func (p *Presence) Close() error {
	p.mu.Lock()
	ps, done := p.ps, p.done
	p.mu.Unlock()
	var err error
	if ps != nil {
		err = ps.Close()
		<-done
	}
	return errors.Join(err, p.client.Close())
}
