package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// publish serves POST .../messages and the seed's POST /chat.
func (s *Server) publish(c *gin.Context) {
	if err := s.authorize(c.GetHeader("Authorization")); err != nil {
		fail(c, err)
		return
	}
	content, err := s.readContent(c)
	if err != nil {
		fail(c, err)
		return
	}
	start := time.Now()
	e, err := s.hub.Publish(c.Request.Context(), channelOf(c), content)
	if err != nil {
		fail(c, err)
		return
	}
	s.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	c.Data(http.StatusCreated, "application/json; charset=utf-8", e.JSON)
}

// authorize checks an "Authorization: Bearer KEY" header against the publish key.
func (s *Server) authorize(header string) error {
	if s.cfg.PublishKey == "" {
		return nil
	}
	key, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || key == "" {
		return errUnauthorized
	}
	return s.checkKey(key)
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

// readContent reads the content from a JSON, form or text/plain body.
func (s *Server) readContent(c *gin.Context) (string, error) {
	r := c.Request
	r.Body = http.MaxBytesReader(c.Writer, r.Body, s.maxBody())
	ctype := r.Header.Get("Content-Type")
	media := "text/plain"
	if ctype != "" {
		m, _, err := mime.ParseMediaType(ctype)
		if err != nil {
			return "", errUnsupportedMedia
		}
		media = m
	}
	switch media {
	case "application/json":
		body, err := readAll(r.Body)
		if err != nil {
			return "", err
		}
		return decodeJSONContent(body)
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(s.maxBody()); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return "", bodyError(err)
		}
		return r.PostFormValue("content"), nil
	case "text/plain":
		body, err := readAll(r.Body)
		return string(body), err
	}
	return "", errUnsupportedMedia
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
	return fmt.Errorf("%w: %v", errBadRequest, err)
}

// decodeJSONContent reads {"content": "..."}.
func decodeJSONContent(body []byte) (string, error) {
	var req struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return "", fmt.Errorf("%w: body is not a JSON object with a string \"content\": %v", errBadRequest, err)
	}
	if req.Content == nil {
		return "", fmt.Errorf("%w: JSON body has no \"content\" field", errBadRequest)
	}
	return *req.Content, nil
}
