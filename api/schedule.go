package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/announce/announce/announce"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// Scheduled and expiring publishes.
//
// A publish may carry `at` (publish later: 202 with the schedule) and
// `ttl` (the message expires: the channel's current message reverts to
// empty after ttl, if it is still this one). Both come in the JSON body
// ({"content": "...", "at": "...", "ttl": "10m"}), as form fields, or as
// query parameters (the only way with text/plain; a body field wins).
//
//   - at: an RFC 3339 time ("2026-11-22T22:00:00Z"), or a delay from now:
//     a Go duration ("90s", "1h30m") or a number of seconds (90, "0.5").
//     It must be in the future and at most announce.MaxScheduleAhead (30
//     days) away.
//   - ttl: a Go duration or a number of seconds, positive, at most 30 days.
//
// GET .../scheduled lists a channel's schedules (the channel's pending
// expiry included, with "expire": the id it expires); DELETE
// .../scheduled/{id} cancels one. Both need the publish credential, like
// publishing: a schedule's content is not public yet.

// maxListed is the most schedules GET .../scheduled answers, earliest first.
const maxListed = 1000

// publishRequest is what a publish asks for: the content and, as sent, when
// to publish it and how long it lives.
type publishRequest struct {
	Content string
	At      string
	TTL     string
}

// fromQuery takes content, at and ttl from the query where the body had
// none (the seed's Tornado handler read its arguments from either).
func (r *publishRequest) fromQuery(q url.Values) {
	if r.Content == "" {
		r.Content = q.Get("content")
	}
	if r.At == "" {
		r.At = q.Get("at")
	}
	if r.TTL == "" {
		r.TTL = q.Get("ttl")
	}
}

// ttl parses the request's ttl; 0 when it has none.
func (r publishRequest) ttl() (time.Duration, error) {
	if r.TTL == "" {
		return 0, nil
	}
	d, ok := parseDelay(r.TTL)
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: ttl %q is neither a duration (\"10m\") nor a number of seconds", errBadRequest, r.TTL)
	case d <= 0:
		return 0, fmt.Errorf("%w: ttl must be positive", errBadRequest)
	case d > announce.MaxScheduleAhead:
		return 0, fmt.Errorf("%w: ttl is at most %v", errBadRequest, announce.MaxScheduleAhead)
	}
	return d, nil
}

// at parses the request's at against now.
func (r publishRequest) at(now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(r.At)); err == nil {
		return t, nil
	}
	d, ok := parseDelay(r.At)
	switch {
	case !ok:
		return time.Time{}, fmt.Errorf("%w: at %q is neither an RFC 3339 time nor a delay (\"90s\" or seconds)", errBadRequest, r.At)
	case d <= 0:
		return time.Time{}, fmt.Errorf("%w: at: a delay must be positive", errBadRequest)
	case d > announce.MaxScheduleAhead:
		return time.Time{}, fmt.Errorf("%w: at is at most %v ahead", errBadRequest, announce.MaxScheduleAhead)
	}
	return now.Add(d), nil
}

// parseDelay reads a Go duration or a number of seconds (fractions
// allowed); false when s is neither or out of range.
func parseDelay(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) {
			return 0, false
		}
		// Clamped well inside a Duration; the callers' range checks refuse it.
		return time.Duration(max(min(f, 1e9), -1e9) * float64(time.Second)), true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// jsonTimes puts the JSON body's at and ttl into req.
func jsonTimes(req publishRequest, at, ttl json.RawMessage) (publishRequest, error) {
	var err error
	if req.At, err = jsonText("at", at); err != nil {
		return publishRequest{}, err
	}
	if req.TTL, err = jsonText("ttl", ttl); err != nil {
		return publishRequest{}, err
	}
	return req, nil
}

// jsonText reads a JSON string or number as its text; absent or null is "".
func jsonText(name string, raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: %q: %v", errBadRequest, name, err)
		}
		return s, nil
	case raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9':
		return string(raw), nil
	}
	return "", fmt.Errorf("%w: %q must be a string or a number of seconds", errBadRequest, name)
}

// initSchedule reports the messages the scheduler publishes (due schedules,
// expiries) to presence and webhooks like any publish. Called by New.
func (s *Server) initSchedule() {
	if sched := s.hub.Scheduler(); sched != nil {
		sched.OnFire(func(m announce.Message) {
			s.pres.events.Published(announce.Publication{Message: m, Via: "schedule"})
		})
	}
}

// publishNow publishes content at once, expiring after ttl when positive.
func (s *Server) publishNow(ctx context.Context, channel, content string, ttl time.Duration) (*announce.Envelope, error) {
	if ttl <= 0 {
		return s.hub.Publish(ctx, channel, content)
	}
	sched := s.hub.Scheduler()
	if sched == nil {
		return nil, announce.ErrSchedulingUnsupported
	}
	return sched.PublishTTL(ctx, channel, content, ttl)
}

// scheduledView is a schedule as the API shows it.
type scheduledView struct {
	ID      string    `json:"id"`
	Channel string    `json:"channel"`
	Content string    `json:"content"`
	At      time.Time `json:"at"`
	TTL     string    `json:"ttl,omitempty"`    // the message's TTL once published, a Go duration
	Expire  uint64    `json:"expire,omitempty"` // an expiry: the id of the message it expires
}

func viewScheduled(sc announce.Scheduled) scheduledView {
	v := scheduledView{ID: sc.ID, Channel: sc.Channel, Content: sc.Content, At: sc.At.UTC(), Expire: sc.Expire}
	if sc.TTL > 0 {
		v.TTL = sc.TTL.String()
	}
	return v
}

// schedule answers a publish with at: 202 {"scheduled": {...}}. The caller
// has authorised it.
func (s *Server) schedule(c *gin.Context, key string, req publishRequest) {
	if key != "" {
		// A retry would schedule a second copy; the key's promise cannot be kept.
		fail(c, fmt.Errorf("%w: Idempotency-Key cannot be combined with at", errBadRequest))
		return
	}
	sched := s.hub.Scheduler()
	if sched == nil {
		fail(c, announce.ErrSchedulingUnsupported)
		return
	}
	at, err := req.at(time.Now())
	if err != nil {
		fail(c, err)
		return
	}
	ttl, err := req.ttl()
	if err != nil {
		fail(c, err)
		return
	}
	sc, err := sched.Schedule(c.Request.Context(), channelOf(c), req.Content, at, ttl)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"scheduled": viewScheduled(sc)})
}

// listScheduled serves GET /channels/{ch}/scheduled.
func (s *Server) listScheduled(c *gin.Context) {
	if err := s.authorizePublish(c); err != nil {
		failAuth(c, err)
		return
	}
	sched := s.hub.Scheduler()
	if sched == nil {
		fail(c, announce.ErrSchedulingUnsupported)
		return
	}
	list, err := sched.Pending(c.Request.Context(), channelOf(c), maxListed)
	if err != nil {
		fail(c, err)
		return
	}
	views := make([]scheduledView, len(list))
	for i, sc := range list {
		views[i] = viewScheduled(sc)
	}
	c.JSON(http.StatusOK, gin.H{"channel": channelOf(c), "scheduled": views})
}

// cancelScheduled serves DELETE /channels/{ch}/scheduled/{id}: 200
// {"cancelled": {...}}, or 404 when it already fired or never was.
func (s *Server) cancelScheduled(c *gin.Context) {
	if err := s.authorizePublish(c); err != nil {
		failAuth(c, err)
		return
	}
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		fail(c, fmt.Errorf("%w: %q is not a schedule id (a UUID)", errBadRequest, c.Param("id")))
		return
	}
	sched := s.hub.Scheduler()
	if sched == nil {
		fail(c, announce.ErrSchedulingUnsupported)
		return
	}
	sc, err := sched.Cancel(c.Request.Context(), channelOf(c), id.String())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"cancelled": viewScheduled(sc)})
}
