package netpoll

import "golang.org/x/sys/unix"

// maxIovecs is Linux's IOV_MAX: the most buffers one writev(2) takes.
const maxIovecs = 1024

// WriteNow writes bufs to the non-blocking socket fd with as few system
// calls as it takes and without waiting: it stops at the first short
// write and returns how many bytes the socket took. A full socket
// (EAGAIN) or an interrupted call is no error; the caller writes the rest
// through the net.Conn, which waits for room under its deadline. It skips
// the net.Conn's deadline and descriptor locking, which cost a fan-out as
// much as a fifth of its time; so the caller must own fd for the call:
// nothing else may close the connection meanwhile.
func WriteNow(fd int, bufs [][]byte) (int, error) {
	total := 0
	for len(bufs) > 0 {
		batch := bufs[:min(len(bufs), maxIovecs)]
		want := 0
		for _, b := range batch {
			want += len(b)
		}
		var n int
		var err error
		if len(batch) == 1 {
			n, err = unix.Write(fd, batch[0]) // costs less than writev(2) of one
		} else {
			n, err = unix.Writev(fd, batch)
		}
		if err == unix.EAGAIN || err == unix.EINTR {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		total += n
		if n < want {
			return total, nil
		}
		bufs = bufs[len(batch):]
	}
	return total, nil
}
