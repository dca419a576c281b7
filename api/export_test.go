package api

import "github.com/announce/announce/internal/conn"

// SetPoller makes the server's sessions watch their connections with
// poller (conn.Default when nil); set it before the first connection.
func (s *Server) SetPoller(poller func() (*conn.Poller, error)) { s.conns.Poller = poller }
