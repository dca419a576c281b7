package conn

import (
	"errors"
	"net"
	"time"
)

// poolWrite is how long a write may wait for a full socket on a pool
// worker before it detaches and waits on its own goroutine.
const poolWrite = 20 * time.Millisecond

// writeClock re-arms a connection's short write deadline lazily: a write
// finds between poolWrite/2 and poolWrite left, and a burst of writes
// shares one re-arm of the runtime timer.
type writeClock struct{ short time.Time }

// writeOut writes bufs, within timeout in all: first straight to the
// socket fd (when >= 0; the caller owns conn, so nothing closes it
// meanwhile), then what a full socket did not take through conn.
func writeOut(conn net.Conn, fd int, run *Serial, bufs net.Buffers, timeout time.Duration, wc *writeClock) error {
	if fd >= 0 {
		if err := WriteNow(fd, &bufs); err != nil || len(bufs) == 0 {
			return err
		}
	}
	return writeThrough(conn, run, bufs, timeout, wc)
}

// writeThrough writes bufs through conn with one system call (write(2) for
// a lone buffer, which costs less than writev(2) of one). When the socket
// stays full it gives run's pool worker back before waiting on. Apart from
// writeOut, so that only this slower path moves bufs to the heap.
func writeThrough(conn net.Conn, run *Serial, bufs net.Buffers, timeout time.Duration, wc *writeClock) error {
	now := time.Now()
	if timeout > poolWrite && wc.short.Sub(now) < poolWrite/2 {
		wc.short = now.Add(poolWrite)
		_ = conn.SetWriteDeadline(wc.short)
	} else if timeout <= poolWrite {
		_ = conn.SetWriteDeadline(now.Add(timeout))
	}
	var err error
	lone := len(bufs) == 1
	if lone {
		var n int
		n, err = conn.Write(bufs[0])
		bufs[0] = bufs[0][n:]
	} else {
		_, err = bufs.WriteTo(conn) // consumes what it wrote
	}
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() || timeout <= poolWrite {
		return err
	}
	run.Detach()
	wc.short = time.Time{} // the next write re-arms the short deadline
	_ = conn.SetWriteDeadline(now.Add(timeout))
	if lone {
		_, err = conn.Write(bufs[0])
	} else {
		_, err = bufs.WriteTo(conn)
	}
	return err
}
