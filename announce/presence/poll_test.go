package presence_test

import (
	"encoding/json"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
)

// poll is one long-poll of a client: cookie is the ID it presented, or
// the one its answer issues when issued.
func poll(cookie, fingerprint, name string, issued bool) announce.Session {
	s := sess(cookie, "news", announce.Poll, name)
	s.Fingerprint, s.Issued = fingerprint, issued
	return s
}

// pollOnce is one poll answered at once.
func pollOnce(tr *presence.Tracker, p announce.Session) {
	tr.Connected(p)
	tr.Disconnected(p)
}

// nextEvent reads the listener's next event.
func nextEvent(t *testing.T, l *presence.Listener) presence.Event {
	t.Helper()
	select {
	case b := <-l.C():
		var e presence.Event
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no presence event came")
	}
	return presence.Event{}
}

// TestPollCookieKeysTheSession: the cookie the first answer issues is the
// session's key: the client presenting it is one session whatever its
// fingerprint, and a name it adds renames the session (a leave and a join
// for listeners, one session for the sinks).
func TestPollCookieKeysTheSession(t *testing.T) {
	rec := new(recorder)
	tr := newTracker(t, presence.Config{Grace: time.Minute, Events: true, Sinks: []announce.Events{rec}})
	l := tr.Listen("news")
	defer l.Close()
	first := poll("c1", "fp-home", "", true)
	tr.Connected(first)
	// The next poll comes before the first is reported answered (the
	// client was quick), from another network, with another agent.
	moved := poll("c1", "fp-phone", "", false)
	tr.Connected(moved)
	tr.Disconnected(first)
	tr.Disconnected(moved)
	named := poll("c1", "fp-phone-carl", "carl", false)
	for range 3 {
		pollOnce(tr, named)
	}
	if got := tr.Local("news"); got.Poll != 1 || !slices.Equal(got.Names, []string{"carl"}) {
		t.Fatalf("presence %+v, want one poll observer named carl", got)
	}
	if got := tr.Stats().Sessions; got != 1 {
		t.Fatalf("%d sessions, want 1", got)
	}
	want := []presence.Event{
		{Event: "join", Channel: "news", Transport: "poll", Observers: presence.Counts{Poll: 1}, Total: 1},
		{Event: "leave", Channel: "news", Transport: "poll", Observers: presence.Counts{}, Total: 0},
		{Event: "join", Channel: "news", Name: "carl", Transport: "poll", Observers: presence.Counts{Poll: 1}, Total: 1},
	}
	for i, w := range want {
		if got := nextEvent(t, l); got != w {
			t.Fatalf("event %d: %+v, want %+v", i, got, w)
		}
	}
	// A fingerprint-only client like the first poll is another client now:
	// the session belongs to its cookie.
	tr.Connected(poll("c9", "fp-home", "", true))
	if got := tr.Local("news"); got.Poll != 2 {
		t.Fatalf("a cookie-less client with the claimed session's fingerprint: %+v, want 2 poll observers", got)
	}
	_ = tr.Close(t.Context())
	got := rec.got()
	slices.Sort(got)
	if want := []string{"connected c1", "connected c9", "disconnected c1", "disconnected c9"}; !slices.Equal(got, want) {
		t.Fatalf("sinks got %q, want %q", got, want)
	}
}

// TestPollWithoutCookies: a client that keeps no cookie is given a new one
// by every answer and is told apart by its fingerprint; another
// fingerprint is another client. One that later keeps the last cookie it
// was given is still the same session.
func TestPollWithoutCookies(t *testing.T) {
	rec := new(recorder)
	tr := newTracker(t, presence.Config{Grace: time.Minute, Sinks: []announce.Events{rec}})
	for i := range 40 {
		p := poll("issued-"+string(rune('a'+i)), "fp-curl", "", true)
		pollOnce(tr, p)
	}
	other := poll("issued-other", "fp-script", "", true)
	pollOnce(tr, other)
	if got := tr.Local("news"); got.Poll != 2 {
		t.Fatalf("presence %+v, want 2 poll observers (two fingerprints)", got)
	}
	kept := poll("issued-"+string(rune('a'+39)), "fp-moved", "", false)
	pollOnce(tr, kept)
	if got := tr.Stats().Sessions; got != 2 {
		t.Fatalf("%d sessions after the client kept its last cookie, want 2", got)
	}
	// A cookie the server never issued here (another node's, or from
	// before a restart) continues the session of its fingerprint when
	// that one has no cookie presented yet, else begins one.
	foreign := poll("foreign", "fp-script", "", false)
	pollOnce(tr, foreign)
	stranger := poll("stranger", "fp-curl", "", false)
	pollOnce(tr, stranger)
	if got := tr.Local("news"); got.Poll != 3 {
		t.Fatalf("presence %+v, want 3 poll observers", got)
	}
	_ = tr.Close(t.Context())
	got := rec.got()
	slices.Sort(got)
	want := []string{"connected issued-a", "connected issued-other", "connected stranger",
		"disconnected issued-a", "disconnected issued-other", "disconnected stranger"}
	if !slices.Equal(got, want) {
		t.Fatalf("sinks got %q, want %q", got, want)
	}
}

// TestPollSessionExpiresWithEveryKey: a session continued under several
// cookies leaves once, after the grace, and a poll with any of its cookies
// after that begins a new session.
func TestPollSessionExpiresWithEveryKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = 300 * time.Millisecond
		rec := new(recorder)
		tr := newTracker(t, presence.Config{Grace: grace, Sinks: []announce.Events{rec}})
		a := poll("a", "fp", "", true)
		b := poll("b", "fp", "", true)
		tr.Connected(a)
		tr.Connected(b) // two polls at once under two cookies
		if got := tr.Local("news"); got.Poll != 1 {
			t.Fatalf("presence %+v, want one poll observer", got)
		}
		tr.Disconnected(a)
		time.Sleep(grace) // b is still attached: no grace runs yet
		synctest.Wait()
		if got := tr.Local("news"); got.Poll != 1 {
			t.Fatalf("presence %+v with a poll still attached under the other cookie", got)
		}
		tr.Disconnected(b)
		time.Sleep(grace)
		synctest.Wait()
		if got := tr.Local("news"); !got.Empty() || tr.Stats().Sessions != 0 {
			t.Fatalf("presence %+v, %d sessions after the grace; want none", got, tr.Stats().Sessions)
		}
		again := poll("a", "fp", "", false)
		pollOnce(tr, again)
		if got := tr.Local("news"); got.Poll != 1 {
			t.Fatalf("a poll with an expired cookie: presence %+v, want a new session", got)
		}
		time.Sleep(grace)
		synctest.Wait()
		if got := tr.Local("news"); !got.Empty() {
			t.Fatalf("the new session outlived its grace: %+v", got)
		}
		if got := rec.got(); !slices.Equal(got, []string{"connected a", "disconnected a", "connected a", "disconnected a"}) {
			t.Fatalf("sinks got %q", got)
		}
	})
}
