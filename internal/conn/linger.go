package conn

import (
	"io"
	"net"
	"time"
)

// lingerTimeout bounds how long a connection closed for what its client
// sent is still read from.
const lingerTimeout = 2 * time.Second

// lingerClose half-closes conn and discards what the client still sends
// before closing it: closing a socket with unread bytes resets it, and the
// reset makes the client drop the last words it has not read yet (a
// WebSocket client would see 1006 instead of, say, 1009 for a frame too
// large).
func lingerClose(conn net.Conn) {
	defer conn.Close()
	inner := conn
	if u, ok := inner.(interface{ NetConn() net.Conn }); ok {
		inner = u.NetConn()
	}
	if tc, ok := inner.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, conn)
}
