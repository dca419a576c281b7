package presence

import "github.com/announce/announce/announce"

// maxIssuedKeys bounds the cookie IDs kept for a poll session that were
// issued but never presented: a client that keeps no cookie is issued a new
// one by every answer, and only the newest few can still come back.
const maxIssuedKeys = 16

type sessionKey struct{ channel, id string }

// sessionRef is one of a session's keys in Tracker.sessions.
type sessionRef struct {
	id       string
	attached int  // polls (or the one connection) attached under this ID
	claimed  bool // a poll presented it as its cookie: it stays while the session lives
}

// findLocked returns the session s continues, registering s.ID as one of
// its keys, or nil when s begins a new one. A poll continues the session
// of its ID (its client's cookie); a poll whose ID is not known continues
// the session of its fingerprint, as long as no poll presented that
// session's cookie. A poll that presents its cookie claims the session:
// from then on its cookie alone finds it, whatever its client's address,
// User-Agent or name. Requires t.mu held.
func (t *Tracker) findLocked(s announce.Session) *session {
	k := sessionKey{s.Channel, s.ID}
	ss := t.sessions[k]
	if ss == nil && s.Fingerprint != "" {
		fs := t.fingerprints[sessionKey{s.Channel, s.Fingerprint}]
		if fs == nil || fs.Transport != s.Transport {
			return nil
		}
		ss = fs
		t.sessions[k] = ss
		ss.keys = append(ss.keys, sessionRef{id: s.ID})
		ss.dropIssuedLocked(t)
	}
	if ss != nil && s.Transport == announce.Poll && !s.Issued {
		ss.claimLocked(t, s.ID)
	}
	return ss
}

// claimLocked marks id as a cookie the session's client presented and
// forgets the session's fingerprint. Requires t.mu held.
func (ss *session) claimLocked(t *Tracker, id string) {
	for i := range ss.keys {
		if ss.keys[i].id == id {
			ss.keys[i].claimed = true
		}
	}
	ss.forgetFingerprint(t)
}

func (ss *session) forgetFingerprint(t *Tracker) {
	if ss.fingerprint == "" {
		return
	}
	fk := sessionKey{ss.Channel, ss.fingerprint}
	if t.fingerprints[fk] == ss {
		delete(t.fingerprints, fk)
	}
	ss.fingerprint = ""
}

// dropIssued forgets the oldest issued keys beyond maxIssuedKeys that no
// poll is attached under. Requires t.mu held.
func (ss *session) dropIssuedLocked(t *Tracker) {
	issued := 0
	for _, r := range ss.keys {
		if !r.claimed {
			issued++
		}
	}
	for i := 0; i < len(ss.keys) && issued > maxIssuedKeys; {
		r := ss.keys[i]
		if r.claimed || r.attached > 0 {
			i++
			continue
		}
		delete(t.sessions, sessionKey{ss.Channel, r.id})
		ss.keys = append(ss.keys[:i], ss.keys[i+1:]...)
		issued--
	}
}

// attached adds d to the polls attached under id, reporting whether id is
// one of the session's keys.
func (ss *session) attached(id string, d int) bool {
	for i := range ss.keys {
		if ss.keys[i].id == id {
			ss.keys[i].attached = max(ss.keys[i].attached+d, 0)
			return true
		}
	}
	return false
}

// forgetLocked removes every key of the session. Requires t.mu held.
func (ss *session) forgetLocked(t *Tracker) {
	for _, r := range ss.keys {
		k := sessionKey{ss.Channel, r.id}
		if t.sessions[k] == ss {
			delete(t.sessions, k)
		}
	}
	ss.keys = nil
	ss.forgetFingerprint(t)
	ss.gone = true
}
