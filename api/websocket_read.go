package api

import (
	"bytes"
	"net"
	"sync"
	"time"

	gobwas "github.com/gobwas/ws"
)

// wsReadSize is the most one readable call takes from the socket.
const wsReadSize = 16 << 10

var wsReadBufs = sync.Pool{New: func() any { b := make([]byte, wsReadSize); return &b }}

// readFrames reads once from conn (the poller reported bytes, so the read
// does not wait) and passes every complete frame to handle. A frame's
// declared length is checked against the limit but never allocated up front:
// a client declaring large frames and sending nothing more holds only the
// bytes it sent. The keepalive ends a client whose frame stops arriving: a
// frame counts as heard only once it is complete.
func (w *wsSession) readFrames(conn net.Conn, handle func(gobwas.Header, []byte) error) error {
	bp := wsReadBufs.Get().(*[]byte)
	defer wsReadBufs.Put(bp)
	_ = conn.SetReadDeadline(time.Now().Add(w.s.cfg.PongTimeout))
	n, err := conn.Read(*bp)
	if n == 0 {
		if err == nil {
			return nil
		}
		return errGone
	}
	data := (*bp)[:n]
	if len(w.partial) > 0 {
		w.partial = append(w.partial, data...)
		data = w.partial
	}
	limit := int64(w.s.hub.MaxMessage()) + 1024
	for len(data) > 0 {
		size := wsHeaderSize(data)
		if size == 0 || len(data) < size {
			break // the header itself is unfinished
		}
		h, err := gobwas.ReadHeader(bytes.NewReader(data[:size]))
		if err != nil {
			return wsClose{gobwas.StatusProtocolError, err.Error()}
		}
		if err := gobwas.CheckHeader(h, w.state); err != nil {
			return wsClose{gobwas.StatusProtocolError, err.Error()}
		}
		if h.Length > limit || int64(len(w.message))+h.Length > limit {
			return wsClose{gobwas.StatusMessageTooBig, "frame too large"}
		}
		if int64(len(data)-size) < h.Length {
			break
		}
		payload := data[size : size+int(h.Length)]
		gobwas.Cipher(payload, h.Mask, 0)
		if err := handle(h, payload); err != nil {
			return err
		}
		data = data[size+int(h.Length):]
	}
	w.keepPartial(data)
	return nil
}

// keepPartial keeps data, an unfinished frame's bytes, for the next read.
// data is either the pool's buffer or a tail of w.partial.
func (w *wsSession) keepPartial(data []byte) {
	switch {
	case len(data) == 0:
		w.partial = nil
	case len(w.partial) > 0:
		w.partial = append(w.partial[:0], data...) // copy handles the overlap
	default:
		w.partial = append([]byte(nil), data...)
	}
}

// wsHeaderSize is the length of the frame header that data begins with, or
// 0 while its first two bytes have not arrived (RFC 6455 5.2).
func wsHeaderSize(data []byte) int {
	if len(data) < 2 {
		return 0
	}
	size := 2
	switch data[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if data[1]&0x80 != 0 {
		size += 4
	}
	return size
}
