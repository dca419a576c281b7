//go:build !linux

package conn

import "net"

// WriteNow writes nothing where connections have no descriptor of their
// own (Watch.FD is -1 there): the caller writes through the net.Conn.
func WriteNow(fd int, bufs *net.Buffers) error { return nil }
