// Package webhook POSTs what happens on channels (observers connecting and
// disconnecting, messages published) to HTTP receivers, signed with a
// shared secret. It is an announce.Events sink: presence feeds it every
// session once, and the API every publish.
//
// Delivery never blocks the caller: events go to a bounded queue (a full
// queue drops and counts), a few workers POST them, and a failed POST is
// retried with exponential backoff on network errors, 408, 429 and 5xx
// (five tries over about 30 s by default); any other answer is final.
// Receivers may see an event more than once (a retry after a lost answer)
// and out of order (workers run in parallel): event_id identifies an event,
// time orders them.
//
// Each POST carries the headers
//
//	Content-Type: application/json
//	X-Announce-Event: connected | disconnected | published
//	X-Announce-Event-Id: <event_id>
//	X-Announce-Timestamp: <unix seconds when this attempt was sent>
//	X-Announce-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>
//
// The body repeats the timestamp ("timestamp"), so the signature covers it:
// a receiver verifies the signature over the raw body, then refuses a
// body whose timestamp is more than a few minutes from its clock (a replayed
// request) and an event_id it has seen within that window (a retry or a
// replay). Verify does the first two.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Event types.
const (
	Connected    = "connected"
	Disconnected = "disconnected"
	Published    = "published"
)

// Event is the JSON body of one webhook POST.
type Event struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	// Transport is the observer's (poll, sse, ws) or, for published, how the
	// message was published (http, ws).
	Transport string `json:"transport"`
	// Name is the observer's or publisher's name; "" when anonymous.
	Name string `json:"name"`
	// ID is the published message's id; absent for other types.
	ID uint64 `json:"id,omitempty"`
	// Session identifies an observer's session, so a receiver can pair a
	// connected with its disconnected; absent for published.
	Session string `json:"session,omitempty"`
	// Time is when it happened (a message's time for published).
	Time time.Time `json:"time"`
	// Node is the ID of the node that saw it.
	Node string `json:"node"`
	// EventID is unique per event, the same on every retry of it.
	EventID string `json:"event_id"`
	// Timestamp is when this attempt was sent, in Unix seconds; the same as
	// the X-Announce-Timestamp header, and covered by the signature.
	Timestamp int64 `json:"timestamp"`
}

// Headers of a webhook POST.
const (
	HeaderSignature = "X-Announce-Signature"
	HeaderTimestamp = "X-Announce-Timestamp"
	HeaderEvent     = "X-Announce-Event"
	HeaderEventID   = "X-Announce-Event-Id"
)

// Sign returns the X-Announce-Signature value of body: "sha256=" and the hex
// HMAC-SHA256 of the raw body keyed with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a received webhook: the signature over the raw body, and
// that the body's signed timestamp is within tolerance of now (a replay is
// older). It does not remember event IDs; a receiver that must not act twice
// on one event does that.
func Verify(secret string, body []byte, signature string, tolerance time.Duration, now time.Time) bool {
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, body))) {
		return false
	}
	var e struct {
		Timestamp int64 `json:"timestamp"`
	}
	if json.Unmarshal(body, &e) != nil || e.Timestamp == 0 {
		return false
	}
	d := now.Sub(time.Unix(e.Timestamp, 0))
	return d <= tolerance && d >= -tolerance
}
