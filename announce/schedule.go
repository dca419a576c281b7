package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Scheduled and expiring messages.
//
// A scheduled publish waits in the store until its time, then is published
// like any message: it gets the channel's next id then, and the firing time
// as its time. A message published with a TTL gets an expiry, a schedule
// that, when due, reverts the channel's current message to empty IF it is
// still that message: it appends a message with content "" and Expired set
// to the expired id, which every observer receives like any other. If
// another message came first, the expiry does nothing.
//
// Schedules live in the store (ScheduleStore), so they survive a restart
// and a time missed while no node ran fires at the next start, late. Each
// hub runs a Scheduler loop: a timer to the next due time, woken by its own
// schedules, and a periodic poll (SchedulePoll) for schedules other nodes
// made in a shared store. Any node may fire any schedule; the store's Fire
// makes sure exactly one does.

// Bounds on schedules.
const (
	// MaxScheduleAhead is how far ahead a publish may be scheduled, and the
	// longest TTL.
	MaxScheduleAhead = 30 * 24 * time.Hour
	// DefaultMaxScheduled is how many schedules a channel may hold (its
	// expiry, at most one, included).
	DefaultMaxScheduled = 1000
	// DefaultSchedulePoll is how often a Scheduler looks for schedules it
	// was not told about (other nodes').
	DefaultSchedulePoll = time.Second
)

// Errors of scheduling; the API maps them to status codes.
var (
	ErrBadSchedule           = errors.New("bad schedule")                                 // 400
	ErrScheduleNotFound      = errors.New("no such scheduled message")                    // 404
	ErrTooManyScheduled      = errors.New("too many scheduled messages on this channel")  // 429
	ErrSchedulingUnsupported = errors.New("this server's store cannot schedule messages") // 501
)

// Scheduled is a publish waiting in the store until At, or, with Expire
// set, the expiry of message Expire of the channel.
type Scheduled struct {
	ID      string    `json:"id"` // a UUID
	Channel string    `json:"channel"`
	Content string    `json:"content,omitempty"` // empty for an expiry
	At      time.Time `json:"at"`                // UTC, whole milliseconds
	// TTL, when positive, gives the published message an expiry TTL after
	// it is published.
	TTL time.Duration `json:"ttl,omitempty"`
	// Expire makes this the expiry of the channel's message with that id.
	Expire uint64 `json:"expire,omitempty"`
}

// Firing is one call of ScheduleStore.Fire.
type Firing struct {
	Scheduled
	// Claim: Scheduled is in the store and fires only if it still is,
	// leaving it. Without Claim, Scheduled was never stored: an immediate
	// publish with a TTL, which Fire appends with its expiry in one step.
	Claim bool
	// Time is the message's time: when it fires.
	Time time.Time
}

// Expiry returns the schedule expiring m, which f published: f.TTL after
// m's time, under the channel's expiry id, so it replaces any older
// expiry of the channel (that one's message is no longer current, so it
// could only do nothing).
func (f Firing) Expiry(m Message) Scheduled {
	return Scheduled{ID: ExpiryID(m.Channel), Channel: m.Channel, At: ceilMilli(m.Time.Add(f.TTL)), Expire: m.ID}
}

// expiryNamespace derives the expiry ids.
var expiryNamespace = uuid.MustParse("5c4f6a3e-2b1d-4e8f-9a7c-3d2e1f0a9b8c")

// ExpiryID is the id of channel's expiry schedule: one per channel, since
// only the current message can expire.
func ExpiryID(channel string) string {
	return uuid.NewSHA1(expiryNamespace, []byte(channel)).String()
}

// ScheduleStore is the optional Store capability behind scheduled and
// expiring messages; a hub whose Store implements it has a Scheduler.
//
// Guarantees every implementation gives:
//   - Schedule is as durable as Append when it returns nil: the schedule
//     survives a restart and stays until Fire or Cancel takes it.
//   - Fire is atomic: taking the schedule (with Claim), appending its
//     message exactly as Append would (the channel's next id, current
//     message, history trimmed, and for a shared store published to every
//     node's Broker), and putting the message's expiry (Firing.Expiry, when
//     TTL > 0, replacing the channel's previous one) happen in one step or
//     not at all. So a schedule fires at most once however many nodes share
//     the store, and a node failing mid-way neither loses it (it is still
//     there and fires on the next pass) nor fires it twice.
//   - Fire of an expiry appends its message (content "", Expired set) only
//     when the channel's current id is still Expire; else it only takes the
//     schedule.
//   - Fire and Cancel of one schedule race safely: exactly one takes it.
//   - On failure the error wraps ErrUnavailable when the backend cannot be
//     reached, like the Store's.
type ScheduleStore interface {
	// Schedule stores s. It fails with ErrTooManyScheduled when the
	// channel already holds max schedules (max <= 0: no limit).
	Schedule(ctx context.Context, s Scheduled, max int) error
	// Cancel takes the channel's schedule id out of the store and returns
	// it; false when there is none (it fired, was cancelled, or never was).
	Cancel(ctx context.Context, channel, id string) (Scheduled, bool, error)
	// Pending returns the channel's schedules, earliest first, at most limit.
	Pending(ctx context.Context, channel string, limit int) ([]Scheduled, error)
	// Due returns at most limit schedules with At <= now, earliest first,
	// and the time of the earliest schedule after now (zero when none).
	Due(ctx context.Context, now time.Time, limit int) (due []Scheduled, next time.Time, err error)
	// Fire publishes what f stands for (see the guarantees). It returns the
	// appended message and true, or false when nothing was appended: the
	// schedule was gone (another node fired it, or it was cancelled), or it
	// was an expiry whose message is no longer current.
	Fire(ctx context.Context, f Firing) (Message, bool, error)
}

// Scheduler accepts schedules for its hub's store and fires them when due,
// through the hub: this node's observers get a fired message at once, other
// nodes' through the broker like any publish. It is safe for concurrent use.
type Scheduler struct {
	hub   *Hub
	store ScheduleStore
	poll  time.Duration
	max   int
	log   *slog.Logger

	onFire atomic.Pointer[func(Message)]
	wake   chan struct{} // capacity 1: "look again, something may be due sooner"
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// dueBatch is how many due schedules one store read returns.
const dueBatch = 64

func newScheduler(h *Hub, st ScheduleStore, poll time.Duration, max int) *Scheduler {
	if poll <= 0 {
		poll = DefaultSchedulePoll
	}
	if max <= 0 {
		max = DefaultMaxScheduled
	}
	ctx, cancel := context.WithCancel(h.ctx) // Hub.Shutdown cancels it too
	s := &Scheduler{hub: h, store: st, poll: poll, max: max, log: h.log,
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go s.run()
	return s
}

// Scheduler returns the hub's scheduler, or nil when its store cannot
// schedule (it does not implement ScheduleStore).
func (h *Hub) Scheduler() *Scheduler { return h.sched }

// OnFire sets f to be told of every message the loop publishes (a due
// schedule or an expiry), once, on the node that fired it: what
// Events.Published is for an API publish. f must return at once. Messages
// of PublishTTL are not reported: its caller publishes them.
func (s *Scheduler) OnFire(f func(Message)) { s.onFire.Store(&f) }

// close stops the loop and waits for it; a firing under way is cut short
// (it happens entirely or not at all). Safe on nil and more than once.
func (s *Scheduler) close() {
	if s == nil {
		return
	}
	s.once.Do(s.cancel)
	<-s.done
}

// Schedule validates a publish of content on channel at `at` (in the
// future, at most MaxScheduleAhead away) with an optional ttl, and stores
// it. at is rounded up to the millisecond, so the message is never early.
func (s *Scheduler) Schedule(ctx context.Context, channel, content string, at time.Time, ttl time.Duration) (Scheduled, error) {
	if err := s.check(channel, content, ttl); err != nil {
		return Scheduled{}, err
	}
	now := time.Now()
	switch {
	case at.IsZero():
		return Scheduled{}, fmt.Errorf("%w: no time given", ErrBadSchedule)
	case !at.After(now):
		return Scheduled{}, fmt.Errorf("%w: %s is not in the future", ErrBadSchedule, at.UTC().Format(time.RFC3339Nano))
	case at.Sub(now) > MaxScheduleAhead:
		return Scheduled{}, fmt.Errorf("%w: at most %v ahead", ErrBadSchedule, MaxScheduleAhead)
	}
	sc := Scheduled{ID: uuid.NewString(), Channel: channel, Content: content, At: ceilMilli(at), TTL: ttl}
	if err := s.hub.admitSchedule(ctx); err != nil {
		return Scheduled{}, err
	}
	if err := s.store.Schedule(ctx, sc, s.max); err != nil {
		return Scheduled{}, err
	}
	s.poke()
	return sc, nil
}

// PublishTTL publishes content on channel now, like Hub.Publish, and
// expires it after ttl; message and expiry are committed in one step.
func (s *Scheduler) PublishTTL(ctx context.Context, channel, content string, ttl time.Duration) (*Envelope, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("%w: ttl must be positive", ErrBadSchedule)
	}
	if err := s.check(channel, content, ttl); err != nil {
		return nil, err
	}
	if err := s.hub.admitChannel(ctx, channel); err != nil {
		return nil, err
	}
	f := Firing{Scheduled: Scheduled{Channel: channel, Content: content, TTL: ttl}, Time: time.Now().Truncate(time.Microsecond)}
	m, ok, err := s.store.Fire(ctx, f)
	if err != nil {
		return nil, err
	}
	if !ok { // only a claimed schedule or an expiry can come to nothing
		return nil, fmt.Errorf("announce: store appended nothing for an immediate publish on %q", channel)
	}
	e := s.deliver(m)
	s.poke() // its expiry may be due before the loop's next look
	return e, nil
}

// Pending returns the channel's schedules (its expiry included), earliest
// first, at most limit.
func (s *Scheduler) Pending(ctx context.Context, channel string, limit int) ([]Scheduled, error) {
	if err := ValidateChannel(channel); err != nil {
		return nil, err
	}
	if s.hub.closed.Load() {
		return nil, ErrClosed
	}
	return s.store.Pending(ctx, channel, limit)
}

// Cancel removes the channel's schedule id before it fires and returns it;
// ErrScheduleNotFound when it fired already, was cancelled or never was.
// Cancelling the channel's expiry keeps its current message.
func (s *Scheduler) Cancel(ctx context.Context, channel, id string) (Scheduled, error) {
	if err := ValidateChannel(channel); err != nil {
		return Scheduled{}, err
	}
	if s.hub.closed.Load() {
		return Scheduled{}, ErrClosed
	}
	sc, ok, err := s.store.Cancel(ctx, channel, id)
	if err != nil {
		return Scheduled{}, err
	}
	if !ok {
		return Scheduled{}, fmt.Errorf("%w: %s on %s", ErrScheduleNotFound, id, channel)
	}
	return sc, nil
}

func (s *Scheduler) check(channel, content string, ttl time.Duration) error {
	if err := ValidateChannel(channel); err != nil {
		return err
	}
	if err := ValidateContent(content, s.hub.maxMessage); err != nil {
		return err
	}
	switch {
	case ttl < 0:
		return fmt.Errorf("%w: ttl must be positive", ErrBadSchedule)
	case ttl > MaxScheduleAhead:
		return fmt.Errorf("%w: ttl is at most %v", ErrBadSchedule, MaxScheduleAhead)
	}
	if s.hub.closed.Load() {
		return ErrClosed
	}
	return nil
}

// poke wakes the loop without waiting.
func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deliver hands a fired message to this node's observers, like Hub.Publish.
func (s *Scheduler) deliver(m Message) *Envelope {
	s.hub.stats.published.Add(1)
	e := NewEnvelope(m)
	if c := s.hub.lookup(m.Channel); c != nil {
		c.deliver(e)
	}
	return e
}

// run is the loop: fire what is due (at once at start: what came due while
// no node ran), then sleep until the next due time, the poll interval, or
// a poke, whichever comes first.
func (s *Scheduler) run() {
	defer close(s.done)
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		wait, err := s.pass()
		switch {
		case err != nil && s.ctx.Err() == nil && !failing:
			failing = true
			s.log.Warn("scheduler cannot read or fire schedules; retrying", "every", s.poll, "err", err)
		case err == nil && failing:
			failing = false
			s.log.Info("scheduler recovered")
		}
		t.Reset(wait)
	}
}

// pass fires every due schedule and returns how long to sleep.
func (s *Scheduler) pass() (time.Duration, error) {
	for s.ctx.Err() == nil {
		now := time.Now()
		due, next, err := s.store.Due(s.ctx, now, dueBatch)
		if err != nil {
			return s.poll, err
		}
		for _, sc := range due {
			if err := s.fire(sc); err != nil {
				return s.poll, err
			}
		}
		if len(due) > 0 {
			continue // read again: firing may have added expiries, more may be due
		}
		if next.IsZero() {
			return s.poll, nil
		}
		return min(s.poll, max(time.Until(next), 0)), nil
	}
	return 0, nil
}

func (s *Scheduler) fire(sc Scheduled) error {
	m, ok, err := s.store.Fire(s.ctx, Firing{Scheduled: sc, Claim: true, Time: time.Now().Truncate(time.Microsecond)})
	if err != nil {
		return fmt.Errorf("fire %s on %s: %w", sc.ID, sc.Channel, err)
	}
	if ok {
		s.deliver(m)
		if f := s.onFire.Load(); f != nil {
			(*f)(m)
		}
		s.log.Debug("scheduled message fired", "channel", m.Channel, "id", m.ID, "schedule", sc.ID, "late", time.Since(sc.At).Round(time.Millisecond), "expired", m.Expired)
	}
	return nil
}

// ceilMilli rounds t up to a whole millisecond (what Redis scores hold), in
// UTC, so rounding never makes a schedule early.
func ceilMilli(t time.Time) time.Time {
	r := t.Truncate(time.Millisecond)
	if r.Before(t) {
		r = r.Add(time.Millisecond)
	}
	return r.UTC()
}

// SortScheduled orders schedules earliest first (ties by id), as Pending
// and Due return them.
func SortScheduled(ss []Scheduled) {
	slices.SortFunc(ss, func(a, b Scheduled) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}
