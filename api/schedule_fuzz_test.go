package api_test

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// FuzzScheduleTimes publishes with arbitrary at and ttl. The answer is a
// JSON 400 or: with at, 202 with a schedule in the future and at most 30
// days ahead (rounded up to the millisecond), which DELETE then cancels and
// answers as it was; without, 201. A valid at or ttl, well inside the
// bounds, is accepted; one that is no time or delay, or outside the bounds,
// is refused.
func FuzzScheduleTimes(f *testing.F) {
	soon := time.Now().Add(time.Hour).UTC()
	for _, seed := range []struct{ at, ttl string }{
		{"", ""}, {"", "10m"}, {"", "90"}, {"", "0.5"}, {"", "1ns"}, {"", "0"}, {"", "-1s"}, {"", "720h"},
		{"", "720h1ns"}, {"", "2592000"}, {"", "2592000.5"}, {"", "NaN"}, {"", "Inf"}, {"", "1e308"}, {"", "soon"},
		{"90s", ""}, {"1h30m", "10m"}, {"90", ""}, {"0.5", ""}, {" 60 ", ""}, {"0", ""}, {"-5", ""}, {"1ns", ""},
		{"720h", ""}, {"721h", ""}, {"2592001", ""}, {"-1e400", ""}, {"NaN", ""}, {"+Inf", ""}, {"0x1p10", ""},
		{"1_000", ""}, {"tomorrow", ""}, {soon.Format(time.RFC3339), ""}, {soon.Format(time.RFC3339Nano), "1h"},
		{soon.In(time.FixedZone("", -7*3600)).Format(time.RFC3339), ""}, {"2000-01-01T00:00:00Z", ""},
		{"0001-01-01T00:00:00Z", ""}, {"9999-12-31T23:59:59Z", ""}, {"2026-13-45T25:61:61Z", ""},
		{time.Now().Add(30 * 24 * time.Hour).Add(time.Minute).UTC().Format(time.RFC3339), ""}, {"1m", "720h1s"},
	} {
		f.Add(seed.at, seed.ttl)
	}

	ts := newTestServerHub(f, nil)
	h := ts.API.Handler()
	f.Fuzz(func(t *testing.T, at, ttl string) {
		target := "/channels/sched/messages?" + url.Values{"at": {at}, "ttl": {ttl}}.Encode()
		req, ok := wireRequest("POST "+target+" HTTP/1.1", "Host: fuzz", "Content-Type: text/plain", "Content-Length: 9")
		if !ok {
			t.Fatalf("the encoded target %q does not parse", target)
		}
		req.Body = io.NopCloser(strings.NewReader("scheduled"))
		start := time.Now()
		resp, body := serve(h, req)
		end := time.Now()

		atValid, atInvalid := scheduleAt(at, start, end)
		ttlValid, ttlInvalid := scheduleDelay(ttl)
		if ttl == "" {
			ttlValid, ttlInvalid = true, false
		}
		switch {
		case resp.StatusCode == http.StatusBadRequest:
			assertError(t, resp, body, http.StatusBadRequest)
			if atValid && ttlValid {
				t.Fatalf("at %q ttl %q refused: %s", at, ttl, body)
			}
			return
		case atInvalid || ttlInvalid:
			t.Fatalf("at %q ttl %q: status %d, want 400: %s", at, ttl, resp.StatusCode, body)
		case at == "":
			assertStatus(t, resp, body, http.StatusCreated)
			if m := decodeMessage(t, body); m.Content != "scheduled" || m.Channel != "sched" {
				t.Fatalf("ttl %q: published %+v", ttl, m)
			}
			return
		}

		assertStatus(t, resp, body, http.StatusAccepted)
		sc := decodeScheduled(t, body).Scheduled
		if !sc.At.After(start) || sc.At.After(end.Add(announce.MaxScheduleAhead+time.Millisecond)) {
			t.Fatalf("at %q: scheduled for %v, not in (%v, %v + 30 days]", at, sc.At, start, end)
		}
		if sc.Content != "scheduled" || sc.Channel != "sched" || sc.Expire != 0 {
			t.Fatalf("at %q: scheduled %s", at, body)
		}
		if d, err := time.ParseDuration(sc.TTL); ttl != "" && (err != nil || d <= 0 || d > announce.MaxScheduleAhead) {
			t.Fatalf("ttl %q: scheduled with ttl %q", ttl, sc.TTL)
		} else if ttl == "" && sc.TTL != "" {
			t.Fatalf("no ttl: scheduled with ttl %q", sc.TTL)
		}

		// Cancelled, it answers as it was scheduled; only one already due is gone.
		cancel, _ := wireRequest("DELETE /channels/sched/scheduled/"+sc.ID+" HTTP/1.1", "Host: fuzz")
		resp, cancelled := serve(h, cancel)
		if resp.StatusCode == http.StatusNotFound && !sc.At.After(time.Now()) {
			return // it fired
		}
		assertStatus(t, resp, cancelled, http.StatusOK)
		var was struct{ Scheduled json.RawMessage }
		var got struct{ Cancelled json.RawMessage }
		if json.Unmarshal(body, &was) != nil || json.Unmarshal(cancelled, &got) != nil || string(got.Cancelled) != string(was.Scheduled) {
			t.Fatalf("cancelled %s, scheduled %s", cancelled, body)
		}
	})
}

// scheduleAt tells whether at is surely acceptable at a request made
// between start and end (a time or delay well inside the documented
// bounds: in the future, at most 30 days ahead), or surely not.
func scheduleAt(at string, start, end time.Time) (valid, invalid bool) {
	if at == "" {
		return true, false
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(at)); err == nil {
		valid = t.After(end.Add(time.Second)) && t.Before(start.Add(announce.MaxScheduleAhead-time.Second))
		invalid = !t.After(start) || t.Sub(end) > announce.MaxScheduleAhead
		return valid, invalid
	}
	return scheduleDelay(at)
}

// scheduleDelay tells whether v is surely an acceptable delay (a Go
// duration or a number of seconds from a second to 30 days), or surely not
// (neither, not positive, or over 30 days).
func scheduleDelay(v string) (valid, invalid bool) {
	v = strings.TrimSpace(v)
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(secs) {
		d, err := time.ParseDuration(v)
		if err != nil {
			return false, true
		}
		secs = d.Seconds()
	}
	const most = float64(announce.MaxScheduleAhead / time.Second)
	return secs >= 1 && secs <= most-1, secs <= 0 || secs > most+1
}
