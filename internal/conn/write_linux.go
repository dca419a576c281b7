package conn

import (
	"net"

	"golang.org/x/sys/unix"
)

// maxIovecs is Linux's IOV_MAX: the most buffers one writev(2) takes.
const maxIovecs = 1024

// WriteNow writes bufs to the non-blocking socket fd with as few system
// calls as it takes and without waiting, and consumes what the socket took,
// as net.Buffers.WriteTo does: it stops at the first short write. A full
// socket (EAGAIN) or an interrupted call is no error; the caller writes
// what is left through the net.Conn, which waits for room under its
// deadline. It skips the net.Conn's deadline and descriptor locking, which
// cost a fan-out as much as a tenth of its time; so the caller must own fd
// for the call: nothing else may close the connection meanwhile.
func WriteNow(fd int, bufs *net.Buffers) error {
	for len(*bufs) > 0 {
		batch := (*bufs)[:min(len(*bufs), maxIovecs)]
		var n int
		var err error
		if len(batch) == 1 {
			n, err = unix.Write(fd, batch[0]) // costs less than writev(2) of one
		} else {
			n, err = unix.Writev(fd, batch)
		}
		if err == unix.EAGAIN || err == unix.EINTR {
			return nil
		}
		if err != nil {
			return err
		}
		if consume(bufs, n) {
			return nil // a short write: the socket is full
		}
	}
	return nil
}

// consume drops the first n bytes from bufs and reports whether the last
// buffer they reached was only partly written.
func consume(bufs *net.Buffers, n int) (short bool) {
	b := *bufs
	for len(b) > 0 && n >= len(b[0]) {
		n -= len(b[0])
		b[0] = nil
		b = b[1:]
	}
	if len(b) > 0 && n > 0 {
		b[0] = b[0][n:]
		short = true
	}
	*bufs = b
	return short
}
