package serve

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
)

// overIPLimitBody is the answer to a connection past --max-conns-per-ip.
const overIPLimitBody = `{"error":"too many connections from your address (--max-conns-per-ip); retry later"}`

// perIPListener holds at most max connections open per peer address. One
// more is answered 429 before any request is read, so a WebSocket is
// refused before its upgrade. Trusted proxies carry many clients and are
// not limited here: their clients are limited by the proxy.
type perIPListener struct {
	net.Listener
	max     int
	trusted []netip.Prefix
	limited func() // counts a refusal
	refusal chan struct{}
	tls     *tls.Config // with TLS: refusals are answered over it (set before serving)

	mu    sync.Mutex
	conns map[netip.Addr]int
}

func newPerIPListener(ln net.Listener, max int, trusted []netip.Prefix, limited func()) net.Listener {
	return &perIPListener{Listener: ln, max: max, trusted: trusted, limited: limited,
		refusal: make(chan struct{}, 64), conns: make(map[netip.Addr]int)}
}

// Accept returns the next connection within its address's limit.
func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrOf(c.RemoteAddr())
		if l.exempt(ip) {
			return c, nil
		}
		if l.take(ip) {
			return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		l.limited()
		select {
		case l.refusal <- struct{}{}:
			if l.tls != nil {
				c = tls.Server(c, l.tls)
			}
			go func() {
				refuseWith(c, "429 Too Many Requests", overIPLimitBody)
				<-l.refusal
			}()
		default:
			c.Close() // a flood: no answer is owed
		}
	}
}

func (l *perIPListener) exempt(ip netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *perIPListener) take(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[ip] >= l.max {
		return false
	}
	l.conns[ip]++
	return true
}

func (l *perIPListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}

// setRefusalTLS has the limit listeners under ln answer their refusals over
// TLS with cfg: the connections they refuse have not been through TLS yet.
func setRefusalTLS(ln net.Listener, cfg *tls.Config) {
	for {
		switch l := ln.(type) {
		case *perIPListener:
			l.tls = cfg
			ln = l.Listener
		case *limitListener:
			l.tls = cfg
			ln = l.Listener
		default:
			return
		}
	}
}
