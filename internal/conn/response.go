package conn

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// responseOut is a ResponseWriter session's writer: one write of every
// buffer joined, under a fresh write deadline, then a flush.
type responseOut struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// joined gathers one run's buffers into a single write.
var joined = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (o *responseOut) write(bufs net.Buffers, timeout time.Duration) error {
	bp := joined.Get().(*[]byte)
	b := (*bp)[:0]
	for _, f := range bufs {
		b = append(b, f...)
	}
	_ = o.rc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := o.w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		joined.Put(bp)
	}
	if err != nil {
		return err
	}
	return o.rc.Flush()
}
