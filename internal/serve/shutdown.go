package serve

import (
	"context"
	"errors"
	"fmt"
)

// ErrConnectionsCut is in Shutdown's error when connections still busy
// at the deadline (a client reading nothing, or trickling a body) were
// closed there: that is the deadline working, the rest of the stop went on.
var ErrConnectionsCut = errors.New("connections still busy at the shutdown deadline were closed")

// Shutdown stops accepting, answers waiting long-polls with the current
// message, ends SSE streams, closes WebSockets with 1001, stops presence,
// the hub and the store, and delivers the webhooks still queued. It
// returns within ctx:
//   - nil when all of that is done;
//   - an error wrapping ErrConnectionsCut and ctx's error when connections
//     still busy at the deadline had to be cut (the rest then stops in the
//     background: the deadline is spent);
//   - an error wrapping ctx's error when the hub or the store had not
//     stopped by the deadline (that goes on in the background).
//
// Webhooks still undelivered at the deadline are dropped and logged, not
// returned. Calls after the first return its result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() { n.shutdownErr = n.shutdown(ctx) })
	return n.shutdownErr
}

func (n *Node) shutdown(ctx context.Context) error {
	if busy := n.stopHTTP(ctx); busy != nil {
		go n.close(ctx) // ctx is done: what is left is not waited for
		return cutError{busy}
	}
	stopped := make(chan error, 1)
	go func() { stopped <- n.stopServices(ctx) }() // a store's close ignores ctx
	var err error
	select {
	case err = <-stopped:
	case <-ctx.Done():
		select {
		case err = <-stopped: // done just in time
		default:
			err = fmt.Errorf("the hub and the store were still stopping at the shutdown deadline: %w", ctx.Err())
		}
	}
	n.flushWebhooks(ctx) // honours ctx by itself
	return err
}

// stopHTTP ends the requests and streams, within ctx; it returns ctx's
// error when some were still busy at the deadline and had to be cut.
func (n *Node) stopHTTP(ctx context.Context) error {
	streams := make(chan error, 1)
	go func() { streams <- n.api.Shutdown(ctx) }() // long-polls answer, streams end
	var busy error
	if n.http.Shutdown(ctx) != nil && ctx.Err() != nil { // requests still running at the deadline
		busy = ctx.Err()
	}
	if err := <-streams; err != nil {
		busy = err
	}
	n.http.Close() // whatever is left
	return busy
}

// cutError is ErrConnectionsCut with the deadline's error.
type cutError struct{ cause error }

func (e cutError) Error() string        { return ErrConnectionsCut.Error() + ": " + e.cause.Error() }
func (e cutError) Is(target error) bool { return target == ErrConnectionsCut }
func (e cutError) Unwrap() error        { return e.cause }

// Graceful reports whether err, from Shutdown, is nil or says only that
// busy connections were cut at the deadline: the stop itself succeeded.
func Graceful(err error) bool {
	_, cut := err.(cutError)
	return err == nil || cut
}
