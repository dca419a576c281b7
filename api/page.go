package api

import (
	"html/template"
	"io/fs"
	"net/http"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/assets"
	"github.com/announce/announce/templates"
	"github.com/gin-gonic/gin"
)

var pages = template.Must(template.ParseFS(templates.FS, "*.html"))

func assetsFS() http.FileSystem { return gin.OnlyFilesFS{FileSystem: http.FS(assets.FS)} } // files, no listings

// pageData is what the demo page templates render.
type pageData struct {
	Channel     string
	Current     announce.Message
	CurrentJSON template.JS // the current message, for scripts to start from
	KeyRequired bool
}

// page renders the demo with the channel's current announcement, so the page
// is right before any script runs.
func (s *Server) page(c *gin.Context) {
	name := c.DefaultQuery("channel", "default")
	if err := announce.ValidateChannel(name); err != nil {
		fail(c, err)
		return
	}
	s.render(c, "index.html", name)
}

// example serves the pages that mirror the classic seed clients.
func (s *Server) example(c *gin.Context) {
	file := c.Param("name") + ".html"
	if _, err := fs.Stat(templates.FS, "example_"+file); err != nil {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "no such example: " + c.Param("name")})
		return
	}
	s.render(c, "example_"+file, "default")
}

func (s *Server) render(c *gin.Context, file, channel string) {
	if !s.guardPage(c, channel) {
		return
	}
	ch, err := s.hub.Read(c.Request.Context(), channel)
	if err != nil {
		fail(c, err)
		return
	}
	cur := ch.Current()
	pageSecurityHeaders(c.Writer.Header())
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	err = pages.ExecuteTemplate(c.Writer, file, pageData{
		Channel:     channel,
		Current:     cur.Message,
		CurrentJSON: template.JS(cur.JSON),
		KeyRequired: s.cfg.PublishKey != "",
	})
	if err != nil {
		s.log.Error("render page", "page", file, "err", err)
	}
}

// pageCSP lets the pages run only their own scripts, from /assets (the data
// a script starts from is a JSON block, not code), and lets no other site
// frame them.
const pageCSP = "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// pageSecurityHeaders are the headers of every HTML page: its policy, the
// same no-framing rule for browsers without frame-ancestors, and no Referer,
// so a private channel's ?token= in the page's URL never leaves it.
func pageSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}
