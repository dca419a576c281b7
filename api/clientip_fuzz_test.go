package api

import (
	"net/http"
	"net/netip"
	"testing"
)

// FuzzClientIP: whatever forwarding headers a client sends, the client IP
// is the peer unless the peer is a trusted proxy, and then the peer or an
// address the headers name; nothing panics.
func FuzzClientIP(f *testing.F) {
	f.Add("127.0.0.1:5000", "10.0.0.1, 127.0.0.1", `for="[2001:db8::1]:80";proto=https, for=10.1.1.1`)
	f.Add("203.0.113.9:1", "1.2.3.4", "")
	f.Add("[::1]:9", "garbage, ::1", "for=unknown")
	trusted := trustedProxies{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, remote, xff, fwd string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			r.Header.Set("Forwarded", fwd)
		}
		got := trusted.clientIP(r)
		peer := peerAddr(remote)
		if !trusted.trusts(peer) {
			if got != peer {
				t.Fatalf("untrusted peer %v: client %v, want the peer", peer, got)
			}
			return
		}
		if got == peer {
			return
		}
		for _, hop := range forwardedFor(r.Header) {
			if a, ok := parseHop(hop); ok && a == got {
				return
			}
		}
		t.Fatalf("client %v is neither the peer %v nor a forwarded hop", got, peer)
	})
}
