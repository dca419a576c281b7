package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/presence"
	"github.com/announce/announce/announce/token"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// maxObserverName is the longest ?name=, in characters.
const maxObserverName = 64

// clientCookie identifies a long-poll client across its polls, for presence;
// no channel's cursor cookie (announce_<channel>) can have its name.
const clientCookie = "announce-client"

// presenceState is the API's side of presence and webhooks (presence.go).
type presenceState struct {
	tracker *presence.Tracker
	events  announce.Events // the tracker: every attach, detach and publish goes here
	streams atomic.Uint64   // numbers stream sessions
}

// initPresence sets up presence from s.cfg. Called by New.
func (s *Server) initPresence() error {
	t := s.cfg.Presence
	if t == nil {
		var err error
		if t, err = presence.New(presence.Config{Logger: s.log}); err != nil {
			return err
		}
		s.cfg.Presence = t
	}
	s.pres = presenceState{tracker: t, events: t}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "announce_presence_sessions",
			Help: "Observer sessions present on this node (long-poll clients within their grace included)."},
			func() float64 { return float64(t.Stats().Sessions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "announce_presence_events_dropped_total",
			Help: "Presence join and leave events dropped because the node was behind or an observer's event queue was full."},
			func() float64 { st := t.Stats(); return float64(st.EventsDropped + st.ListenerDropped) }),
	} {
		if err := s.cfg.Registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// validObserverName reports whether n is 1 to 64 printable characters.
func validObserverName(n string) bool {
	if n == "" || !utf8.ValidString(n) || utf8.RuneCountInString(n) > maxObserverName {
		return false
	}
	for _, r := range n {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// observerName runs on the observing routes after guardObserve: it settles
// the observer's presence name. A token naming its holder (the sub claim)
// decides it, so presence and webhooks show the name the server vouched
// for; ?name= may repeat it but not replace it (403). Without such a token
// the name is ?name=, which must be 1 to 64 printable characters (400).
func (s *Server) observerName(c *gin.Context) {
	a := accessOf(c)
	name, given := c.GetQuery("name")
	if given && !validObserverName(name) {
		badRequest(c, fmt.Sprintf("name must be 1 to %d printable characters", maxObserverName))
		return
	}
	if a.holder != "" {
		holder := truncateRunes(a.holder, maxObserverName)
		if given && name != holder {
			fail(c, fmt.Errorf("%w: the token names its holder %q; ?name= cannot change it", errForbidden, holder))
			return
		}
		name = holder
	}
	a.name = name
	c.Set(accessKey, a)
}

func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// observerPresence is one attachment of an observer, from attach to detach.
type observerPresence struct {
	events  announce.Events
	session announce.Session
	l       *presence.Listener
}

// attach reports an observer attaching to the channel and, for the
// streaming transports with presence events on, listens to the channel's
// joins and leaves (registered first, so it sees its own join); notify,
// when not nil, is called after each event is queued.
func (s *Server) attach(c *gin.Context, t announce.Transport, notify func()) *observerPresence {
	p := &observerPresence{events: s.pres.events}
	p.session = announce.Session{Channel: channelOf(c), Transport: t, Name: accessOf(c).name, Time: time.Now()}
	if t == announce.Poll {
		s.pollSession(c, &p.session)
	} else {
		p.session.ID = s.pres.tracker.Node() + "-" + strconv.FormatUint(s.pres.streams.Add(1), 10)
		p.l = s.pres.tracker.ListenNotify(p.session.Channel, notify)
	}
	p.events.Connected(p.session)
	return p
}

// presenceEvents delivers the channel's presence events' JSON (nil when off).
func (p *observerPresence) presenceEvents() <-chan []byte { return p.l.C() }

// detach reports the observer gone. Call it once, when the poll is
// answered or the stream ends for whatever reason.
func (p *observerPresence) detach() {
	p.l.Close()
	s := p.session
	s.Time = time.Now()
	p.events.Disconnected(s)
}

// pollSession names a long-poll of the client for presence: ID is its
// announce-client cookie, hashed; a client without one is given a new cookie
// (answerPoll sets it, after the cursor cookie), and its fingerprint (address,
// User-Agent and name) finds its session while it keeps no cookie.
func (s *Server) pollSession(c *gin.Context, ps *announce.Session) {
	h := sha256.New()
	h.Write([]byte(c.ClientIP() + "\x00" + c.GetHeader("User-Agent") + "\x00" + ps.Name))
	ps.Fingerprint = "p" + hex.EncodeToString(h.Sum(nil)[:8])
	v, ok := cookieValue(c.Request, clientCookie)
	if !ok || !validClientID(v) {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		v = hex.EncodeToString(b)
		c.Set(clientCookie, v)
		ps.Issued = true
	}
	sum := sha256.Sum256([]byte(v))
	ps.ID = "c" + hex.EncodeToString(sum[:8])
}

func validClientID(v string) bool {
	if len(v) != 32 {
		return false
	}
	_, err := hex.DecodeString(v)
	return err == nil
}

// cookieValue reads a cookie by hand, as cookieCursor does.
func cookieValue(r *http.Request, want string) (string, bool) {
	for _, line := range r.Header.Values("Cookie") {
		for part := range strings.SplitSeq(line, ";") {
			name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && name == want {
				return value, true
			}
		}
	}
	return "", false
}

// presence serves GET /channels/{ch}/presence: observers per transport and
// their names, over every node.
func (s *Server) presence(c *gin.Context) {
	c.JSON(http.StatusOK, s.pres.tracker.Snapshot(c.Request.Context(), channelOf(c)))
}

// published reports an HTTP publish: its publisher's name is the holder of
// the token it published with, if any.
func (s *Server) published(c *gin.Context, e *announce.Envelope) {
	s.pres.events.Published(announce.Publication{Message: e.Message, Via: "http", Name: s.publisherName(c)})
}

// publisherName is the holder name of the token an HTTP publish carried.
func (s *Server) publisherName(c *gin.Context) string {
	cred := c.Query("token")
	if b, ok := bearer(c.GetHeader("Authorization")); ok {
		cred = b
	}
	if cred == "" || !token.LooksLikeToken(cred) {
		return ""
	}
	claims, err := s.hosted.signer.Verify(cred)
	if err != nil {
		return ""
	}
	return claims.Name()
}

// presenceFrame is the SSE encoding of a presence event: no id, so it
// moves no client's cursor.
func presenceFrame(event []byte) []byte {
	b := make([]byte, 0, len(event)+32)
	b = append(b, "event: presence\ndata: "...)
	b = append(b, event...)
	return append(b, "\n\n"...)
}
