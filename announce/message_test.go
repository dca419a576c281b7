package announce_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/announce/announce/announce"
)

func TestValidateChannel(t *testing.T) {
	cases := []struct {
		name  string
		valid bool
	}{
		{"a", true},
		{strings.Repeat("a", 64), true},
		{"default", true},
		{"Az09_.:-", true},
		{"news.eu:fr-1", true},
		{"...", true}, // only "." and ".." are path segments
		{".a", true},

		{"", false},
		{strings.Repeat("a", 65), false},
		{"/", false},
		{"a/b", false},
		// The character class admits '.', so the SPEC's regex alone would
		// accept "." and "..". SPEC 4a wants ".." in a path to answer 400, and
		// routers and proxies collapse these segments, so ValidateChannel
		// rejects both on purpose.
		{".", false},
		{"..", false},
		{"a b", false},
		{" a", false},
		{"é", false},
		{"日本", false},
		{"ch%2F", false},
		{"a\x00", false},
		{"a\n", false},
		{"\xff", false},
		{"a+b", false},
		{"a?b", false},
	}
	for _, c := range cases {
		err := announce.ValidateChannel(c.name)
		if c.valid && err != nil {
			t.Errorf("ValidateChannel(%q) = %v, want nil", c.name, err)
		}
		if !c.valid && !errors.Is(err, announce.ErrInvalidChannel) {
			t.Errorf("ValidateChannel(%q) = %v, want ErrInvalidChannel", c.name, err)
		}
	}
}

func TestValidateContent(t *testing.T) {
	cases := []struct {
		content string
		max     int
		want    error
	}{
		{"x", 10, nil},
		{"0123456789", 10, nil}, // exactly max
		{"0123456789a", 10, announce.ErrMessageTooLarge}, // max + 1
		{"é", 1, announce.ErrMessageTooLarge},            // the limit is in bytes, not runes
		{"é", 2, nil},
		{strings.Repeat("x", 1<<20), 0, nil}, // max <= 0: no limit
		{"", 10, announce.ErrEmptyContent},
		{"", 0, announce.ErrEmptyContent},
		{"\xff", 10, announce.ErrInvalidUTF8},
		{"ok\xc3", 10, announce.ErrInvalidUTF8}, // truncated sequence
		{`{"json":"in content"}`, 64, nil},
	}
	for _, c := range cases {
		err := announce.ValidateContent(c.content, c.max)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("ValidateContent(%.20q, %d) = %v, want %v", c.content, c.max, err, c.want)
		}
	}
}

var channelRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

func FuzzValidateChannel(f *testing.F) {
	for _, s := range []string{"a", "default", "..", ".", "...", "a/b", "%2F", "é", strings.Repeat("z", 64), strings.Repeat("z", 65), "\xff", "a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := announce.ValidateChannel(name)
		// The regex of the SPEC, minus the path segments "." and ".."
		// (see TestValidateChannel).
		want := channelRE.MatchString(name) && name != "." && name != ".."
		if got := err == nil; got != want {
			t.Fatalf("ValidateChannel(%q) = %v, regexp says valid=%v", name, err, want)
		}
		if err != nil && !errors.Is(err, announce.ErrInvalidChannel) {
			t.Fatalf("ValidateChannel(%q) = %v, not an ErrInvalidChannel", name, err)
		}
	})
}

func FuzzValidateContent(f *testing.F) {
	f.Add("hello", 10)
	f.Add("", 10)
	f.Add("\xff", 10)
	f.Add("héllo", 2)
	f.Add("x", 0)
	f.Add("x", -1)
	f.Fuzz(func(t *testing.T, content string, max int) {
		err := announce.ValidateContent(content, max)
		fits := max <= 0 || len(content) <= max
		acceptable := content != "" && utf8.ValidString(content) && fits
		if (err == nil) != acceptable {
			t.Fatalf("ValidateContent(%q, %d) = %v; want accepted=%v", content, max, err, acceptable)
		}
		if err == nil {
			return
		}
		switch {
		case content == "":
			if !errors.Is(err, announce.ErrEmptyContent) {
				t.Fatalf("empty content: %v", err)
			}
		case !fits:
			if !errors.Is(err, announce.ErrMessageTooLarge) {
				t.Fatalf("ValidateContent(%d bytes, %d) = %v, want ErrMessageTooLarge", len(content), max, err)
			}
		default:
			if !errors.Is(err, announce.ErrInvalidUTF8) {
				t.Fatalf("ValidateContent(%q, %d) = %v, want ErrInvalidUTF8", content, max, err)
			}
		}
	})
}

func TestMessageJSON(t *testing.T) {
	// A channel with nothing published: SPEC 4a, exactly these fields, no time.
	empty := `{"id":0,"channel":"x","content":""}`
	if b, _ := json.Marshal(announce.Message{Channel: "x"}); string(b) != empty {
		t.Errorf("empty message JSON = %s, want %s", b, empty)
	}
	if e := announce.NewEnvelope(announce.Message{Channel: "x"}); string(e.JSON) != empty {
		t.Errorf("empty envelope JSON = %s, want %s", e.JSON, empty)
	}

	at := time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)
	m := announce.Message{ID: 42, Channel: "default", Content: "Server maintenance at 22:00", Time: at}
	want := `{"id":42,"channel":"default","content":"Server maintenance at 22:00","time":"2026-11-22T10:00:00.123456Z"}`
	e := announce.NewEnvelope(m)
	if string(e.JSON) != want {
		t.Errorf("envelope JSON = %s, want %s", e.JSON, want)
	}
	var back announce.Message
	if err := json.Unmarshal(e.JSON, &back); err != nil || back != m {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, m)
	}
}

var (
	testBuilds    atomic.Int32
	testSSEFormat = announce.NewWireFormat(func(e *announce.Envelope) any {
		testBuilds.Add(1)
		return "data: " + string(e.JSON)
	})
	testWSFormat = announce.NewWireFormat(func(*announce.Envelope) any { return 7 })
)

func TestEnvelopeWireBuildsOncePerFormat(t *testing.T) {
	e := announce.NewEnvelope(announce.Message{ID: 1, Channel: "x", Content: "hi"})
	testBuilds.Store(0)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if v := e.Wire(testSSEFormat); v != "data: "+string(e.JSON) {
				t.Errorf("Wire = %v", v)
			}
		})
	}
	wg.Wait()
	if n := testBuilds.Load(); n != 1 {
		t.Errorf("built the SSE form %d times, want 1", n)
	}
	if v := e.Wire(testWSFormat); v != 7 {
		t.Errorf("second format = %v, want its own value", v)
	}
}
