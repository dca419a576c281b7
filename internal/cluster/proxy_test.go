package cluster_test

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// redisProxy forwards TCP connections to Redis. hold makes it keep back
// what Redis sends on pub/sub connections (those that sent SUBSCRIBE), as a
// slow network would, until release: the node behind it then lags behind
// the store, which its command connections still reach at once.
type redisProxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	gate  chan struct{} // nil: forwarding; else closed by release
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newRedisProxy(t testing.TB, target string) *redisProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &redisProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *redisProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

func (p *redisProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

func (p *redisProxy) close() {
	p.ln.Close()
	p.release()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *redisProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *redisProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.track(client)
		p.track(server)
		var pubsub atomic.Bool
		p.wg.Go(func() { // client → Redis, watching for SUBSCRIBE
			defer server.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("subscribe")) {
						pubsub.Store(true)
					}
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
		p.wg.Go(func() { // Redis → client, held back on pub/sub connections
			defer client.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 {
					if pubsub.Load() {
						p.mu.Lock()
						gate := p.gate
						p.mu.Unlock()
						if gate != nil {
							<-gate
						}
					}
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}
