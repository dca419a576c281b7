package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/announce/announce/announce"
)

// maxIdempotencyKey is the longest Idempotency-Key, in bytes.
const maxIdempotencyKey = 128

// idempotencyKey reads the optional Idempotency-Key header: 1 to 128
// printable ASCII characters, sent once.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", fmt.Errorf("%w: send one Idempotency-Key header", errBadRequest)
	}
	k := vals[0]
	if k == "" || len(k) > maxIdempotencyKey {
		return "", fmt.Errorf("%w: Idempotency-Key must be 1 to %d printable ASCII characters", errBadRequest, maxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", fmt.Errorf("%w: Idempotency-Key must be 1 to %d printable ASCII characters", errBadRequest, maxIdempotencyKey)
		}
	}
	return k, nil
}

// publishOnce publishes content (expiring after ttl when positive), or, with
// an idempotency key the channel has seen, answers the message that key
// published (replayed == true).
func (s *Server) publishOnce(ctx context.Context, channel, key, content string, ttl time.Duration) (e *announce.Envelope, replayed bool, err error) {
	if key == "" {
		e, err = s.publishNow(ctx, channel, content, ttl)
		return e, false, err
	}
	return s.hosted.idem.Do(ctx, channel, key, content, func(ictx context.Context) (*announce.Envelope, error) {
		// Detached from the request: a client giving up must not abort a
		// publish the store may be committing, or its retry would publish
		// a second message instead of finding the first. ictx, not ctx: it
		// carries what the idempotency store passes to its own store's
		// append (the Redis one writes the record in the same step).
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ictx), s.cfg.WriteTimeout)
		defer cancel()
		return s.publishNow(pctx, channel, content, ttl)
	})
}
