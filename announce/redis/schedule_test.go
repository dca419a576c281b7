package redis_test

import (
	"encoding/json"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/announce/storetest"
	"github.com/announce/announce/internal/testenv"
)

func TestStoreSchedule(t *testing.T) {
	addr := testenv.Redis(t)
	storetest.RunSchedule(t, storeOpener(addr))
}

// The fire script builds the message JSON like the append script: it must
// still be byte-identical to encoding/json's, with and without "expired".
func TestFiredJSONIsEncodingJSON(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	s := openStore(t, addr, redis.Config{Prefix: prefix})
	raw := rawClient(t, addr)
	now := time.Now().UTC()
	m, ok, err := s.Fire(t.Context(), announce.Firing{Scheduled: announce.Scheduled{Channel: "j", Content: "é \"q\" <b>", TTL: time.Minute}, Time: now})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	exp, err := s.Pending(t.Context(), "j", 0)
	if err != nil || len(exp) != 1 || exp[0].Expire != m.ID {
		t.Fatalf("Pending = %+v, %v", exp, err)
	}
	e, ok, err := s.Fire(t.Context(), announce.Firing{Scheduled: exp[0], Claim: true, Time: now.Add(time.Minute)})
	if err != nil || !ok || e.Expired != m.ID || e.Content != "" {
		t.Fatalf("Fire(expiry) = %+v, %v, %v", e, ok, err)
	}
	stored, err := raw.LRange(t.Context(), prefix+"{j}:history", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []announce.Message{m, e} {
		b, _ := json.Marshal(want)
		if stored[i] != string(b) {
			t.Fatalf("stored %s, encoding/json gives %s", stored[i], b)
		}
	}
	// Every schedule key is gone once nothing is pending.
	for _, k := range []string{prefix + "schedule:due", prefix + "schedule:data", prefix + "{j}:scheduled"} {
		if n, _ := raw.Exists(t.Context(), k).Result(); n != 0 {
			t.Fatalf("%s still exists", k)
		}
	}
}

// A due id without its record (a hand-edited Redis) is dropped rather than
// holding up the schedules behind it.
func TestDueDropsOrphans(t *testing.T) {
	addr := testenv.Redis(t)
	prefix := uniquePrefix()
	s := openStore(t, addr, redis.Config{Prefix: prefix})
	raw := rawClient(t, addr)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 3 {
		raw.ZAdd(t.Context(), prefix+"schedule:due", goredis.Z{Score: float64(now.Add(-time.Hour).UnixMilli()), Member: i})
	}
	sc := announce.Scheduled{ID: "real", Channel: "o", Content: "x", At: now.Add(-time.Minute)}
	if err := s.Schedule(t.Context(), sc, 0); err != nil {
		t.Fatal(err)
	}
	due, _, err := s.Due(t.Context(), now, 2)
	if err != nil || len(due) != 0 {
		t.Fatalf("Due = %+v, %v; want nothing: two orphans came first", due, err)
	}
	due, _, err = s.Due(t.Context(), now, 2)
	if err != nil || len(due) != 1 || due[0] != sc {
		t.Fatalf("Due = %+v, %v; want %+v once the orphans are gone", due, err, sc)
	}
}
