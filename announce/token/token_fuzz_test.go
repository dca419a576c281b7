package token_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/token"
	"github.com/golang-jwt/jwt/v5"
)

// fuzzNow is the fuzz signers' clock.
var fuzzNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// FuzzVerify verifies arbitrary strings. It never panics, errs with
// ErrMissing, ErrExpired or ErrInvalid, says "expired" only of a token
// signed with the secret, and accepts only an HS256 token signed with the
// secret (checked here independently of the JWT library), of issuer
// announce, for a valid channel, not expired; another secret refuses it.
func FuzzVerify(f *testing.F) {
	mk := func(method jwt.SigningMethod, key any, c *token.Claims) string {
		tok, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	claims := func(channel, iss string, exp time.Time) *token.Claims {
		c := &token.Claims{Channel: channel, Publish: true, RegisteredClaims: jwt.RegisteredClaims{Issuer: iss, Subject: "alice"}}
		if !exp.IsZero() {
			c.ExpiresAt = jwt.NewNumericDate(exp)
		}
		return c
	}
	secret, hour := []byte("secret"), fuzzNow.Add(time.Hour)
	valid := mk(jwt.SigningMethodHS256, secret, claims("private-a", token.Issuer, hour))
	for _, tok := range []string{
		valid, valid + "=", valid[:len(valid)-1], strings.Replace(valid, ".", "..", 1), " " + valid, valid + ".x",
		mk(jwt.SigningMethodHS256, secret, claims("private-a", token.Issuer, fuzzNow.Add(-time.Second))),
		mk(jwt.SigningMethodHS256, []byte("other"), claims("private-a", token.Issuer, hour)),
		mk(jwt.SigningMethodHS512, secret, claims("private-a", token.Issuer, hour)),
		mk(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("private-a", token.Issuer, hour)),
		mk(jwt.SigningMethodHS256, secret, claims("private-a", token.Issuer, time.Time{})),
		mk(jwt.SigningMethodHS256, secret, claims("private-a", "someone", hour)),
		mk(jwt.SigningMethodHS256, secret, claims("", token.Issuer, hour)),
		mk(jwt.SigningMethodHS256, secret, claims("a/b", token.Issuer, hour)),
		mk(jwt.SigningMethodHS256, secret, claims("..", token.Issuer, hour)),
		"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.", "\xff.\xff.\xff",
	} {
		f.Add(tok)
	}

	s, err := token.NewSigner(secret, func() time.Time { return fuzzNow })
	if err != nil {
		f.Fatal(err)
	}
	other, _ := token.NewSigner([]byte("other"), func() time.Time { return fuzzNow })
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Verify(tok)
		signed := signedWith(tok, secret)
		if err != nil {
			if !errors.Is(err, token.ErrMissing) && !errors.Is(err, token.ErrExpired) && !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("Verify(%q): %v, not ErrMissing, ErrExpired or ErrInvalid", tok, err)
			}
			if errors.Is(err, token.ErrMissing) != (tok == "") {
				t.Fatalf("Verify(%q): %v", tok, err)
			}
			if errors.Is(err, token.ErrExpired) && !signed {
				t.Fatalf("Verify(%q) says expired of a token not signed with the secret", tok)
			}
			return
		}
		if !signed {
			t.Fatalf("Verify(%q) accepted a token not signed with the secret: %+v", tok, c)
		}
		if announce.ValidateChannel(c.Channel) != nil || c.Issuer != token.Issuer || !c.Expires().After(fuzzNow) {
			t.Fatalf("Verify(%q) accepted claims %+v", tok, c)
		}
		if _, err := other.Verify(tok); !errors.Is(err, token.ErrInvalid) {
			t.Fatalf("another secret verifies %q: %v", tok, err)
		}
	})
}

// signedWith reports whether tok is header.payload.signature with an
// HS256 header and the HMAC-SHA256 of header.payload under secret.
func signedWith(tok string, secret []byte) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	head, err := base64.RawURLEncoding.DecodeString(parts[0])
	var h struct{ Alg string }
	if err != nil || json.Unmarshal(head, &h) != nil || h.Alg != "HS256" {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	return err == nil && hmac.Equal(sig, mac.Sum(nil))
}

// FuzzMintVerify mints tokens for arbitrary grants. A grant within the
// bounds (a valid channel, 1 s to 24 h or the default, a name of at most
// 128 bytes of UTF-8 without control characters) is minted, and Verify
// gives back exactly the minted claims, which allow the channel (and
// publishing only when granted) and nothing else; any other grant is
// refused with ErrBadGrant or ErrInvalidChannel.
func FuzzMintVerify(f *testing.F) {
	f.Add("private-a", int64(0), true, "alice")
	f.Add("x", int64(time.Second), false, "")
	f.Add("x", int64(time.Second-1), false, "")
	f.Add("x", int64(token.MaxTTL), false, "Zoë 🎉")
	f.Add("x", int64(token.MaxTTL+1), false, "")
	f.Add("x", int64(-time.Hour), false, "")
	f.Add("x", int64(1500*time.Millisecond), true, "\u2028<script>&")
	f.Add("a/b", int64(0), false, "")
	f.Add("..", int64(0), false, "")
	f.Add("x", int64(0), false, strings.Repeat("n", token.MaxName))
	f.Add("x", int64(0), false, strings.Repeat("n", token.MaxName+1))
	f.Add("x", int64(0), false, "line\nbreak")
	f.Add("x", int64(0), false, "\x7f")
	f.Add("x", int64(0), false, "\u0085")
	f.Add("x", int64(0), false, "\u200b") // invisible
	f.Add("x", int64(0), false, strings.Repeat("é", 64))
	f.Add("x", int64(0), false, "\xff")

	s, err := token.NewSigner([]byte("secret"), func() time.Time { return fuzzNow })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, channel string, ttl int64, publish bool, name string) {
		g := token.Grant{Channel: channel, TTL: time.Duration(ttl), Publish: publish, Name: name}
		tok, minted, err := s.Mint(g)
		life := g.TTL
		if life == 0 {
			life = token.DefaultTTL
		}
		ok := announce.ValidateChannel(channel) == nil && life >= token.MinTTL && life <= token.MaxTTL && plainName(name)
		if err != nil {
			if ok || !errors.Is(err, token.ErrBadGrant) && !errors.Is(err, announce.ErrInvalidChannel) {
				t.Fatalf("Mint(%+v): %v", g, err)
			}
			return
		}
		if !ok {
			t.Fatalf("Mint(%+v) minted a grant out of bounds", g)
		}
		wantExp := fuzzNow.Add(life).Truncate(time.Second)
		if minted.Channel != channel || minted.Publish != publish || minted.Name() != name || !minted.Expires().Equal(wantExp) {
			t.Fatalf("Mint(%+v) claims %+v, want expiry %v", g, minted, wantExp)
		}
		got, err := s.Verify(tok)
		if err != nil {
			t.Fatalf("Verify(Mint(%+v)): %v", g, err)
		}
		if got.Channel != minted.Channel || got.Publish != minted.Publish || got.Name() != minted.Name() ||
			got.Issuer != token.Issuer || !got.Expires().Equal(minted.Expires()) || !got.IssuedAt.Equal(minted.IssuedAt.Time) {
			t.Fatalf("minted %+v, verified %+v", minted, got)
		}
		if err := got.Allows(channel, publish); err != nil {
			t.Fatalf("%+v does not allow what it was minted for: %v", got, err)
		}
		if err := got.Allows(channel+"x", false); !errors.Is(err, token.ErrWrongChannel) {
			t.Fatalf("%+v allows another channel: %v", got, err)
		}
		if err := got.Allows(channel, true); publish != (err == nil) || !publish && !errors.Is(err, token.ErrNoPublish) {
			t.Fatalf("%+v, minted with publish %v, allows publishing: %v", got, publish, err)
		}
	})
}

// plainName reports whether name is a valid holder name: at most MaxName
// bytes of UTF-8, every character printable (no control, format or
// separator other than the space).
func plainName(name string) bool {
	if len(name) > token.MaxName || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
