package serve

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/announce/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// PresenceConfig configures presence and webhooks. Zero fields take the
// defaults of packages presence and webhook.
type PresenceConfig struct {
	// Events delivers join and leave events to SSE and WebSocket observers.
	Events bool
	// Grace keeps a long-poll client present after its last poll.
	Grace time.Duration
	// Heartbeat is how often the node refreshes its presence in Redis;
	// its entries expire after three (tests shorten it).
	Heartbeat time.Duration
	// Node names this node in Redis and in webhooks; hostname-random when empty.
	Node string

	// Webhooks receive connected, disconnected and published events.
	Webhooks      []string
	WebhookSecret string
	// Delivery tuning (tests shorten it).
	WebhookQueue    int
	WebhookBackoff  time.Duration
	WebhookAttempts int
	WebhookTimeout  time.Duration
}

// presenceNode is a node's presence tracker and webhook dispatcher.
type presenceNode struct {
	tracker  *presence.Tracker
	webhooks *webhook.Dispatcher
}

// startPresence builds the webhook dispatcher and the presence tracker
// (sharing presence through Redis in scale-out mode) and registers their metrics.
func (n *Node) startPresence(reg *prometheus.Registry) error {
	pc, log := n.cfg.Presence, n.cfg.Logger
	if pc.Node == "" {
		pc.Node = nodeName()
	}
	var sinks []announce.Events
	if len(pc.Webhooks) > 0 {
		if pc.WebhookSecret == "" {
			log.Warn("webhooks without --webhook-secret are unsigned: receivers cannot tell them from forgeries")
		}
		d, err := webhook.New(webhook.Config{
			URLs: pc.Webhooks, Secret: pc.WebhookSecret, Node: pc.Node,
			Queue: pc.WebhookQueue, Backoff: pc.WebhookBackoff, Attempts: pc.WebhookAttempts,
			Timeout: pc.WebhookTimeout, Logger: log,
		})
		if err != nil {
			return err
		}
		n.presence.webhooks = d
		sinks = append(sinks, d)
		if err := reg.Register(d.Collector()); err != nil {
			return err
		}
	}
	var backend presence.Backend
	if n.cfg.Redis != "" {
		b, err := redis.NewPresence(redis.PresenceConfig{URL: n.cfg.Redis, Logger: log})
		if err != nil {
			return err
		}
		backend = b
	}
	t, err := presence.New(presence.Config{
		Node: pc.Node, Grace: pc.Grace, Events: pc.Events, Backend: backend,
		Heartbeat: pc.Heartbeat, Sinks: sinks, Logger: log,
	})
	if err != nil {
		if backend != nil {
			backend.Close()
		}
		return err
	}
	n.presence.tracker = t
	return nil
}

// stopPresence ends the sessions still present (webhooks get their
// disconnections) and takes this node out of Redis's presence.
func (n *Node) stopPresence(ctx context.Context) error {
	if t := n.presence.tracker; t != nil {
		return t.Close(ctx)
	}
	return nil
}

// flushWebhooks delivers the webhooks still queued, retrying failures at
// once, until ctx ends. What is left then is abandoned and counted as
// dropped: a receiver that is down must not fail the shutdown.
func (n *Node) flushWebhooks(ctx context.Context) {
	if d := n.presence.webhooks; d != nil {
		if err := d.Close(ctx); err != nil {
			n.cfg.Logger.Warn("webhooks still undelivered at the shutdown deadline were dropped", "err", err)
		}
	}
}

// Presence returns the node's presence tracker.
func (n *Node) Presence() *presence.Tracker { return n.presence.tracker }

// nodeName is the host name and a random suffix, unique per process.
func nodeName() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return -1
		}
		return r
	}, host)
	if host == "" {
		return presence.RandomNode()
	}
	return host + "-" + presence.RandomNode()[:6]
}
