package presence_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/internal/testenv"
)

// recorder is an announce.Events sink that records what it is told.
type recorder struct {
	mu     sync.Mutex
	events []string // "connected ID", "disconnected ID", "published ID"
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}
func (r *recorder) Connected(s announce.Session)    { r.add("connected " + s.ID) }
func (r *recorder) Disconnected(s announce.Session) { r.add("disconnected " + s.ID) }
func (r *recorder) Published(p announce.Publication) {
	r.add(fmt.Sprintf("published %d", p.ID))
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func newTracker(t *testing.T, cfg presence.Config) *presence.Tracker {
	t.Helper()
	tr, err := presence.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	return tr
}

func sess(id, ch string, tr announce.Transport, name string) announce.Session {
	return announce.Session{ID: id, Channel: ch, Transport: tr, Name: name}
}

func TestCountsAndNames(t *testing.T) {
	tr := newTracker(t, presence.Config{})
	tr.Connected(sess("a", "news", announce.SSE, "alice"))
	tr.Connected(sess("b", "news", announce.WebSocket, "bob"))
	tr.Connected(sess("c", "news", announce.WebSocket, "alice")) // a second tab: one name
	tr.Connected(sess("d", "news", announce.WebSocket, ""))      // anonymous: counted, not named
	tr.Connected(sess("e", "other", announce.SSE, "eve"))
	snap := tr.Snapshot(t.Context(), "news")
	want := presence.Snapshot{Channel: "news", Observers: presence.Counts{SSE: 1, WS: 3}, Total: 4, Names: []string{"alice", "bob"}}
	if !equal(snap, want) {
		t.Fatalf("snapshot %+v, want %+v", snap, want)
	}
	tr.Disconnected(sess("c", "news", announce.WebSocket, "alice"))
	tr.Disconnected(sess("b", "news", announce.WebSocket, "bob"))
	tr.Disconnected(sess("b", "news", announce.WebSocket, "bob")) // twice: harmless
	snap = tr.Snapshot(t.Context(), "news")
	want = presence.Snapshot{Channel: "news", Observers: presence.Counts{SSE: 1, WS: 1}, Total: 2, Names: []string{"alice"}}
	if !equal(snap, want) {
		t.Fatalf("after leaving: %+v, want %+v", snap, want)
	}
	if empty := tr.Snapshot(t.Context(), "nobody"); empty.Total != 0 || empty.Names == nil || len(empty.Names) != 0 {
		t.Fatalf("empty channel: %+v (names must be [] not null)", empty)
	}
}

func equal(a, b presence.Snapshot) bool {
	return a.Channel == b.Channel && a.Observers == b.Observers && a.Total == b.Total &&
		slices.Equal(a.Names, b.Names) && a.Partial == b.Partial
}

// TestPollGrace: a poll client is one session across its polls, present
// between them for the grace, and gone once the grace passes (time is the
// bubble's: each step lands exactly).
func TestPollGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = time.Second
		rec := new(recorder)
		tr := newTracker(t, presence.Config{Grace: grace, Sinks: []announce.Events{rec}})
		p := sess("p1", "news", announce.Poll, "pat")
		for range 5 { // five polls in a row, as a loop makes them
			tr.Connected(p)
			tr.Disconnected(p)
			time.Sleep(grace - time.Millisecond) // each poll just inside the last one's grace
		}
		tr.Connected(p) // two polls at once (two tabs sharing a cookie)
		tr.Connected(p)
		tr.Disconnected(p)
		if got := tr.Local("news"); got.Poll != 1 || !slices.Equal(got.Names, []string{"pat"}) {
			t.Fatalf("during polls: %+v, want one poll observer named pat", got)
		}
		time.Sleep(2 * grace) // longer than the grace, but a poll is still attached
		synctest.Wait()
		if got := tr.Local("news"); got.Poll != 1 {
			t.Fatalf("a poll still waiting was dropped: %+v", got)
		}
		tr.Disconnected(p)
		time.Sleep(grace - time.Nanosecond)
		synctest.Wait()
		if got := tr.Local("news"); got.Poll != 1 {
			t.Fatalf("gone before the grace passed: %+v", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := tr.Local("news"); !got.Empty() {
			t.Fatalf("still present once the grace passed: %+v", got)
		}
		if got := rec.got(); !slices.Equal(got, []string{"connected p1", "disconnected p1"}) {
			t.Fatalf("sinks got %q, want one connected and one disconnected", got)
		}
	})
}

func TestSinksGetSessionsOncePublishedAlways(t *testing.T) {
	rec := new(recorder)
	tr := newTracker(t, presence.Config{Sinks: []announce.Events{rec, nil}})
	s := sess("s1", "news", announce.SSE, "")
	tr.Connected(s)
	tr.Published(announce.Publication{Message: announce.Message{ID: 7, Channel: "news"}})
	tr.Disconnected(s)
	w := sess("w1", "news", announce.WebSocket, "")
	tr.Connected(w) // still attached at Close: a shutdown disconnects it
	_ = tr.Close(t.Context())
	tr.Connected(sess("late", "news", announce.SSE, "")) // after Close: ignored
	want := []string{"connected s1", "published 7", "disconnected s1", "connected w1", "disconnected w1"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("sinks got %q, want %q", got, want)
	}
}

func TestEvents(t *testing.T) {
	tr := newTracker(t, presence.Config{Events: true})
	l := tr.Listen("news")
	defer l.Close()
	other := tr.Listen("other")
	defer other.Close()
	tr.Connected(sess("a", "news", announce.SSE, "alice"))
	tr.Connected(sess("b", "news", announce.WebSocket, "bob"))
	tr.Disconnected(sess("b", "news", announce.WebSocket, "bob"))
	want := []presence.Event{
		{Event: "join", Channel: "news", Name: "alice", Transport: "sse", Observers: presence.Counts{SSE: 1}, Total: 1},
		{Event: "join", Channel: "news", Name: "bob", Transport: "ws", Observers: presence.Counts{SSE: 1, WS: 1}, Total: 2},
		{Event: "leave", Channel: "news", Name: "bob", Transport: "ws", Observers: presence.Counts{SSE: 1}, Total: 1},
	}
	for i, w := range want {
		select {
		case b := <-l.C():
			var got presence.Event
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got != w {
				t.Fatalf("event %d: %s, want %+v", i, b, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d never came", i)
		}
	}
	// One event on the other channel, emitted after news's: the first its
	// listener gets must be that one.
	tr.Connected(sess("c", "other", announce.SSE, "carol"))
	select {
	case b := <-other.C():
		var got presence.Event
		if err := json.Unmarshal(b, &got); err != nil || got.Channel != "other" || got.Name != "carol" {
			t.Fatalf("a listener of another channel got %s first, want carol's join", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other channel's event never came")
	}
}

func TestNoEventsWhenOff(t *testing.T) {
	tr := newTracker(t, presence.Config{})
	if l := tr.Listen("news"); l != nil || l.C() != nil {
		t.Fatal("Listen with events off returned a listener")
	}
	var l *presence.Listener
	l.Close() // safe on nil
}

// TestSlowListener: a listener that never reads loses events, nobody waits.
func TestSlowListener(t *testing.T) {
	tr := newTracker(t, presence.Config{Events: true})
	l := tr.Listen("news")
	defer l.Close()
	for i := range 100 {
		tr.Connected(sess(fmt.Sprint(i), "news", announce.SSE, ""))
	}
	testenv.WaitFor(t, 10*time.Second, "drops to be counted", func() bool { return tr.Stats().ListenerDropped > 0 })
	if n := tr.Local("news").SSE; n != 100 {
		t.Fatalf("counted %d, want 100", n)
	}
}

// memBackend is a Backend in memory shared by trackers, honouring ttl.
type memBackend struct {
	mu        sync.Mutex
	entries   map[string]map[string]entry // channel → node → entry
	listeners []func(node, channel string, event []byte)
	fail      bool
}

type entry struct {
	st  presence.State
	exp time.Time
}

func newMemBackend() *memBackend { return &memBackend{entries: make(map[string]map[string]entry)} }

// view is one node's handle; Close does not close the shared backend.
type view struct{ *memBackend }

func (v view) Close() error { return nil }

func (m *memBackend) Put(_ context.Context, node string, states map[string]presence.State, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return fmt.Errorf("%w: down", announce.ErrUnavailable)
	}
	for ch, st := range states {
		if m.entries[ch] == nil {
			m.entries[ch] = make(map[string]entry)
		}
		if st.Empty() {
			delete(m.entries[ch], node)
		} else {
			m.entries[ch][node] = entry{st, time.Now().Add(ttl)}
		}
	}
	return nil
}

func (m *memBackend) Read(_ context.Context, channel string) (map[string]presence.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, fmt.Errorf("%w: down", announce.ErrUnavailable)
	}
	out := make(map[string]presence.State)
	for node, e := range m.entries[channel] {
		if time.Now().Before(e.exp) {
			out[node] = e.st
		}
	}
	return out, nil
}

func (m *memBackend) Broadcast(_ context.Context, node, channel string, event []byte) error {
	m.mu.Lock()
	ls := slices.Clone(m.listeners)
	m.mu.Unlock()
	for _, fn := range ls {
		fn(node, channel, event)
	}
	return nil
}

func (m *memBackend) Listen(fn func(node, channel string, event []byte)) error {
	m.mu.Lock()
	m.listeners = append(m.listeners, fn)
	m.mu.Unlock()
	return nil
}

func (m *memBackend) setFail(v bool) {
	m.mu.Lock()
	m.fail = v
	m.mu.Unlock()
}

// TestAcrossNodes: two trackers on one backend see each other's observers;
// one closing takes its observers out at once.
func TestAcrossNodes(t *testing.T) {
	be := newMemBackend()
	a := newTracker(t, presence.Config{Node: "A", Backend: view{be}, Heartbeat: 50 * time.Millisecond, Events: true})
	b := newTracker(t, presence.Config{Node: "B", Backend: view{be}, Heartbeat: 50 * time.Millisecond, Events: true})
	lb := b.Listen("news")
	defer lb.Close()
	a.Connected(sess("a1", "news", announce.SSE, "alice"))
	a.Connected(sess("a2", "news", announce.Poll, ""))
	b.Connected(sess("b1", "news", announce.WebSocket, "bob"))
	want := presence.Snapshot{Channel: "news", Observers: presence.Counts{Poll: 1, SSE: 1, WS: 1}, Total: 3, Names: []string{"alice", "bob"}}
	for _, tr := range []*presence.Tracker{a, b} {
		testenv.WaitFor(t, 10*time.Second, "both nodes' observers on "+tr.Node(), func() bool { return equal(tr.Snapshot(t.Context(), "news"), want) })
	}
	// B's listener hears A's joins too (and its own).
	heard := map[string]bool{}
	testenv.WaitFor(t, 10*time.Second, "B to hear every join", func() bool {
		select {
		case ev := <-lb.C():
			var e presence.Event
			_ = json.Unmarshal(ev, &e)
			heard[e.Name+"/"+e.Transport] = true
		default:
		}
		return heard["alice/sse"] && heard["/poll"] && heard["bob/ws"]
	})

	_ = a.Close(t.Context())
	if got := b.Snapshot(t.Context(), "news"); got.Total != 1 || !slices.Equal(got.Names, []string{"bob"}) {
		t.Fatalf("after A closed, B sees %+v, want bob alone", got)
	}
}

// TestBackendDown: presence answers this node's counts, marked partial,
// and catches up once the backend is back.
func TestBackendDown(t *testing.T) {
	be := newMemBackend()
	a := newTracker(t, presence.Config{Node: "A", Backend: view{be}, Heartbeat: 30 * time.Millisecond})
	b := newTracker(t, presence.Config{Node: "B", Backend: view{be}, Heartbeat: 30 * time.Millisecond})
	be.setFail(true)
	a.Connected(sess("a1", "news", announce.SSE, ""))
	b.Connected(sess("b1", "news", announce.SSE, ""))
	if got := a.Snapshot(t.Context(), "news"); !got.Partial || got.Total != 1 {
		t.Fatalf("backend down: %+v, want this node's 1, partial", got)
	}
	be.setFail(false)
	testenv.WaitFor(t, 10*time.Second, "the counts to meet again", func() bool {
		got := a.Snapshot(t.Context(), "news")
		return !got.Partial && got.Total == 2
	})
	// A shutdown with the backend down succeeds: the entries age out.
	be.setFail(true)
	if err := a.Close(t.Context()); err != nil {
		t.Fatalf("Close with the backend down: %v", err)
	}
}

// TestEntriesExpire: a node that stops refreshing (crashed) ages out: its
// entry's TTL, then this node's cache of other nodes' counts.
func TestEntriesExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 100 * time.Millisecond
		be := newMemBackend()
		_ = be.Put(t.Context(), "crashed", map[string]presence.State{"news": {Counts: presence.Counts{WS: 5}}}, ttl)
		a := newTracker(t, presence.Config{Node: "A", Backend: view{be}})
		if got := a.Snapshot(t.Context(), "news"); got.Total != 5 {
			t.Fatalf("fresh entry: %+v", got)
		}
		time.Sleep(ttl + 2*time.Second) // past the TTL and the cache of others' counts
		if got := a.Snapshot(t.Context(), "news"); got.Total != 0 {
			t.Fatalf("the crashed node's entry is still counted: %+v", got)
		}
	})
}

func TestConcurrent(t *testing.T) {
	rec := new(recorder)
	tr := newTracker(t, presence.Config{Events: true, Grace: time.Millisecond, Sinks: []announce.Events{rec}})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			l := tr.Listen("news")
			defer l.Close()
			for i := range 200 {
				tp := announce.Transports[i%3]
				s := sess(fmt.Sprintf("%d-%d-%s", g, i%5, tp), "news", tp, fmt.Sprint(i%7))
				tr.Connected(s)
				_ = tr.Snapshot(context.Background(), "news")
				tr.Disconnected(s)
			}
		})
	}
	wg.Wait()
	testenv.WaitFor(t, 10*time.Second, "every session to end", func() bool { return tr.Local("news").Empty() && tr.Stats().Sessions == 0 })
	conn, disc := 0, 0
	for _, e := range rec.got() {
		switch e[0] {
		case 'c':
			conn++
		case 'd':
			disc++
		}
	}
	if conn != disc || conn == 0 {
		t.Fatalf("%d connected, %d disconnected", conn, disc)
	}
}
