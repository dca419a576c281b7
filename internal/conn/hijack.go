package conn

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"time"
)

// CanHijack reports whether r's connection can be taken over: HTTP/1.1
// through a writer that can hijack. HTTP/1.0 and HTTP/2 are answered
// through the ResponseWriter. Wrappers (gin's writer) are looked through:
// theirs claims to hijack whatever it wraps.
func CanHijack(w http.ResponseWriter, r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return false
	}
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			_, ok := w.(http.Hijacker)
			return ok
		}
		w = u.Unwrap()
	}
}

// HijackStream takes over an HTTP/1.1 connection for a streamed answer:
// it writes the status line and the headers gathered so far (CORS and the
// like included), close-delimited, and returns the connection; nil when
// the connection could not be taken or the head not written (the client
// is gone).
func HijackStream(w http.ResponseWriter, status int) net.Conn {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	_ = brw // a client sends nothing more on an event stream; what it did send is dropped
	h := w.Header()
	h.Set("Connection", "close")
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	head := AppendHead(make([]byte, 0, 512), status, h)
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(head); err != nil {
		conn.Close()
		return nil
	}
	return conn
}

// TakeOver hijacks a request's connection between its head and its
// answer, for an answer written later by hand (a deferred long-poll). It
// returns the connection with net/http's deadlines cleared and the bytes
// the client already sent past this request (its next one, pipelined),
// which a hand-back replays.
func TakeOver(w http.ResponseWriter) (net.Conn, []byte, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{}) // net/http's request deadlines end with the request
	return conn, readAhead(brw.Reader), nil
}

func readAhead(r *bufio.Reader) []byte {
	n := r.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := r.Peek(n)
	return bytes.Clone(b)
}

// WantsClose reports whether the client asked to close the connection
// after its answer (Connection: close, or HTTP/1.0).
func WantsClose(r *http.Request) bool {
	return r.Close || r.ProtoMajor == 1 && r.ProtoMinor == 0
}

// AppendHead appends an HTTP/1.1 status line, Date and h, and the blank line.
func AppendHead(b []byte, status int, h http.Header) []byte {
	b = fmt.Appendf(b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\n"...)
	var buf bytes.Buffer
	_ = h.Write(&buf)
	b = append(b, buf.Bytes()...)
	return append(b, "\r\n"...)
}
