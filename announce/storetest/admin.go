package storetest

import (
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// RunAdmin checks the guarantees of announce.ChannelAdmin. open is as for
// Run; the store must implement ChannelAdmin and ScheduleStore.
func RunAdmin(t *testing.T, open func(t *testing.T, history int) announce.Store) {
	t.Helper()
	fresh := func(t *testing.T) (announce.Store, announce.ChannelAdmin) {
		s := open(t, 100)
		t.Cleanup(func() { _ = s.Close() })
		a, ok := s.(announce.ChannelAdmin)
		if !ok {
			t.Fatalf("%T does not implement announce.ChannelAdmin", s)
		}
		return s, a
	}
	t.Run("CountAndDelete", func(t *testing.T) {
		s, a := fresh(t)
		checkChannels(t, a, 0)
		mustAppend(t, s, "a", "a1")
		mustAppend(t, s, "a", "a2")
		mustAppend(t, s, "b", "b1")
		checkChannels(t, a, 2)
		if err := a.Delete(t.Context(), "a"); err != nil {
			t.Fatal(err)
		}
		if err := a.Delete(t.Context(), "never"); err != nil {
			t.Fatalf("Delete of an unknown channel: %v", err)
		}
		checkChannels(t, a, 1)
		checkCurrent(t, s, "a", 0, "")
		checkSince(t, s, "a", 0, 0, 0, 0)
		checkCurrent(t, s, "b", 1, "b1")
		if m := mustAppend(t, s, "a", "again"); m.ID != 1 {
			t.Fatalf("first id after Delete = %d, want 1", m.ID)
		}
		checkChannels(t, a, 2)
	})
	t.Run("DeleteTakesSchedules", func(t *testing.T) {
		s, a := fresh(t)
		ss := s.(announce.ScheduleStore)
		at := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		for _, sc := range []announce.Scheduled{
			{ID: "00000000-0000-0000-0000-000000000001", Channel: "gone", Content: "x", At: at},
			{ID: "00000000-0000-0000-0000-000000000002", Channel: "gone", Content: "y", At: at},
			{ID: "00000000-0000-0000-0000-000000000003", Channel: "kept", Content: "z", At: at},
		} {
			if err := ss.Schedule(t.Context(), sc, 0); err != nil {
				t.Fatal(err)
			}
		}
		checkScheduledTotal(t, a, 3)
		if err := a.Delete(t.Context(), "gone"); err != nil {
			t.Fatal(err)
		}
		checkScheduledTotal(t, a, 1)
		if p, err := ss.Pending(t.Context(), "gone", 0); err != nil || len(p) != 0 {
			t.Fatalf("Pending after Delete = %v, %v; want none", p, err)
		}
		due, _, err := ss.Due(t.Context(), at.Add(time.Minute), 10)
		if err != nil || len(due) != 1 || due[0].Channel != "kept" {
			t.Fatalf("Due after Delete = %v, %v; want only kept's", due, err)
		}
	})
	t.Run("Idle", func(t *testing.T) {
		s, a := fresh(t)
		old := time.Now().Add(-time.Hour)
		if _, err := s.Append(t.Context(), "old", "x", old); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, "new", "y")
		got, err := a.Idle(t.Context(), time.Now().Add(-time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != "old" {
			t.Fatalf("Idle = %v, want [old]", got)
		}
		if got, _ := a.Idle(t.Context(), time.Now().Add(time.Minute), 1); len(got) != 1 {
			t.Fatalf("Idle with limit 1 = %v, want one name", got)
		}
	})
}

func checkChannels(t *testing.T, a announce.ChannelAdmin, want int) {
	t.Helper()
	if n, err := a.Channels(t.Context()); err != nil || n != want {
		t.Fatalf("Channels = %d, %v; want %d", n, err, want)
	}
}

func checkScheduledTotal(t *testing.T, a announce.ChannelAdmin, want int) {
	t.Helper()
	if n, err := a.ScheduledTotal(t.Context()); err != nil || n != want {
		t.Fatalf("ScheduledTotal = %d, %v; want %d", n, err, want)
	}
}
