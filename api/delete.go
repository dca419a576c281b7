package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/announce/announce/announce"
	"github.com/gin-gonic/gin"
)

// deleteChannel serves DELETE /channels/{ch}: the channel's messages,
// history, schedules and idempotency keys go, and its observers are told
// (SSE event: deleted; a WebSocket {"event":"deleted"} frame, then close
// 1000; a waiting long-poll answers the empty message, id 0) and closed.
// It needs the publish key itself: a token, which may be handed to
// browsers, is not enough, and a server without a key deletes nothing.
func (s *Server) deleteChannel(c *gin.Context) {
	if s.cfg.PublishKey == "" {
		fail(c, fmt.Errorf("%w: deleting a channel needs the server to run with --publish-key", errForbidden))
		return
	}
	cred, _ := bearer(c.GetHeader("Authorization"))
	if err := s.checkKey(cred); err != nil {
		failAuth(c, err)
		return
	}
	name := channelOf(c)
	if err := s.hub.Delete(c.Request.Context(), name, s.hosted.idem); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"channel": name, "deleted": true})
}

// deletedEvent is what a stream's observer is told when its channel is deleted.
const deletedEvent = `{"event":"deleted"}`

// channelLimitStatus maps the store-wide limits' errors (errors.go asks).
func channelLimitStatus(err error) int {
	if errors.Is(err, announce.ErrTooManyChannels) {
		return http.StatusInsufficientStorage
	}
	return http.StatusTooManyRequests // ErrTooManyScheduledTotal
}
