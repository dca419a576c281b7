package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/announce/announce/announce"
	"github.com/gin-gonic/gin"
)

// publish serves POST .../messages and the seed's POST /chat.
func (s *Server) publish(c *gin.Context) {
	if err := s.authorizePublish(c); err != nil {
		failAuth(c, err)
		return
	}
	if s.overPublishRate(c) {
		return
	}
	key, err := idempotencyKey(c.Request)
	if err != nil {
		fail(c, err)
		return
	}
	req, err := s.readContent(c)
	if err != nil {
		fail(c, err)
		return
	}
	if req.At != "" { // a scheduled publish: schedule.go
		s.schedule(c, key, req)
		return
	}
	ttl, err := req.ttl()
	if err != nil {
		fail(c, err)
		return
	}
	start := time.Now()
	e, replayed, err := s.publishOnce(c.Request.Context(), channelOf(c), key, req.Content, ttl)
	if err != nil {
		fail(c, err)
		return
	}
	if replayed {
		c.Header("Idempotent-Replay", "true")
		c.Header("Access-Control-Expose-Headers", "Idempotent-Replay") // readable cross-origin too
	} else {
		s.metrics.publishSeconds.Observe(time.Since(start).Seconds())
		s.published(c, e)
	}
	c.Data(http.StatusCreated, "application/json; charset=utf-8", e.JSON)
}

// authorize checks an "Authorization: Bearer KEY" header against the publish key.
func (s *Server) authorize(header string) error {
	if s.cfg.PublishKey == "" {
		return nil
	}
	key, ok := bearer(header)
	if !ok || key == "" {
		return errUnauthorized
	}
	return s.checkKey(key)
}

// bearer returns the credential of an "Authorization: Bearer X" header; the
// scheme's name is case-insensitive (RFC 9110 11.1).
func bearer(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(cred), true
}

func (s *Server) checkKey(key string) error {
	if key == "" {
		return errUnauthorized
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.PublishKey)) != 1 {
		return fmt.Errorf("%w: wrong publish key", errForbidden)
	}
	return nil
}

// maxBody is the largest request body: JSON may escape each content byte
// into six, and the limit is on the content, not the body.
func (s *Server) maxBody() int64 { return int64(s.hub.MaxMessage())*6 + 4096 }

// readContent reads the content (and at and ttl, see schedule.go) from a
// JSON, form or text/plain body.
func (s *Server) readContent(c *gin.Context) (publishRequest, error) {
	req, err := s.readBody(c)
	if err == nil {
		req.fromQuery(c.Request.URL.Query())
	}
	return req, err
}

func (s *Server) readBody(c *gin.Context) (publishRequest, error) {
	if err := limitBody(c, s.maxBody()); err != nil {
		return publishRequest{}, err
	}
	r := c.Request
	ctype := r.Header.Get("Content-Type")
	media := "text/plain"
	if ctype != "" {
		m, _, err := mime.ParseMediaType(ctype)
		if err != nil {
			return publishRequest{}, errUnsupportedMedia
		}
		media = m
	}
	switch media {
	case "application/json":
		body, err := readAll(r.Body)
		if err != nil {
			return publishRequest{}, err
		}
		return decodeJSONContent(body)
	case "application/x-www-form-urlencoded":
		// Parsed here rather than with Request.ParseMultipartForm, which
		// drops ParseForm's errors (a body over the limit, a bad escape) when
		// the body is not multipart, so they surfaced as "content is empty".
		body, err := readAll(r.Body)
		if err != nil {
			return publishRequest{}, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return publishRequest{}, fmt.Errorf("%w: form body: %v", errBadRequest, err)
		}
		return publishRequest{Content: form.Get("content"), At: form.Get("at"), TTL: form.Get("ttl")}, nil
	case "multipart/form-data":
		if err := r.ParseMultipartForm(s.maxBody()); err != nil {
			return publishRequest{}, bodyError(err)
		}
		return publishRequest{Content: r.PostFormValue("content"), At: r.PostFormValue("at"), TTL: r.PostFormValue("ttl")}, nil
	case "text/plain":
		body, err := readAll(r.Body)
		return publishRequest{Content: string(body)}, err
	}
	return publishRequest{}, errUnsupportedMedia
}

func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, bodyError(err)
	}
	return b, nil
}

func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errBodyTimeout
	}
	return fmt.Errorf("%w: %v", errBadRequest, err)
}

// decodeJSONContent reads {"content": "..."} with the optional "at" and
// "ttl" (schedule.go). A body that is not UTF-8 is
// refused: encoding/json would quietly replace the bad bytes with U+FFFD and
// publish something other than what was sent.
func decodeJSONContent(body []byte) (publishRequest, error) {
	if !utf8.Valid(body) {
		return publishRequest{}, announce.ErrInvalidUTF8
	}
	var req struct {
		Content *string         `json:"content"`
		At      json.RawMessage `json:"at"`
		TTL     json.RawMessage `json:"ttl"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return publishRequest{}, fmt.Errorf("%w: body is not a JSON object with a string \"content\": %v", errBadRequest, err)
	}
	if req.Content == nil {
		return publishRequest{}, fmt.Errorf("%w: JSON body has no \"content\" field", errBadRequest)
	}
	return jsonTimes(publishRequest{Content: *req.Content}, req.At, req.TTL)
}
