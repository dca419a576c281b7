// Package token mints and verifies channel access tokens: standard JWTs
// (HS256) that let their holder observe one channel until they expire and,
// when granted, publish to it.
//
// It knows nothing of HTTP: the API reads tokens from requests, the CLI
// mints them offline, and an application backend may import this package to
// mint tokens in-process with the server's secret.
//
// Claims:
//
//	{"iss":"announce", "channel":"private-ops", "publish":true, "sub":"alice", "iat":..., "exp":...}
//
// channel is the one channel the token is good for, publish grants
// publishing to it, sub optionally names the holder, exp is required.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/announce/announce/announce"
	"github.com/golang-jwt/jwt/v5"
)

// Lifetimes of a token.
const (
	DefaultTTL = time.Hour
	MaxTTL     = 24 * time.Hour
	MinTTL     = time.Second // exp has one-second precision
	// MaxName is the longest holder name, in bytes: 64 characters of any
	// script (presence shows at most 64).
	MaxName = 256
)

// Issuer is the iss claim of every token; tokens of other issuers sharing
// the secret are refused.
const Issuer = "announce"

// Verification errors; the API maps the first three to 401, the others to 403.
var (
	ErrMissing      = errors.New("this channel is private: a token is required (?token=... or Authorization: Bearer ...)")
	ErrExpired      = errors.New("token expired")
	ErrInvalid      = errors.New("invalid token")
	ErrWrongChannel = errors.New("token is not valid for this channel")
	ErrNoPublish    = errors.New("token does not grant publishing")

	// ErrBadGrant is a mint request out of bounds (duration, name, channel).
	ErrBadGrant = errors.New("bad token request")
)

// Claims are a token's claims.
type Claims struct {
	Channel string `json:"channel"`
	Publish bool   `json:"publish,omitempty"`
	jwt.RegisteredClaims
}

// Expires is when the token stops being valid.
func (c *Claims) Expires() time.Time {
	if c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Time
}

// Name is the holder's name (the sub claim), possibly empty.
func (c *Claims) Name() string { return c.Subject }

// Allows checks that the token is good for channel, and for publishing to it
// when publish is true.
func (c *Claims) Allows(channel string, publish bool) error {
	if c.Channel != channel {
		return fmt.Errorf("%w: it is for %q", ErrWrongChannel, c.Channel)
	}
	if publish && !c.Publish {
		return ErrNoPublish
	}
	return nil
}

// Grant is what a new token allows.
type Grant struct {
	Channel string
	TTL     time.Duration // DefaultTTL when 0; MinTTL to MaxTTL
	Publish bool
	Name    string // optional holder name, the sub claim
}

// Signer mints and verifies tokens with one HMAC secret. It is safe for
// concurrent use.
type Signer struct {
	secret []byte
	now    func() time.Time
}

// NewSigner returns a signer for secret, which must not be empty. now is the
// clock (time.Now when nil); tests pass their own.
func NewSigner(secret []byte, now func() time.Time) (*Signer, error) {
	if len(secret) == 0 {
		return nil, errors.New("token: empty secret")
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{secret: append([]byte(nil), secret...), now: now}, nil
}

// Secret picks the signing secret: the explicit token secret, else one
// derived from the publish key (so every node sharing the key verifies the
// same tokens without another setting), else nil.
func Secret(tokenSecret, publishKey string) []byte {
	switch {
	case tokenSecret != "":
		return []byte(tokenSecret)
	case publishKey != "":
		// Derived rather than used as is: a token's signature then says
		// nothing directly about the publish key.
		m := hmac.New(sha256.New, []byte(publishKey))
		m.Write([]byte("announce token secret v1"))
		return m.Sum(nil)
	}
	return nil
}

// RandomSecret returns 32 random bytes, for a node with neither a token
// secret nor a publish key: its tokens die with it.
func RandomSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on a broken source)
	return b
}

// Mint signs a token for g and returns it with its claims.
func (s *Signer) Mint(g Grant) (string, *Claims, error) {
	if err := announce.ValidateChannel(g.Channel); err != nil {
		return "", nil, err
	}
	if g.TTL == 0 {
		g.TTL = DefaultTTL
	}
	if err := CheckTTL(g.TTL); err != nil {
		return "", nil, err
	}
	if err := checkName(g.Name); err != nil {
		return "", nil, err
	}
	now := s.now().Truncate(time.Second) // NumericDate precision: what is signed is what is reported
	c := &Claims{
		Channel: g.Channel,
		Publish: g.Publish,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   g.Name,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(g.TTL)),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.secret)
	if err != nil {
		return "", nil, fmt.Errorf("token: sign: %w", err)
	}
	return tok, c, nil
}

// Verify checks the token's signature, issuer and expiry and returns its
// claims. Errors wrap ErrMissing, ErrExpired or ErrInvalid; use
// Claims.Allows for the channel.
func (s *Signer) Verify(tok string) (*Claims, error) {
	if tok == "" {
		return nil, ErrMissing
	}
	c := &Claims{}
	_, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(Issuer),
		jwt.WithTimeFunc(s.now),
	)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		// Checked after the signature, so a forged token never reads "expired".
		return nil, ErrExpired
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, fmt.Errorf("%w: bad signature", ErrInvalid)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, fmt.Errorf("%w: malformed", ErrInvalid)
	default:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if announce.ValidateChannel(c.Channel) != nil {
		return nil, fmt.Errorf("%w: no valid channel claim", ErrInvalid)
	}
	return c, nil
}

// LooksLikeToken reports whether s has a JWT's three dot-separated parts,
// to tell a token from a publish key where either may be sent.
func LooksLikeToken(s string) bool { return strings.Count(s, ".") == 2 }

// CheckTTL checks that d is between MinTTL and MaxTTL.
func CheckTTL(d time.Duration) error {
	if d < MinTTL || d > MaxTTL {
		return fmt.Errorf("%w: duration must be from %v to %v", ErrBadGrant, MinTTL, MaxTTL)
	}
	return nil
}

// ParseTTL reads a duration as a Go duration ("90m", "1h") or a number of
// seconds ("3600"), and checks its bounds.
func ParseTTL(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if d, err := time.ParseDuration(v); err == nil {
		return d, CheckTTL(d)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: duration %q is neither a Go duration (1h, 90m) nor a number of seconds", ErrBadGrant, v)
	}
	return SecondsTTL(f)
}

// SecondsTTL converts a number of seconds to a duration and checks its bounds.
func SecondsTTL(f float64) (time.Duration, error) {
	if math.IsNaN(f) || f < MinTTL.Seconds() || f > MaxTTL.Seconds() {
		return 0, CheckTTL(-1)
	}
	d := time.Duration(f * float64(time.Second))
	return d, CheckTTL(d)
}

func checkName(name string) error {
	if len(name) > MaxName || !utf8.ValidString(name) {
		return fmt.Errorf("%w: name must be UTF-8 of at most %d bytes", ErrBadGrant, MaxName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) { // what presence shows must be seen: no control or invisible characters
			return fmt.Errorf("%w: name must be printable characters", ErrBadGrant)
		}
	}
	return nil
}
