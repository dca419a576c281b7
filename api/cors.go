package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// corsPolicy answers cross-origin reads for the configured origins; a
// cross-origin publish needs its origin listed explicitly (CSRF protection).
type corsPolicy struct {
	any     bool
	origins []string
}

func newCORSPolicy(origins []string) corsPolicy {
	p := corsPolicy{}
	for _, o := range origins {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		switch o {
		case "":
		case "*":
			p.any = true
		default:
			p.origins = append(p.origins, strings.ToLower(o))
		}
	}
	return p
}

func (p corsPolicy) listed(origin string) bool {
	return slices.Contains(p.origins, strings.ToLower(origin))
}

// sameOrigin reports whether the Origin header names the host the request was sent to.
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func (p corsPolicy) middleware(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin == "" || sameOrigin(c.Request, origin) {
		return
	}
	r := c.Request
	method := r.Method
	preflight := method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		method = r.Header.Get("Access-Control-Request-Method")
	}
	var allowed bool
	switch method {
	case http.MethodGet, http.MethodHead:
		allowed = p.any || p.listed(origin)
	default:
		allowed = p.listed(origin)
	}
	if !allowed {
		if method == http.MethodPost || method == http.MethodDelete { // publishing, cancelling a scheduled publish
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "cross-origin publishing from " + origin + " is not allowed (see --cors-origins)"})
			return
		}
		if preflight {
			c.AbortWithStatus(http.StatusNoContent) // no CORS headers: the browser refuses
		}
		return
	}
	h := c.Writer.Header()
	if p.any && method != http.MethodPost {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	if preflight {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Last-Event-ID, Idempotency-Key")
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// originPolicy decides who may open a WebSocket: no Origin (non-browser
// clients), the same host, or a listed origin.
type originPolicy struct{ origins []string }

func newOriginPolicy(origins []string) originPolicy {
	p := originPolicy{}
	for _, o := range origins {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			p.origins = append(p.origins, strings.ToLower(o))
		}
	}
	return p
}

func (p originPolicy) allows(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || sameOrigin(r, origin) {
		return true
	}
	return slices.Contains(p.origins, "*") || slices.Contains(p.origins, strings.ToLower(origin))
}
