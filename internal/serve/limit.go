package serve

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// overLimitBody is the answer to a connection past --max-conns.
const overLimitBody = `{"error":"connection limit reached (--max-conns); retry later"}`

// limitListener holds at most max connections open. One more is answered
// 503 at once and closed, so a client (or a health check) learns why
// instead of hanging in the accept backlog.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	refusal chan struct{} // bounds the refusals written at once
	tls     *tls.Config   // with TLS: refusals are answered over it (set before serving)
}

func newLimitListener(ln net.Listener, max int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), refusal: make(chan struct{}, 64)}
}

// Accept returns the next connection within the limit, refusing those past it.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
		}
		select {
		case l.refusal <- struct{}{}:
			if l.tls != nil {
				c = tls.Server(c, l.tls)
			}
			go func() { refuse(c); <-l.refusal }()
		default:
			c.Close() // a flood: no answer is owed
		}
	}
}

// aliveBody is the liveness answer to a connection past --max-conns: a full
// node is alive, and an orchestrator that restarted it for failing its
// liveness probe would drop every observer it holds (/readyz says 503).
const aliveBody = `{"status":"ok"}`

// refuse reads the request's start (so closing does not reset the answer
// away), answers 503 (a liveness probe 200) and closes.
func refuse(c net.Conn) { refuseWith(c, "503 Service Unavailable", overLimitBody) }

// refuseWith answers status and body (a liveness probe 200) and closes.
func refuseWith(c net.Conn, status, body string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	start := make([]byte, 4096)
	n, _ := c.Read(start)
	if isLivenessProbe(start[:n]) {
		status, body = "200 OK", aliveBody
	}
	head := "HTTP/1.1 " + status + "\r\nContent-Type: application/json; charset=utf-8\r\n" +
		"Cache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	if bytes.HasPrefix(start[:n], []byte("HEAD ")) {
		body = "" // a HEAD answer has the head alone
	}
	_, _ = io.WriteString(c, head+body)
	if tc, ok := c.(interface{ CloseWrite() error }); ok { // TCP, or TLS's close_notify
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// isLivenessProbe reports whether a request starts GET or HEAD /healthz.
func isLivenessProbe(start []byte) bool {
	line, _, _ := bytes.Cut(start, []byte("\r\n"))
	method, rest, _ := bytes.Cut(line, []byte(" "))
	target, _, _ := bytes.Cut(rest, []byte(" "))
	path, _, _ := bytes.Cut(target, []byte("?"))
	return (string(method) == "GET" || string(method) == "HEAD") && string(path) == "/healthz"
}

// limitedConn frees its place in the limit once, on Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the connection c wraps, so that its socket can be
// watched without a goroutine (internal/conn).
func (c *limitedConn) NetConn() net.Conn { return c.Conn }
