package token_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce/token"
	"github.com/golang-jwt/jwt/v5"
)

func signer(t *testing.T, secret string, now time.Time) *token.Signer {
	t.Helper()
	s, err := token.NewSigner([]byte(secret), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMintVerify(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 500, time.UTC)
	s := signer(t, "secret", now)
	tok, c, err := s.Mint(token.Grant{Channel: "private-a", Publish: true, Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Expires().Equal(now.Truncate(time.Second).Add(token.DefaultTTL)) {
		t.Errorf("expires %v", c.Expires())
	}
	// The payload is plain JWT claims.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	for _, k := range []string{"iss", "channel", "publish", "sub", "iat", "exp"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %q missing from %s", k, payload)
		}
	}
	got, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Channel != "private-a" || !got.Publish || got.Name() != "alice" {
		t.Errorf("claims %+v", got)
	}
	if err := got.Allows("private-a", true); err != nil {
		t.Error(err)
	}
	if err := got.Allows("private-b", false); !errors.Is(err, token.ErrWrongChannel) {
		t.Errorf("other channel: %v", err)
	}
	// Expiry, to the second.
	if _, err := signer(t, "secret", c.Expires().Add(-time.Nanosecond)).Verify(tok); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	if _, err := signer(t, "secret", c.Expires()).Verify(tok); !errors.Is(err, token.ErrExpired) {
		t.Errorf("at expiry: %v", err)
	}
	// Another secret.
	if _, err := signer(t, "other", now).Verify(tok); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("other secret: %v", err)
	}
	// Another secret and expired: still invalid, never "expired".
	if _, err := signer(t, "other", now.Add(48*time.Hour)).Verify(tok); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("forged and expired: %v", err)
	}
	ro, _, _ := s.Mint(token.Grant{Channel: "private-a"})
	c2, _ := s.Verify(ro)
	if err := c2.Allows("private-a", true); !errors.Is(err, token.ErrNoPublish) {
		t.Errorf("read-only token publishing: %v", err)
	}
}

func TestVerifyRefusesOtherShapes(t *testing.T) {
	now := time.Now()
	s := signer(t, "secret", now)
	mk := func(method jwt.SigningMethod, key any, claims jwt.Claims) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exp := jwt.NewNumericDate(now.Add(time.Hour))
	for name, tok := range map[string]string{
		"empty":      "",
		"garbage":    "a.b.c",
		"alg none":   mk(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, &token.Claims{Channel: "x", RegisteredClaims: jwt.RegisteredClaims{Issuer: token.Issuer, ExpiresAt: exp}}),
		"HS512":      mk(jwt.SigningMethodHS512, []byte("secret"), &token.Claims{Channel: "x", RegisteredClaims: jwt.RegisteredClaims{Issuer: token.Issuer, ExpiresAt: exp}}),
		"no exp":     mk(jwt.SigningMethodHS256, []byte("secret"), &token.Claims{Channel: "x", RegisteredClaims: jwt.RegisteredClaims{Issuer: token.Issuer}}),
		"no issuer":  mk(jwt.SigningMethodHS256, []byte("secret"), &token.Claims{Channel: "x", RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}}),
		"no channel": mk(jwt.SigningMethodHS256, []byte("secret"), &token.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: token.Issuer, ExpiresAt: exp}}),
		"bad channel": mk(jwt.SigningMethodHS256, []byte("secret"),
			&token.Claims{Channel: "a/b", RegisteredClaims: jwt.RegisteredClaims{Issuer: token.Issuer, ExpiresAt: exp}}),
	} {
		_, err := s.Verify(tok)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if name == "empty" {
			if !errors.Is(err, token.ErrMissing) {
				t.Errorf("%s: %v", name, err)
			}
		} else if !errors.Is(err, token.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestMintBounds(t *testing.T) {
	s := signer(t, "secret", time.Now())
	for _, g := range []token.Grant{
		{Channel: "a/b"},
		{Channel: "x", TTL: 500 * time.Millisecond},
		{Channel: "x", TTL: token.MaxTTL + time.Second},
		{Channel: "x", TTL: -time.Hour},
		{Channel: "x", Name: strings.Repeat("n", token.MaxName+1)},
		{Channel: "x", Name: "line\nbreak"},
	} {
		if _, _, err := s.Mint(g); err == nil {
			t.Errorf("minted %+v", g)
		}
	}
	if _, _, err := s.Mint(token.Grant{Channel: "x", TTL: token.MaxTTL, Name: "Zoë"}); err != nil {
		t.Error(err)
	}
	if _, err := token.NewSigner(nil, nil); err == nil {
		t.Error("empty secret accepted")
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"1h": time.Hour, "90m": 90 * time.Minute, "3600": time.Hour, " 1.5 ": 1500 * time.Millisecond, "24h": 24 * time.Hour, "86400": 24 * time.Hour} {
		if got, err := token.ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0s", "-1h", "25h", "86401", "NaN", "Inf", "soon", "1e300"} {
		if _, err := token.ParseTTL(in); !errors.Is(err, token.ErrBadGrant) {
			t.Errorf("ParseTTL(%q): %v, want ErrBadGrant", in, err)
		}
	}
}

func TestSecret(t *testing.T) {
	if got := token.Secret("explicit", "key"); string(got) != "explicit" {
		t.Errorf("explicit secret: %q", got)
	}
	derived := token.Secret("", "key")
	if len(derived) != 32 || bytes.Contains(derived, []byte("key")) || !bytes.Equal(derived, token.Secret("", "key")) {
		t.Errorf("derived secret %x", derived)
	}
	if bytes.Equal(derived, token.Secret("", "key2")) {
		t.Error("two keys derive one secret")
	}
	if token.Secret("", "") != nil {
		t.Error("a secret from nothing")
	}
	if a, b := token.RandomSecret(), token.RandomSecret(); len(a) != 32 || bytes.Equal(a, b) {
		t.Error("random secrets")
	}
}
