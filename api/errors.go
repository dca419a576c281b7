package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/token"
	"github.com/gin-gonic/gin"
)

// Errors of the HTTP layer itself; domain errors come from package announce.
var (
	errBadRequest   = errors.New("bad request")
	errUnauthorized = errors.New("publishing requires Authorization: Bearer KEY")
	// errFrameUnauthorized is errUnauthorized over WebSocket, where the key
	// travels in the frame.
	errFrameUnauthorized = errors.New(`publishing requires the publish key in the frame's "key" field`)
	errForbidden         = errors.New("forbidden")
	errUnsupportedMedia  = errors.New("unsupported content type: send application/json, a form, or text/plain")
	errBodyTooLarge      = errors.New("request body is too large")
	errBodyTimeout       = errors.New("request body did not arrive in time")
)

// statusOf maps an error to its HTTP status, in one place.
func statusOf(err error) int {
	switch {
	case errors.Is(err, announce.ErrInvalidChannel), errors.Is(err, announce.ErrEmptyContent),
		errors.Is(err, announce.ErrInvalidUTF8), errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, errUnauthorized), errors.Is(err, errMintUnauthorized), errors.Is(err, token.ErrMissing),
		errors.Is(err, token.ErrExpired), errors.Is(err, token.ErrInvalid):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden), errors.Is(err, token.ErrWrongChannel), errors.Is(err, token.ErrNoPublish):
		return http.StatusForbidden
	case errors.Is(err, token.ErrBadGrant):
		return http.StatusBadRequest
	case errors.Is(err, announce.ErrIdempotencyKeyReused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, announce.ErrBadSchedule):
		return http.StatusBadRequest
	case errors.Is(err, announce.ErrScheduleNotFound):
		return http.StatusNotFound
	case errors.Is(err, announce.ErrTooManyScheduled):
		return http.StatusTooManyRequests
	case errors.Is(err, announce.ErrTooManyChannels), errors.Is(err, announce.ErrTooManyScheduledTotal):
		return channelLimitStatus(err)
	case errors.Is(err, announce.ErrSchedulingUnsupported):
		return http.StatusNotImplemented
	case errors.Is(err, announce.ErrMessageTooLarge), errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errUnsupportedMedia):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, announce.ErrUnavailable), errors.Is(err, announce.ErrClosed),
		errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers err as {"error": "..."} with its status.
func fail(c *gin.Context, err error) {
	status := statusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error"
	}
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// failf answers a bad request with its own reason.
func badRequest(c *gin.Context, reason string) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": reason})
}
