package bolt_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/storetest"
)

func TestStoreSchedule(t *testing.T) {
	storetest.RunSchedule(t, func(t *testing.T, history int) announce.Store {
		return open(t, t.TempDir(), history)
	})
}

func TestStoreScheduleDurable(t *testing.T) {
	storetest.RunScheduleDurable(t, func(t *testing.T, dir string, history int) announce.Store {
		return open(t, dir, history)
	})
}

// An expiry message is stored in the JSON value format; it must read back
// exactly, next to binary-format messages, and encode like any message.
func TestExpiryMessageRoundTrip(t *testing.T) {
	s := open(t, t.TempDir(), 5)
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	m, ok, err := s.Fire(t.Context(), announce.Firing{Scheduled: announce.Scheduled{Channel: "x", Content: "hi", TTL: time.Hour}, Time: now})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	exp, _ := s.Pending(t.Context(), "x", 0)
	e, ok, err := s.Fire(t.Context(), announce.Firing{Scheduled: exp[0], Claim: true, Time: now.Add(time.Second)})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	got, err := s.Since(t.Context(), "x", 0, 0)
	if err != nil || len(got) != 2 || got[0] != m || got[1] != e {
		t.Fatalf("Since = %+v, %v; want [%+v %+v]", got, err, m, e)
	}
	b, _ := json.Marshal(got[1])
	want := `{"id":2,"channel":"x","content":"","time":"` + now.Add(time.Second).Format(time.RFC3339Nano) + `","expired":1}`
	if string(b) != want {
		t.Fatalf("expiry JSON %s, want %s", b, want)
	}
	// Trimming works past expiry values too.
	for range 6 {
		if _, err := s.Append(t.Context(), "x", "more", now); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Since(t.Context(), "x", 0, 0); len(got) != 5 || got[0].ID != 4 {
		t.Fatalf("history after trim: %+v", got)
	}
}
