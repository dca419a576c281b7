package api

import (
	"net"
	"time"

	"github.com/announce/announce/internal/conn"
)

// Listener wraps the server's listener so that a connection taken over for
// a long-poll (deferred.go) is served by net/http again once answered:
// the client's next poll reuses it (keep-alive), as it would had the
// handler answered it. Without it, such answers close the connection.
func (s *Server) Listener(l net.Listener) net.Listener {
	hl := conn.NewListener(l, s.acceptFailed)
	s.handback.Store(hl)
	return hl
}

// acceptFailed counts an accept error and logs it at most once a minute:
// a flood of connections must not flood the log too.
func (s *Server) acceptFailed(err error, retry time.Duration) {
	s.metrics.acceptErrors.Inc()
	now, last := time.Now().UnixNano(), s.acceptLogged.Load()
	recent := last != 0 && now-last < int64(time.Minute)
	if recent || !s.acceptLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("accepting connections failed; retrying (raise the open-file limit, or lower --max-conns)",
		"err", err, "retry", retry)
}
