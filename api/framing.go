package api

import (
	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

// closeAfterChunked closes the connection after answering a request whose
// body is chunked. RFC 9112 6.1: a request with both Content-Length and
// Transfer-Encoding may be an attempt to smuggle a request past a proxy
// that reads the other length, so the connection must close after the
// answer; net/http reads such a request as chunked and drops its
// Content-Length before any handler sees it, so every chunked request is
// treated so. Browsers never send one; a client that does loses only its
// keep-alive. A WebSocket handshake with a body is refused (400), as the
// connection would otherwise go on as a WebSocket.
func closeAfterChunked(c *gin.Context) {
	r := c.Request
	if len(r.TransferEncoding) == 0 {
		return
	}
	r.Close = true // the deferred long-poll (deferred.go) reads it
	c.Header("Connection", "close")
	if websocket.IsWebSocketUpgrade(r) {
		badRequest(c, "a WebSocket handshake has no body")
	}
}
