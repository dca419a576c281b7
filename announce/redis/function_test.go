package redis_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/redis"
	"github.com/announce/announce/internal/testenv"
)

// loadLibrary opens a store on addr (the default prefix: the library is
// one per Redis) and loads the function library with a content limit.
func loadLibrary(t *testing.T, addr string, maxMessage int) *redis.Store {
	t.Helper()
	st := openStore(t, addr, redis.Config{History: 10})
	lib, err := st.LoadLibrary(t.Context(), maxMessage, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("LoadLibrary: %v", err)
	}
	t.Cleanup(func() { _ = lib.Close() })
	return st
}

func fcall(c *goredis.Client, channel, content string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.FCall(ctx, "announce_publish", []string{channel}, content).Int64()
}

// checkStored asserts that the channel's last history entry is message id
// with content, in the bytes encoding/json writes for it, and returns it.
func checkStored(t *testing.T, raw *goredis.Client, channel string, id int64, content string) announce.Message {
	t.Helper()
	stored, err := raw.LIndex(context.Background(), "announce:{"+channel+"}:history", -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var m announce.Message
	if err := json.Unmarshal([]byte(stored), &m); err != nil {
		t.Fatalf("stored entry %q: %v", stored, err)
	}
	if want, _ := json.Marshal(m); stored != string(want) {
		t.Fatalf("stored JSON differs from encoding/json:\n got %s\nwant %s", stored, want)
	}
	if m.ID != uint64(id) || m.Channel != channel || m.Content != content {
		t.Fatalf("stored %+v, want id %d content %q", m, id, content)
	}
	return m
}

// TestFunctionPublishSharesTheSequence: FCALL and Append take ids from one
// sequence, land in one history, and the stored JSON is the bytes
// encoding/json writes for the message, for content that needs every kind
// of escape.
func TestFunctionPublishSharesTheSequence(t *testing.T) {
	addr := testenv.Redis(t)
	st := loadLibrary(t, addr, 1000)
	raw := rawClient(t, addr)
	ctx := t.Context()

	if _, err := st.Append(ctx, "news", "from http", time.Now()); err != nil {
		t.Fatal(err)
	}
	contents := []string{
		"data from PHP",
		"<b>&amp;</b> \"quoted\" \\ back\x00slash",
		"\b\f\n\r\t\x01\x1f\x7f end",
		"line\u2028sep\u2029para é 中文 😀",
	}
	for i, c := range contents {
		before := time.Now().Add(-time.Second)
		id, err := fcall(raw, "news", c)
		if err != nil {
			t.Fatalf("FCALL %q: %v", c, err)
		}
		if id != int64(i+2) {
			t.Fatalf("FCALL %q returned id %d, want %d", c, id, i+2)
		}
		m := checkStored(t, raw, "news", id, c)
		if m.Time.Before(before) || m.Time.After(time.Now().Add(time.Second)) {
			t.Fatalf("stored time %v is not now", m.Time)
		}
	}
	m, err := st.Append(ctx, "news", "http again", time.Now())
	if err != nil || m.ID != uint64(len(contents)+2) {
		t.Fatalf("Append after FCALLs: %+v %v, want id %d", m, err, len(contents)+2)
	}
	got, err := st.Since(ctx, "news", 0, 0)
	if err != nil || len(got) != len(contents)+2 {
		t.Fatalf("history: %d messages %v", len(got), err)
	}
}

// TestFunctionPublishRefusesBadInput: a Redis error reply, and nothing
// published, for every input the HTTP API refuses.
func TestFunctionPublishRefusesBadInput(t *testing.T) {
	addr := testenv.Redis(t)
	loadLibrary(t, addr, 8)
	raw := rawClient(t, addr)
	cases := []struct{ channel, content, want string }{
		{"news", "", "content is empty"},
		{"news", "123456789", "content is too large: 9 bytes, the limit is 8"},
		{"news", "\xff", "not valid UTF-8"},
		{"news", "\xed\xa0\x80", "not valid UTF-8"}, // a surrogate
		{"news", "\xc0\xaf", "not valid UTF-8"},     // overlong
		{"news", "ab\xe2\x82", "not valid UTF-8"},   // cut short
		{"bad name", "x", "invalid channel name"},
		{"..", "x", "path segment"},
		{strings.Repeat("c", 65), "x", "1 to 64 characters"},
		{"{news}", "x", "invalid channel name"},
	}
	for _, c := range cases {
		id, err := fcall(raw, c.channel, c.content)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FCALL %q %q = %d, %v; want an error saying %q", c.channel, c.content, id, err, c.want)
		}
	}
	if n, err := raw.DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Fatalf("after refused publishes Redis holds %d keys (%v), want none", n, err)
	}
	if id, err := fcall(raw, "news", "12345678"); err != nil || id != 1 {
		t.Fatalf("content of exactly the limit: %d %v", id, err)
	}
	if _, err := raw.FCall(t.Context(), "announce_publish", []string{"a", "b"}, "x").Result(); err == nil {
		t.Fatal("FCALL with two keys succeeded")
	}
}

// TestFunctionLibraryReloaded: after a Redis restart without persistence
// the library is back within a few checks, and a library of a newer
// version is never replaced.
func TestFunctionLibraryReloaded(t *testing.T) {
	srv := testenv.StartRedis(t)
	loadLibrary(t, srv.Addr, 100)
	srv.Stop()
	srv.Start()
	raw := rawClient(t, srv.Addr)
	var err error
	testenv.WaitFor(t, 20*time.Second, "the library reloaded", func() bool {
		_, err = fcall(raw, "news", "back")
		return err == nil
	})

	newer := "#!lua name=announce\nredis.register_function{function_name = 'announce_version', flags = {'no-writes'}, callback = function() return 99 end}\n"
	if err := raw.FunctionLoadReplace(t.Context(), newer).Err(); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, srv.Addr, redis.Config{})
	lib, err := st.LoadLibrary(t.Context(), 100, time.Hour)
	if err != nil {
		t.Fatalf("LoadLibrary next to a newer library: %v", err)
	}
	defer lib.Close()
	if v, err := raw.FCallRO(t.Context(), "announce_version", nil).Int64(); err != nil || v != 99 {
		t.Fatalf("version after loading ours next to 99: %d %v", v, err)
	}
}

// FuzzFunctionPublish: announce_publish accepts exactly the content
// announce.ValidateContent accepts, and stores the JSON encoding/json writes.
func FuzzFunctionPublish(f *testing.F) {
	addr := testenv.Redis(f)
	st, err := redis.Open(redis.Config{URL: "redis://" + addr, History: 1})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	const max = 64
	lib, err := st.LoadLibrary(context.Background(), max, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	defer lib.Close()
	raw := goredis.NewClient(&goredis.Options{Addr: addr})
	defer raw.Close()
	for _, s := range []string{"hi", "", "\xff", "\xed\x9f\xbf", "\xed\xa0\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80",
		"\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "<&>\u2028\x00\x7f", "\"\\/", strings.Repeat("é", 33)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		id, err := fcall(raw, "fuzz", content)
		if verr := announce.ValidateContent(content, max); verr != nil {
			if err == nil {
				t.Fatalf("FCALL accepted %q (id %d), which ValidateContent refuses: %v", content, id, verr)
			}
			return
		}
		if err != nil {
			t.Fatalf("FCALL refused valid content %q: %v", content, err)
		}
		checkStored(t, raw, "fuzz", id, content)
	})
}
