package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/announce/announce/announce/token"
	"github.com/gin-gonic/gin"
)

// errMintUnauthorized is a token request without the publish key.
var errMintUnauthorized = errors.New("minting a token requires Authorization: Bearer KEY (the publish key)")

// maxTokenBody bounds a token request's body.
const maxTokenBody = 4 << 10

// tokenAnswer is the 201 answer of POST .../tokens.
type tokenAnswer struct {
	Token   string    `json:"token"`
	Channel string    `json:"channel"`
	Publish bool      `json:"publish"`
	Name    string    `json:"name,omitempty"`
	Expires time.Time `json:"expires"`
	URLs    tokenURLs `json:"urls"`
}

type tokenURLs struct {
	WS   string `json:"ws"`
	SSE  string `json:"sse"`
	Poll string `json:"poll"`
}

// mintToken serves POST /channels/{ch}/tokens: with the publish key (or on
// an open server, by anyone), a token for the channel and the URLs that use it.
func (s *Server) mintToken(c *gin.Context) {
	if s.cfg.PublishKey != "" {
		if err := s.authorize(c.GetHeader("Authorization")); err != nil {
			if errors.Is(err, errUnauthorized) {
				err = errMintUnauthorized
			}
			failAuth(c, err)
			return
		}
	}
	g, err := readGrant(c)
	if err != nil {
		fail(c, err)
		return
	}
	g.Channel = channelOf(c)
	tok, claims, err := s.hosted.signer.Mint(g)
	if err != nil {
		fail(c, err)
		return
	}
	// The scheme the client used: TLS here, or at a proxy that says so.
	// X-Forwarded-Proto only shapes these URLs, handed back to the same caller.
	web, ws := "http", "ws"
	if c.Request.TLS != nil || strings.EqualFold(c.GetHeader("X-Forwarded-Proto"), "https") {
		web, ws = "https", "wss"
	}
	path := "//" + c.Request.Host + "/channels/" + url.PathEscape(g.Channel)
	q := "?token=" + url.QueryEscape(tok)
	c.JSON(http.StatusCreated, tokenAnswer{
		Token:   tok,
		Channel: claims.Channel,
		Publish: claims.Publish,
		Name:    claims.Name(),
		Expires: claims.Expires().UTC(),
		URLs: tokenURLs{
			WS:   ws + ":" + path + "/ws" + q,
			SSE:  web + ":" + path + "/events" + q,
			Poll: web + ":" + path + "/status" + q,
		},
	})
}

// grantRequest is the optional JSON body of a token request.
type grantRequest struct {
	// Duration is a Go duration string ("1h") or a number of seconds.
	Duration json.RawMessage `json:"duration"`
	Publish  bool            `json:"publish"`
	Name     string          `json:"name"`
}

// readGrant reads the optional JSON or form body of a token request.
func readGrant(c *gin.Context) (token.Grant, error) {
	var g token.Grant
	if err := limitBody(c, maxTokenBody); err != nil {
		return g, err
	}
	body, err := readAll(c.Request.Body)
	if err != nil {
		return g, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return g, nil // every default
	}
	media := "application/json" // a body without a type: JSON, as curl --json sends
	if ct := c.Request.Header.Get("Content-Type"); ct != "" {
		if media, _, err = mime.ParseMediaType(ct); err != nil {
			return g, errUnsupportedMedia
		}
	}
	switch media {
	case "application/json":
		var req grantRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields() // a misspelt "duraton" must not quietly mint a 1 h token
		if err := dec.Decode(&req); err != nil {
			return g, fmt.Errorf("%w: body is not a JSON object of duration, publish and name: %v", errBadRequest, err)
		}
		g.Publish, g.Name = req.Publish, req.Name
		g.TTL, err = jsonTTL(req.Duration)
		return g, err
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return g, fmt.Errorf("%w: form body: %v", errBadRequest, err)
		}
		if v := form.Get("publish"); v != "" {
			if g.Publish, err = strconv.ParseBool(v); err != nil {
				return g, fmt.Errorf("%w: publish must be true or false", errBadRequest)
			}
		}
		g.Name = form.Get("name")
		if v := form.Get("duration"); v != "" {
			g.TTL, err = token.ParseTTL(v)
		}
		return g, err
	}
	return g, fmt.Errorf("%w: send application/json or a form", errUnsupportedMedia)
}

// jsonTTL reads "duration": a string ("1h", "3600") or a number of seconds.
func jsonTTL(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return token.ParseTTL(str)
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, fmt.Errorf("%w: duration must be a string such as \"1h\" or a number of seconds", token.ErrBadGrant)
	}
	return token.SecondsTTL(secs)
}
