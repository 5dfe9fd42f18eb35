package console

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP feeds the X-Forwarded-For a browser (or anyone behind a
// trusted proxy) may send: the address the sign-in limit and the audit
// log use is always the peer's or a well-formed address from the header,
// and the header is never believed from a peer that is not a trusted
// proxy.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "203.0.113.7, 10.0.0.2", "garbage, 198.51.100.1", "::1", "2001:db8::1, 10.0.0.9", ",,,", "1.2.3.4\x00"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	h := &Handler{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	f.Fuzz(func(t *testing.T, xff string, viaProxy bool) {
		r := httptest.NewRequest("GET", "/console/", nil)
		r.RemoteAddr = "192.0.2.1:4444"
		if viaProxy {
			r.RemoteAddr = "10.0.0.1:4444"
		}
		r.Header.Set("X-Forwarded-For", xff)
		got := h.clientIP(r)
		peerIP := strings.Split(r.RemoteAddr, ":")[0]
		if !viaProxy && got != peerIP {
			t.Fatalf("untrusted peer: clientIP = %q, want the peer %q", got, peerIP)
		}
		if got != peerIP {
			if _, err := netip.ParseAddr(got); err != nil || !strings.Contains(xff, got) {
				t.Fatalf("clientIP = %q: neither the peer nor an address from %q", got, xff)
			}
		}
	})
}
