package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/token"
	"github.com/gin-gonic/gin"
)

// DefaultPrivatePrefix starts the names of channels that need a token to observe.
const DefaultPrivatePrefix = "private-"

// hosted is the state of the hosted-channel features: private channels,
// their tokens, and idempotent publishing.
type hosted struct {
	prefix string
	signer *token.Signer
	idem   announce.Idempotency
}

// initHosted fills the hosted-channel defaults from s.cfg. Called by New.
func (s *Server) initHosted() error {
	cfg := &s.cfg
	secret := token.Secret(cfg.TokenSecret, cfg.PublishKey)
	switch {
	case secret == nil:
		secret = token.RandomSecret()
		s.log.Warn("no --token-secret and no --publish-key: tokens are signed with a random secret, so they do not survive a restart and other nodes do not accept them")
	case cfg.TokenSecret != "" && len(cfg.TokenSecret) < 32:
		s.log.Warn("--token-secret is shorter than 32 bytes: tokens signed with it can be forged by guessing it")
	}
	if cfg.PublishKey == "" {
		s.log.Warn("no --publish-key: anyone who can reach this server can mint tokens, so private channels are not protected", "prefix", cfg.PrivatePrefix)
	}
	signer, err := token.NewSigner(secret, nil)
	if err != nil {
		return err
	}
	if cfg.Idempotency == nil {
		cfg.Idempotency = announce.NewMemoryIdempotency(announce.IdempotencyConfig{})
	}
	s.hosted = hosted{prefix: cfg.PrivatePrefix, signer: signer, idem: cfg.Idempotency}
	return nil
}

// private reports whether observing channel needs a token.
func (s *Server) private(channel string) bool { return strings.HasPrefix(channel, s.hosted.prefix) }

// access is what a request's credential allows on its channel.
type access struct {
	expires time.Time // when the token expires; zero: never (public channel or publish key)
	publish bool      // the credential grants publishing (WebSocket frames need no key)
	holder  string    // the token's holder name (its sub claim), if any
	name    string    // the observer's presence name (observerName in presence.go)
}

// accessKey is where guardObserve leaves the request's access in the gin context.
const accessKey = "announce.access"

func accessOf(c *gin.Context) access {
	a, _ := c.Get(accessKey)
	v, _ := a.(access)
	return v
}

// guardObserve admits an observer of a private channel only with a valid
// token for it (or the publish key), and records what the credential allows.
func (s *Server) guardObserve(c *gin.Context) {
	a, err := s.observeAccess(c.Request, channelOf(c))
	if err != nil {
		failAuth(c, err)
		return
	}
	c.Set(accessKey, a)
}

// observeAccess checks the request's credential for observing channel:
// ?token=, else Authorization: Bearer (a token, or the publish key). A
// private channel needs one; on a public channel one is optional but, when
// given as a token, must be valid (it may grant publishing).
func (s *Server) observeAccess(r *http.Request, channel string) (access, error) {
	cred, fromHeader := credential(r)
	if fromHeader && s.cfg.PublishKey != "" && s.checkKey(cred) == nil {
		return access{publish: true}, nil // the key holder may mint any token anyway
	}
	if cred == "" || (fromHeader && !token.LooksLikeToken(cred) && !s.private(channel)) {
		if s.private(channel) {
			return access{}, token.ErrMissing
		}
		return access{}, nil // another scheme's bearer value on a public channel: none of ours
	}
	claims, err := s.hosted.signer.Verify(cred)
	if err != nil {
		return access{}, err
	}
	if err := claims.Allows(channel, false); err != nil {
		return access{}, err
	}
	return access{expires: claims.Expires(), publish: claims.Publish, holder: claims.Name()}, nil
}

// credential returns ?token=, else the value of Authorization: Bearer.
func credential(r *http.Request) (cred string, fromHeader bool) {
	if t := r.URL.Query().Get("token"); t != "" {
		return t, false
	}
	if b, ok := bearer(r.Header.Get("Authorization")); ok {
		return b, true
	}
	return "", false
}

// authorizePublish checks an HTTP publish: with a publish key set, it needs
// Authorization: Bearer with the key or a token granting publishing to the
// channel. A token may also come as ?token=, the key never: a URL ends up
// in access logs and proxies' logs. Without a key anyone publishes, but a
// token presented must be valid (checkPresentedTokens).
func (s *Server) authorizePublish(c *gin.Context) error {
	if s.cfg.PublishKey == "" {
		cred, _ := bearer(c.GetHeader("Authorization"))
		if !token.LooksLikeToken(cred) {
			cred = "" // another bearer value (a key an open server has not): none of ours
		}
		return s.checkPresentedTokens(channelOf(c), cred, c.Query("token"))
	}
	if h := c.GetHeader("Authorization"); h != "" { // where the publish key travels: it wins
		cred, _ := bearer(h) // another scheme: none
		return s.checkPublishCredential(channelOf(c), cred)
	}
	if t := c.Query("token"); t != "" {
		return s.checkPublishToken(channelOf(c), t)
	}
	return errUnauthorized
}

// authorizeFrame checks a WebSocket publish frame: open publishing, a
// connection whose token grants publishing, or the frame's key (the publish
// key or a token granting publishing).
func (s *Server) authorizeFrame(channel, key string, a access) error {
	if s.cfg.PublishKey == "" {
		if !token.LooksLikeToken(key) {
			return nil
		}
		return s.checkPresentedTokens(channel, key)
	}
	if a.publish && (a.expires.IsZero() || time.Now().Before(a.expires)) {
		return nil
	}
	if key == "" {
		return errFrameUnauthorized
	}
	return s.checkPublishCredential(channel, key)
}

// checkPublishCredential accepts the publish key or a token for channel that
// grants publishing. The key is tried first: a key may look like a token.
func (s *Server) checkPublishCredential(channel, cred string) error {
	if cred == "" {
		return errUnauthorized
	}
	err := s.checkKey(cred)
	if err == nil || !token.LooksLikeToken(cred) {
		return err
	}
	return s.checkPublishToken(channel, cred)
}

// checkPublishToken accepts a token for channel that grants publishing.
func (s *Server) checkPublishToken(channel, cred string) error {
	claims, err := s.hosted.signer.Verify(cred)
	if err != nil {
		return err
	}
	return claims.Allows(channel, true)
}

// checkPresentedTokens is the rule of an open server (no publish key),
// where anyone publishes: a token that is presented must still be valid (a
// forged or expired one answers 401) and for the channel (403), as when
// observing. A publish grant is not needed. Empty credentials are skipped.
func (s *Server) checkPresentedTokens(channel string, creds ...string) error {
	for _, cred := range creds {
		if cred == "" {
			continue
		}
		claims, err := s.hosted.signer.Verify(cred)
		if err != nil {
			return err
		}
		if err := claims.Allows(channel, false); err != nil {
			return err
		}
	}
	return nil
}

// capToToken shortens a wait so it never outlives the request's token.
func (s *Server) capToToken(c *gin.Context, wait time.Duration) time.Duration {
	exp := accessOf(c).expires
	if exp.IsZero() {
		return wait
	}
	return max(0, min(wait, time.Until(exp)))
}

// sseTokenExpired ends an SSE stream whose token expired.
const sseTokenExpired = "event: error\ndata: {\"event\":\"error\",\"error\":\"token expired\"}\n\n"

// guardPage applies guardObserve's rule to the server-rendered demo pages,
// which show the channel's current message.
func (s *Server) guardPage(c *gin.Context, channel string) bool {
	if _, err := s.observeAccess(c.Request, channel); err != nil {
		failAuth(c, err)
		return false
	}
	return true
}

// failAuth is fail with the WWW-Authenticate challenge a 401 carries (RFC 6750).
func failAuth(c *gin.Context, err error) {
	if statusOf(err) == http.StatusUnauthorized {
		desc := strings.ReplaceAll(err.Error(), `"`, "'")
		if errors.Is(err, token.ErrMissing) || errors.Is(err, errUnauthorized) {
			// No credential: no error code (RFC 6750 3.1).
			c.Header("WWW-Authenticate", `Bearer realm="announce"`)
		} else {
			c.Header("WWW-Authenticate", `Bearer realm="announce", error="invalid_token", error_description="`+desc+`"`)
		}
	}
	fail(c, err)
}
