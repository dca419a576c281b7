package api_test

import (
	"bytes"
	"encoding/json"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
	"github.com/announce/announce/internal/testenv"
	"github.com/google/uuid"
)

// scheduledAnswer is the body of a 202 scheduled publish.
type scheduledAnswer struct {
	Scheduled struct {
		ID      string    `json:"id"`
		Channel string    `json:"channel"`
		Content string    `json:"content"`
		At      time.Time `json:"at"`
		TTL     string    `json:"ttl"`
		Expire  uint64    `json:"expire"`
	} `json:"scheduled"`
}

func decodeScheduled(t testing.TB, body []byte) scheduledAnswer {
	t.Helper()
	var a scheduledAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("not a scheduled answer: %q: %v", body, err)
	}
	if _, err := uuid.Parse(a.Scheduled.ID); err != nil {
		t.Fatalf("scheduled id %q is not a UUID: %s", a.Scheduled.ID, body)
	}
	return a
}

func (ts *testServer) delete(t testing.TB, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, nil, req)
}

func (ts *testServer) getWith(t testing.TB, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, nil, req)
}

func TestScheduledPublishAnswers202(t *testing.T) {
	ts := newTestServer(t)
	hour := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	for name, c := range map[string]struct {
		path, ctype, body string
		wantContent       string
		wantAt            func(before, after time.Time) (time.Time, time.Time)
		wantTTL           string
	}{
		"JSONDelay": {"/channels/j/messages", "application/json", `{"content":"in 90s","at":"90s","ttl":"10m"}`, "in 90s",
			func(b, a time.Time) (time.Time, time.Time) {
				return b.Add(90 * time.Second), a.Add(90*time.Second + time.Millisecond)
			}, "10m0s"},
		"JSONSeconds": {"/channels/j/messages", "application/json", `{"content":"in 60.5s","at":60.5,"ttl":null}`, "in 60.5s",
			func(b, a time.Time) (time.Time, time.Time) {
				return b.Add(60500 * time.Millisecond), a.Add(60501 * time.Millisecond)
			}, ""},
		"JSONTime": {"/channels/j/messages", "application/json", `{"content":"at an hour","at":"` + hour.Format(time.RFC3339Nano) + `"}`, "at an hour",
			func(time.Time, time.Time) (time.Time, time.Time) { return hour, hour }, ""},
		"Form": {"/channels/f/messages", "application/x-www-form-urlencoded", "content=form&at=120&ttl=30", "form",
			func(b, a time.Time) (time.Time, time.Time) {
				return b.Add(2 * time.Minute), a.Add(2*time.Minute + time.Millisecond)
			}, "30s"},
		"TextQuery": {"/channels/q/messages?at=" + url.QueryEscape(hour.Format(time.RFC3339)), "text/plain", "plain", "plain",
			func(time.Time, time.Time) (time.Time, time.Time) {
				return hour.Truncate(time.Second), hour.Truncate(time.Second)
			}, ""},
		"SeedChat": {"/chat?at=1h", "application/x-www-form-urlencoded", "content=seed", "seed",
			func(b, a time.Time) (time.Time, time.Time) {
				return b.Add(time.Hour), a.Add(time.Hour + time.Millisecond)
			}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			before := time.Now()
			resp, body := ts.post(t, c.path, c.ctype, []byte(c.body))
			after := time.Now()
			assertStatus(t, resp, body, http.StatusAccepted)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Content-Type %q, Cache-Control %q", ct, resp.Header.Get("Cache-Control"))
			}
			a := decodeScheduled(t, body).Scheduled
			lo, hi := c.wantAt(before, after)
			if a.Content != c.wantContent || a.At.Before(lo) || a.At.After(hi) || a.TTL != c.wantTTL || a.Expire != 0 {
				t.Fatalf("scheduled %+v, want content %q, at in [%v, %v], ttl %q", a, c.wantContent, lo, hi, c.wantTTL)
			}
			wantChannel := "default" // POST /chat
			if parts := strings.Split(c.path, "/"); len(parts) > 2 {
				wantChannel = parts[2]
			}
			if a.Channel != wantChannel {
				t.Fatalf("channel %q, want %q", a.Channel, wantChannel)
			}
		})
	}
	// Nothing was published, and the list shows them, earliest first.
	if n := ts.Hub.Stats().Published(); n != 0 {
		t.Fatalf("published %d at once", n)
	}
	resp, body := ts.get(t, "/channels/j/scheduled")
	assertStatus(t, resp, body, http.StatusOK)
	var list struct {
		Channel   string `json:"channel"`
		Scheduled []struct {
			Content string    `json:"content"`
			At      time.Time `json:"at"`
		} `json:"scheduled"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if list.Channel != "j" || len(list.Scheduled) != 3 || list.Scheduled[0].Content != "in 60.5s" || list.Scheduled[2].Content != "at an hour" {
		t.Fatalf("list %s", body)
	}
}

func TestScheduledPublishFires(t *testing.T) {
	ts := newTestServer(t)
	sse := openSSE(t, ts.URL+"/channels/later/events")
	resp, body := ts.post(t, "/channels/later/messages", "application/json", []byte(`{"content":"now it is time","at":"300ms"}`))
	assertStatus(t, resp, body, http.StatusAccepted)
	at := decodeScheduled(t, body).Scheduled.At
	m := sse.nextMessage(t)
	if m.ID != 1 || m.Content != "now it is time" || m.Time.Before(at) {
		t.Fatalf("fired %+v, want id 1 not before %v", m, at)
	}
	if late := m.Time.Sub(at); late > 3*time.Second {
		t.Fatalf("fired %v late", late)
	}
	resp, body = ts.get(t, "/channels/later/scheduled")
	assertStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(string(body), `"scheduled":[]`) {
		t.Fatalf("list after firing: %s", body)
	}
}

func TestScheduleBadInputs(t *testing.T) {
	ts := newTestServer(t)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	far := time.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339)
	for name, c := range map[string]struct{ ctype, path, body string }{
		"AtPast":         {"application/json", "", `{"content":"x","at":"` + past + `"}`},
		"AtFar":          {"application/json", "", `{"content":"x","at":"` + far + `"}`},
		"AtFarDelay":     {"application/json", "", `{"content":"x","at":"745h"}`},
		"AtFarSeconds":   {"application/json", "", `{"content":"x","at":1e12}`},
		"AtZero":         {"application/json", "", `{"content":"x","at":0}`},
		"AtNegative":     {"application/json", "", `{"content":"x","at":"-5s"}`},
		"AtWords":        {"application/json", "", `{"content":"x","at":"tomorrow"}`},
		"AtBool":         {"application/json", "", `{"content":"x","at":true}`},
		"AtObject":       {"application/json", "", `{"content":"x","at":{}}`},
		"AtNaN":          {"text/plain", "?at=NaN", "x"},
		"TTLZero":        {"application/json", "", `{"content":"x","ttl":"0s"}`},
		"TTLNegative":    {"application/x-www-form-urlencoded", "", "content=x&ttl=-1"},
		"TTLWords":       {"text/plain", "?ttl=forever", "x"},
		"TTLFar":         {"application/json", "", `{"content":"x","ttl":"721h"}`},
		"TTLWithAtBad":   {"application/json", "", `{"content":"x","at":"1m","ttl":"nope"}`},
		"EmptyContentAt": {"application/json", "", `{"content":"","at":"1m"}`},
		"EmptyTTL":       {"text/plain", "?ttl=1m", ""},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := ts.post(t, "/channels/bad/messages"+c.path, c.ctype, []byte(c.body))
			assertError(t, resp, body, http.StatusBadRequest)
		})
	}
	t.Run("IdempotencyKeyWithAt", func(t *testing.T) {
		resp, body := ts.post(t, "/channels/bad/messages", "application/json", []byte(`{"content":"x","at":"1m"}`), "Idempotency-Key", "k1")
		assertError(t, resp, body, http.StatusBadRequest)
	})
	t.Run("CancelNotAUUID", func(t *testing.T) {
		resp, body := ts.delete(t, "/channels/bad/scheduled/nope")
		assertError(t, resp, body, http.StatusBadRequest)
	})
	t.Run("CancelUnknown", func(t *testing.T) {
		resp, body := ts.delete(t, "/channels/bad/scheduled/"+uuid.NewString())
		assertError(t, resp, body, http.StatusNotFound)
	})
	t.Run("BadChannel", func(t *testing.T) {
		resp, body := ts.raw(t, http.MethodGet, "/channels/a%2Fb/scheduled")
		assertError(t, resp, body, http.StatusBadRequest)
	})
	if n := ts.Hub.Stats().Published(); n != 0 {
		t.Fatalf("bad requests published %d messages", n)
	}
	if p, _ := ts.Hub.Scheduler().Pending(t.Context(), "bad", 0); len(p) != 0 {
		t.Fatalf("bad requests scheduled %+v", p)
	}
}

func TestScheduleListAndCancelNeedTheKey(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) { c.PublishKey = "sesame" })
	auth := []string{"Authorization", "Bearer sesame"}
	wrong := []string{"Authorization", "Bearer nope"}
	body := []byte(`{"content":"secret plan","at":"1h"}`)
	resp, b := ts.post(t, "/channels/k/messages", "application/json", body)
	assertError(t, resp, b, http.StatusUnauthorized)
	resp, b = ts.post(t, "/channels/k/messages", "application/json", body, auth...)
	assertStatus(t, resp, b, http.StatusAccepted)
	id := decodeScheduled(t, b).Scheduled.ID

	resp, b = ts.get(t, "/channels/k/scheduled")
	assertError(t, resp, b, http.StatusUnauthorized)
	resp, b = ts.getWith(t, "/channels/k/scheduled", wrong...)
	assertError(t, resp, b, http.StatusForbidden)
	resp, b = ts.getWith(t, "/channels/k/scheduled", auth...)
	assertStatus(t, resp, b, http.StatusOK)
	if !strings.Contains(string(b), id) {
		t.Fatalf("list %s lacks %s", b, id)
	}

	resp, b = ts.delete(t, "/channels/k/scheduled/"+id)
	assertError(t, resp, b, http.StatusUnauthorized)
	resp, b = ts.delete(t, "/channels/k/scheduled/"+id, wrong...)
	assertError(t, resp, b, http.StatusForbidden)
	resp, b = ts.delete(t, "/channels/other/scheduled/"+id, auth...)
	assertError(t, resp, b, http.StatusNotFound)
	resp, b = ts.delete(t, "/channels/k/scheduled/"+id, auth...)
	assertStatus(t, resp, b, http.StatusOK)
	var cancelled struct {
		Cancelled struct{ ID, Content string } `json:"cancelled"`
	}
	if err := json.Unmarshal(b, &cancelled); err != nil || cancelled.Cancelled.ID != id || cancelled.Cancelled.Content != "secret plan" {
		t.Fatalf("cancel answered %s (%v)", b, err)
	}
	resp, b = ts.delete(t, "/channels/k/scheduled/"+id, auth...)
	assertError(t, resp, b, http.StatusNotFound)
	resp, b = ts.getWith(t, "/channels/k/scheduled", auth...)
	assertStatus(t, resp, b, http.StatusOK)
	if !strings.Contains(string(b), `"scheduled":[]`) {
		t.Fatalf("list after cancel: %s", b)
	}
}

func TestCancelledScheduleNeverFires(t *testing.T) {
	ts := newTestServer(t)
	resp, b := ts.post(t, "/channels/nf/messages", "application/json", []byte(`{"content":"x","at":"400ms"}`))
	assertStatus(t, resp, b, http.StatusAccepted)
	resp, b = ts.delete(t, "/channels/nf/scheduled/"+decodeScheduled(t, b).Scheduled.ID)
	assertStatus(t, resp, b, http.StatusOK)
	// A witness due after it: once the witness fired, the cancelled one
	// would have too.
	resp, b = ts.post(t, "/channels/nf/messages", "application/json", []byte(`{"content":"witness","at":"800ms"}`))
	assertStatus(t, resp, b, http.StatusAccepted)
	testenv.WaitFor(t, 30*time.Second, "the witness to fire", func() bool { return ts.Hub.Stats().Published() > 0 })
	if n := ts.Hub.Stats().Published(); n != 1 {
		t.Fatalf("%d publishes, want the witness alone: a cancelled schedule fired", n)
	}
	if resp, b := ts.get(t, "/channels/nf/messages?since=0"); !strings.Contains(string(b), `"witness"`) || strings.Contains(string(b), `"x"`) {
		t.Fatalf("the log holds %d %s, want the witness alone", resp.StatusCode, b)
	}
}

// The expiry reaches observers of every transport as a message with content
// "" and "expired": the id it expired.
func TestTTLExpirySeenByEveryTransport(t *testing.T) {
	ts := newTestServer(t)
	sse := openSSE(t, ts.URL+"/channels/brief/events")
	ws := dialWS(t, ts, "/channels/brief/ws")
	waitObservers(t, ts.Hub, announce.WebSocket, 1)

	resp, b := ts.post(t, "/channels/brief/messages", "application/json", []byte(`{"content":"gone soon","ttl":"300ms"}`))
	assertStatus(t, resp, b, http.StatusCreated)
	m := decodeMessage(t, b)
	if m.ID != 1 || m.Content != "gone soon" || strings.Contains(string(b), "expired") {
		t.Fatalf("publish with ttl answered %s", b)
	}
	// The long-poll waits from id 1 for the next change: the expiry.
	type answer struct {
		body []byte
		err  error
	}
	polled := make(chan answer, 1)
	go func() {
		r, err := http.Get(ts.URL + "/channels/brief/status?since=1&timeout=10")
		if err != nil {
			polled <- answer{err: err}
			return
		}
		defer r.Body.Close()
		var buf bytes.Buffer
		_, err = buf.ReadFrom(r.Body)
		polled <- answer{buf.Bytes(), err}
	}()

	wantExpiry := func(how string, x announce.Message) {
		t.Helper()
		if x.ID != 2 || x.Content != "" || x.Expired != 1 || x.Time.Before(m.Time.Add(300*time.Millisecond)) {
			t.Fatalf("%s: %+v, want id 2, content \"\", expired 1, not before %v", how, x, m.Time.Add(300*time.Millisecond))
		}
	}
	sse.expectIDs(t, 1)
	wantExpiry("SSE", sse.nextMessage(t))
	if f := readWSMessage(t, ws); f.ID != 1 {
		t.Fatalf("WebSocket: %s", f.Raw)
	}
	f := readWSMessage(t, ws)
	var x announce.Message
	if err := json.Unmarshal([]byte(f.Raw), &x); err != nil {
		t.Fatal(err)
	}
	wantExpiry("WebSocket", x)
	a := <-polled
	if a.err != nil {
		t.Fatal(a.err)
	}
	wantExpiry("long-poll", decodeMessage(t, a.body))

	// A seed client reads data.content: it is there, and empty.
	resp, b = ts.get(t, "/channels/brief")
	assertStatus(t, resp, b, http.StatusOK)
	if !strings.Contains(string(b), `"content":"","time":`) || !strings.Contains(string(b), `"expired":1`) {
		t.Fatalf("channel info after expiry: %s", b)
	}
}

func TestTTLNoOpWhenSuperseded(t *testing.T) {
	ts := newTestServer(t)
	resp, b := ts.post(t, "/channels/sup/messages?ttl=0.2", "text/plain", []byte("brief"))
	assertStatus(t, resp, b, http.StatusCreated)
	ts.Publish(t, "sup", "newer")
	testenv.WaitFor(t, 5*time.Second, "the stale expiry to be taken", func() bool {
		p, _ := ts.Hub.Scheduler().Pending(t.Context(), "sup", 0)
		return len(p) == 0
	})
	resp, b = ts.get(t, "/channels/sup/messages?since=0")
	assertStatus(t, resp, b, http.StatusOK)
	var log []announce.Message
	if err := json.Unmarshal(b, &log); err != nil || len(log) != 2 || log[1].Content != "newer" {
		t.Fatalf("log %s (%v), want the two published messages only", b, err)
	}
}

func TestTTLListedAndCancellable(t *testing.T) {
	ts := newTestServer(t)
	resp, b := ts.post(t, "/channels/keep/messages", "application/x-www-form-urlencoded", []byte("content=keep+me&ttl=1h"))
	assertStatus(t, resp, b, http.StatusCreated)
	resp, b = ts.get(t, "/channels/keep/scheduled")
	assertStatus(t, resp, b, http.StatusOK)
	var list struct {
		Scheduled []struct {
			ID     string    `json:"id"`
			At     time.Time `json:"at"`
			Expire uint64    `json:"expire"`
		} `json:"scheduled"`
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Scheduled) != 1 || list.Scheduled[0].Expire != 1 {
		t.Fatalf("list %s (%v), want the expiry of message 1", b, err)
	}
	resp, b = ts.delete(t, "/channels/keep/scheduled/"+list.Scheduled[0].ID)
	assertStatus(t, resp, b, http.StatusOK)
}

func TestTTLPublishIsIdempotent(t *testing.T) {
	ts := newTestServer(t)
	body := []byte(`{"content":"once","ttl":"1h"}`)
	resp, b := ts.post(t, "/channels/idem/messages", "application/json", body, "Idempotency-Key", "ttl-1")
	assertStatus(t, resp, b, http.StatusCreated)
	first := decodeMessage(t, b)
	resp, b = ts.post(t, "/channels/idem/messages", "application/json", body, "Idempotency-Key", "ttl-1")
	assertStatus(t, resp, b, http.StatusCreated)
	if again := decodeMessage(t, b); again != first || resp.Header.Get("Idempotent-Replay") != "true" {
		t.Fatalf("retry answered %+v (replay %q), want %+v", again, resp.Header.Get("Idempotent-Replay"), first)
	}
}

// timedBody reports whether a publish body carries at or ttl (even null or
// malformed): the publish fuzz target leaves those to the tests above.
func timedBody(ctype string, body []byte) bool {
	media, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return false
	}
	has := func(v url.Values) bool { return v.Has("at") || v.Has("ttl") }
	switch media {
	case "application/json":
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil {
			return false
		}
		for k := range fields { // encoding/json matches field names case-insensitively
			if strings.EqualFold(k, "at") || strings.EqualFold(k, "ttl") {
				return true
			}
		}
		return false
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		return err == nil && has(form)
	case "multipart/form-data":
		form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(1 << 20)
		if err != nil {
			return false
		}
		defer form.RemoveAll()
		return has(url.Values(form.Value))
	}
	return false
}
