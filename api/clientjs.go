package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/announce/announce/clients/js"
	"github.com/gin-gonic/gin"
)

// clientFile is one file of the browser client, ready to serve plain or gzipped.
type clientFile struct {
	ctype string
	plain []byte
	gz    []byte
	etag  string
}

func newClientFile(ctype string, body []byte) clientFile {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = w.Write(body)
	_ = w.Close()
	sum := sha256.Sum256(body)
	return clientFile{ctype: ctype, plain: body, gz: b.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// clientRoutes serves the browser client this server was built with:
// /announce.js (a classic script), /announce.mjs (the same API as an ES
// module) and /announce.d.ts (its TypeScript declarations).
func (s *Server) clientRoutes(r *gin.Engine) {
	for path, f := range map[string]clientFile{
		"/announce.js":   newClientFile("text/javascript; charset=utf-8", clientjs.Classic()),
		"/announce.mjs":  newClientFile("text/javascript; charset=utf-8", clientjs.Module()),
		"/announce.d.ts": newClientFile("text/plain; charset=utf-8", clientjs.Types()),
	} {
		h := func(c *gin.Context) { f.serve(c) }
		r.GET(path, h)
		r.HEAD(path, h)
	}
}

// serve answers with the file, revalidated by its ETag (a new server build
// is a new client), gzipped when the client accepts it.
func (f clientFile) serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	if match := c.GetHeader("If-None-Match"); match != "" && strings.Contains(match, f.etag) {
		c.Status(http.StatusNotModified)
		return
	}
	body := f.plain
	if strings.Contains(c.GetHeader("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	c.Data(http.StatusOK, f.ctype, body)
}
