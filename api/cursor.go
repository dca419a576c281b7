package api

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cookieName is the long-poll cursor cookie of a channel.
func cookieName(channel string) string { return "announce_" + channel }

// parseID parses a message id cursor.
func parseID(s string) (uint64, bool) {
	id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	return id, err == nil
}

// cookieCursor reads the channel's cursor cookie. Channel names may hold ':',
// which net/http refuses in cookie names, so the header is read by hand.
func cookieCursor(r *http.Request, channel string) (uint64, bool) {
	want := cookieName(channel)
	for _, line := range r.Header.Values("Cookie") {
		for part := range strings.SplitSeq(line, ";") {
			name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && name == want {
				return parseID(value)
			}
		}
	}
	return 0, false
}

// setCookieCursor remembers the id last answered, written by hand for the same reason.
func setCookieCursor(h http.Header, channel string, id uint64) {
	h.Add("Set-Cookie", cookieName(channel)+"="+strconv.FormatUint(id, 10)+"; Path=/; HttpOnly; SameSite=Lax")
}

// parseSeconds parses a wait in seconds (fractions allowed), capped at max.
func parseSeconds(s string, max time.Duration) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if d, ok := wholeSeconds(s); ok { // every client's ?wait=30 skips ParseFloat
		return min(d, max), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	if f*float64(time.Second) >= float64(max) {
		return max, true
	}
	return time.Duration(f * float64(time.Second)), true
}

// wholeSeconds parses up to nine digits as seconds (exact as a float, so
// parseSeconds answers as ParseFloat would); false for anything else.
func wholeSeconds(s string) (time.Duration, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return time.Duration(n) * time.Second, true
}

// validCallback reports whether name is a JSONP callback: dotted JavaScript
// identifiers of [A-Za-z_$][A-Za-z0-9_$]*, at most 64 characters.
func validCallback(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for part := range strings.SplitSeq(name, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			letter := c == '_' || c == '$' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
			if !letter && (i == 0 || c < '0' || c > '9') {
				return false
			}
		}
	}
	return true
}
