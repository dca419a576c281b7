package api

import (
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// bodyDeadline puts a read deadline (Config.BodyTimeout) on a request that
// has a body: a client that announces a body and trickles it would
// otherwise hold its connection, and a --max-conns place, for as long as it
// likes (the header has its own 10 s).
func (s *Server) bodyDeadline(c *gin.Context) {
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	rc := http.NewResponseController(c.Writer)
	if rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) != nil {
		return
	}
	body := r.Body
	r.Body = &deadlineBody{ReadCloser: body, rc: rc}
	c.Next()
	// net/http decides by the body's own type what to do with an unread
	// rest (refuse to read a large one, close after an unanswered 100
	// Continue): give it back.
	r.Body = body
}

// limitBody bounds the request's body to max bytes: a declared length over
// it is refused at once (413), before a byte is read or a 100 Continue
// invites the upload; a body that grows past it stops there.
func limitBody(c *gin.Context, max int64) error {
	r := c.Request
	if r.ContentLength > max {
		return errBodyTooLarge
	}
	r.Body = http.MaxBytesReader(c.Writer, r.Body, max)
	return nil
}

// deadlineBody lifts the read deadline once the whole body has been read:
// net/http then reads ahead to notice the client leaving, and a deadline
// passing there would cancel the request while its handler still works.
// Any other end keeps it, so that net/http's discarding of an unread rest
// before the answer cannot wait for ever either.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
