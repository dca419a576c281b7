package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/announce/announce/announce"
)

// Defaults of a Tracker.
const (
	// DefaultGrace is how long a long-poll client stays present after its
	// last poll was answered. A polling client is back within milliseconds
	// (a jQuery loop re-polls in its success callback; the seed's error
	// handler waited half a second), so ten seconds never drops a live one,
	// and a client that left is gone from the counts ten seconds later.
	DefaultGrace = 10 * time.Second
	// DefaultHeartbeat is how often a node rewrites its presence in the
	// backend. Entries live three heartbeats, so a crashed node's observers
	// leave the counts within 15 s.
	DefaultHeartbeat = 5 * time.Second
	// othersFresh is how long the emitter reuses other nodes' counts read
	// for an event's totals, so a burst of joins costs one backend read.
	othersFresh   = time.Second
	listenerQueue = 16
	emitQueue     = 4096
)

// Config configures a Tracker. Zero fields take the defaults.
type Config struct {
	// Node identifies this node in the backend and in session IDs; random
	// when empty. Nodes of one service must have distinct IDs.
	Node string
	// Grace keeps a long-poll session present after each poll (DefaultGrace).
	Grace time.Duration
	// Events turns on join and leave events for Listen.
	Events bool
	// Backend shares presence across nodes; nil counts this node only.
	// The tracker closes it.
	Backend Backend
	// Heartbeat is how often this node's state is rewritten in the backend
	// (DefaultHeartbeat); entries expire after three of them.
	Heartbeat time.Duration
	// Sinks receive every session once (Connected when it begins,
	// Disconnected when it ends) and every Published, for webhooks.
	Sinks  []announce.Events
	Logger *slog.Logger
}

// Tracker is the presence of this node's observers. It implements
// announce.Events: the API reports every attach, detach and publish to it.
type Tracker struct {
	node      string
	grace     time.Duration
	events    bool
	backend   Backend
	heartbeat time.Duration
	sinks     []announce.Events
	log       *slog.Logger

	// mu guards the fields from sessions to closed, and every session's
	// and local's fields.
	mu       sync.Mutex
	sessions map[sessionKey]*session // by each of their keys (sessionRef)
	// fingerprints are the poll sessions no poll presented the cookie of,
	// by their first poll's fingerprint.
	fingerprints map[sessionKey]*session
	live         int               // sessions present
	local        map[string]*local // this node's observers by channel; absent when none
	listeners    map[string]map[*Listener]struct{}
	dirty        map[string]struct{} // channels whose backend entry is stale
	closed       bool

	written map[string]bool         // channels with an entry in the backend; the syncer's only, no lock
	others  map[string]cachedCounts // the emitter's only, no lock

	kick  chan struct{} // "dirty is not empty", capacity 1
	emitQ chan emission
	quit  chan struct{}
	wg    sync.WaitGroup
	// ctx bounds every backend call of the syncer and the emitter; Close
	// cancels it, so a backend that hangs cannot hold a shutdown.
	ctx    context.Context
	cancel context.CancelFunc

	eventsDropped   atomic.Uint64
	listenerDropped atomic.Uint64
	putFailing      atomic.Bool
}

type session struct {
	announce.Session             // its first poll's (or its connection's); webhooks see this ID throughout
	refs             int         // attached polls or connections
	timer            *time.Timer // the grace timer of a poll session with no poll attached
	gen              uint64      // invalidates a grace timer that fired too late
	keys             []sessionRef
	fingerprint      string // its key in Tracker.fingerprints; "" once claimed (keys.go)
	gone             bool
}

type local struct {
	counts Counts
	names  map[string]int
}

type emission struct {
	Event
	local Counts
}

type cachedCounts struct {
	counts Counts
	at     time.Time
}

var _ announce.Events = (*Tracker)(nil)

// New starts a tracker.
func New(cfg Config) (*Tracker, error) {
	if cfg.Grace < 0 || cfg.Heartbeat < 0 {
		return nil, errors.New("presence: Grace and Heartbeat must not be negative")
	}
	t := &Tracker{
		node:         cfg.Node,
		grace:        cfg.Grace,
		events:       cfg.Events,
		backend:      cfg.Backend,
		heartbeat:    cfg.Heartbeat,
		sinks:        slices.DeleteFunc(slices.Clone(cfg.Sinks), func(e announce.Events) bool { return e == nil }),
		log:          cfg.Logger,
		sessions:     make(map[sessionKey]*session),
		fingerprints: make(map[sessionKey]*session),
		local:        make(map[string]*local),
		listeners:    make(map[string]map[*Listener]struct{}),
		dirty:        make(map[string]struct{}),
		written:      make(map[string]bool),
		others:       make(map[string]cachedCounts),
		kick:         make(chan struct{}, 1),
		quit:         make(chan struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if t.node == "" {
		t.node = RandomNode()
	}
	if t.grace == 0 {
		t.grace = DefaultGrace
	}
	if t.heartbeat == 0 {
		t.heartbeat = DefaultHeartbeat
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.backend != nil {
		t.wg.Add(1)
		go t.sync()
	}
	if t.events {
		t.emitQ = make(chan emission, emitQueue)
		t.wg.Add(1)
		go t.emitter()
		if t.backend != nil {
			if err := t.backend.Listen(t.remote); err != nil {
				t.Close(context.Background())
				return nil, err
			}
		}
	}
	return t, nil
}

// RandomNode returns a fresh random node ID.
func RandomNode() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Node is this node's ID.
func (t *Tracker) Node() string { return t.node }

// Grace is how long a long-poll session outlives its last poll.
func (t *Tracker) Grace() time.Duration { return t.grace }

// EventsEnabled reports whether Listen delivers join and leave events.
func (t *Tracker) EventsEnabled() bool { return t.events }

// Connected implements announce.Events: a new session joins; a session
// already present (a poll client polling again) is kept and its grace ends.
// A poll client that changed its name is renamed: its observers see it
// leave under the old name and join under the new one.
func (t *Tracker) Connected(s announce.Session) {
	if s.Time.IsZero() {
		s.Time = time.Now()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if ss := t.findLocked(s); ss != nil {
		ss.attached(s.ID, 1)
		ss.refs++
		if ss.timer != nil {
			ss.timer.Stop()
			ss.timer = nil
			ss.gen++
		}
		if s.Name != ss.Name {
			t.renameLocked(ss, s.Name)
		}
		return
	}
	ss := &session{Session: s, refs: 1, keys: []sessionRef{{id: s.ID, attached: 1}}}
	t.sessions[sessionKey{s.Channel, s.ID}] = ss
	if s.Transport == announce.Poll && s.Issued && s.Fingerprint != "" {
		ss.fingerprint = s.Fingerprint
		t.fingerprints[sessionKey{s.Channel, s.Fingerprint}] = ss
	}
	t.live++
	l := t.local[s.Channel]
	if l == nil {
		l = &local{names: make(map[string]int)}
		t.local[s.Channel] = l
	}
	l.counts.add(s.Transport, 1)
	l.rename("", s.Name)
	t.markDirtyLocked(s.Channel)
	t.emitLocked("join", s, l.counts)
	for _, e := range t.sinks {
		e.Connected(s)
	}
}

// renameLocked gives a session a new name: a leave under the old name and
// a join under the new one for listeners; the sinks see one session, with
// its last name when it ends. Requires t.mu held.
func (t *Tracker) renameLocked(ss *session, name string) {
	l := t.local[ss.Channel]
	without := l.counts
	without.add(ss.Transport, -1)
	t.emitLocked("leave", ss.Session, without)
	l.rename(ss.Name, name)
	ss.Name = name
	t.markDirtyLocked(ss.Channel)
	t.emitLocked("join", ss.Session, l.counts)
}

// Disconnected implements announce.Events: a stream session leaves at once;
// a poll session leaves when no poll of it came back within the grace.
func (t *Tracker) Disconnected(s announce.Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ss := t.sessions[sessionKey{s.Channel, s.ID}]
	if ss == nil || ss.refs == 0 || !ss.attached(s.ID, -1) {
		return
	}
	ss.refs--
	if ss.refs > 0 {
		return
	}
	if ss.Transport == announce.Poll {
		ss.gen++
		gen := ss.gen
		ss.timer = time.AfterFunc(t.grace, func() { t.expire(ss, gen) })
		return
	}
	t.removeLocked(ss)
}

// Published implements announce.Events: it passes the publication on to the sinks.
func (t *Tracker) Published(p announce.Publication) {
	for _, e := range t.sinks {
		e.Published(p)
	}
}

// expire ends a poll session whose grace passed without a new poll.
func (t *Tracker) expire(ss *session, gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ss.gone || ss.gen != gen || ss.refs > 0 {
		return // polled again meanwhile
	}
	t.removeLocked(ss)
}

// removeLocked ends a session. Requires t.mu held.
func (t *Tracker) removeLocked(ss *session) {
	ss.forgetLocked(t)
	t.live--
	if ss.timer != nil {
		ss.timer.Stop()
	}
	l := t.local[ss.Channel]
	l.counts.add(ss.Transport, -1)
	l.rename(ss.Name, "")
	counts := l.counts
	if counts.Total() == 0 {
		delete(t.local, ss.Channel)
	}
	t.markDirtyLocked(ss.Channel)
	s := ss.Session
	s.Time = time.Now()
	t.emitLocked("leave", s, counts)
	for _, e := range t.sinks {
		e.Disconnected(s)
	}
}

// rename moves one observer from name old to name new ("" is no name).
func (l *local) rename(old, new string) {
	if old != "" {
		if l.names[old]--; l.names[old] <= 0 {
			delete(l.names, old)
		}
	}
	if new != "" {
		l.names[new]++
	}
}

// stateLocked is the channel's state on this node. Requires t.mu held.
func (t *Tracker) stateLocked(channel string) State {
	l := t.local[channel]
	if l == nil {
		return State{}
	}
	st := State{Counts: l.counts}
	if len(l.names) > 0 {
		st.Names = make([]string, 0, min(len(l.names), MaxNames))
		for n := range l.names {
			st.Names = append(st.Names, n)
		}
		slices.Sort(st.Names)
		st.Names = st.Names[:min(len(st.Names), MaxNames)]
	}
	return st
}

// Local returns this node's presence on channel.
func (t *Tracker) Local(channel string) State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stateLocked(channel)
}

// Snapshot returns channel's presence over the service: this node's, read
// now, plus every other live node's from the backend. When the backend
// cannot be read it returns this node's alone with Partial set.
func (t *Tracker) Snapshot(ctx context.Context, channel string) Snapshot {
	st := t.Local(channel)
	snap := Snapshot{Channel: channel, Observers: st.Counts}
	names := make(map[string]struct{}, len(st.Names))
	for _, n := range st.Names {
		names[n] = struct{}{}
	}
	if t.backend != nil {
		states, err := t.backend.Read(ctx, channel)
		if err != nil {
			t.log.Warn("presence: reading other nodes failed", "channel", channel, "err", err)
			snap.Partial = true
		}
		for node, s := range states {
			if node == t.node {
				continue // this node's own entry may be a moment old
			}
			snap.Observers = snap.Observers.Plus(s.Counts)
			for _, n := range s.Names {
				names[n] = struct{}{}
			}
		}
	}
	snap.Total = snap.Observers.Total()
	snap.Names = make([]string, 0, len(names))
	for n := range names {
		snap.Names = append(snap.Names, n)
	}
	slices.Sort(snap.Names)
	snap.Names = snap.Names[:min(len(snap.Names), MaxNames)]
	return snap
}

// Close ends every session still present (a leave event reaches every
// node's listeners, Disconnected the sinks: a shutdown is a disconnection),
// removes this node's entries from the backend within ctx and closes it. A backend that cannot be reached is
// logged, not returned: the entries then age out by themselves. Later calls
// do nothing.
func (t *Tracker) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for _, ss := range t.sessions {
		if !ss.gone { // a session has several keys
			t.removeLocked(ss) // a leave for every node's listeners, and the sinks
		}
	}
	t.mu.Unlock()
	close(t.quit) // the emitter sends the leaves queued, then stops
	waited := make(chan struct{})
	go func() { t.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		t.cancel()
	case <-ctx.Done():
		// A backend call that ignores cancellation (a hung Redis) ends by
		// its own timeout; the shutdown does not wait for it.
		t.cancel()
		t.log.Warn("presence: background work still running at the shutdown deadline")
		return nil
	}
	if t.backend == nil {
		return nil
	}
	gone := make(map[string]State, len(t.written))
	for ch := range t.written {
		gone[ch] = State{}
	}
	if len(gone) > 0 {
		if err := t.backend.Put(ctx, t.node, gone, 3*t.heartbeat); err != nil {
			t.log.Warn("presence: removing this node's entries failed; they expire by themselves",
				"within", 3*t.heartbeat, "err", err)
		}
	}
	return t.backend.Close()
}
