package console

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/scepd/scepd/internal/outbound"
)

// ParseProxies reads a comma-separated list of CIDRs or addresses of
// reverse proxies (--trusted-proxies).
func ParseProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %q is neither a CIDR nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trusted reports whether addr (an IP, no port) is a trusted proxy.
func (h *Handler) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range h.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer is the address of the connection's other end, no port.
func peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return strings.Trim(host, "[]")
}

// clientIP is the address of the browser: the peer's, or, when the peer
// is a trusted proxy, the last address in X-Forwarded-For that is not a
// trusted proxy (the ones before it are the client's own word).
func (h *Handler) clientIP(r *http.Request) string {
	ip := peer(r)
	if !h.trusted(ip) {
		return ip
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				hops = append(hops, hop)
			}
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		if _, err := netip.ParseAddr(hops[i]); err != nil {
			break // not an address: stop believing the chain here
		}
		ip = hops[i]
		if !h.trusted(ip) {
			break
		}
	}
	return ip
}

// secure reports whether the browser reached the console over HTTPS, so
// cookies go out with Secure: TLS on this connection; a public URL of
// https when the console is served at it (it shares the SCEP listener);
// or X-Forwarded-Proto: https from a trusted proxy (from anyone else it
// is the client's word and ignored).
func (h *Handler) secure(r *http.Request) bool {
	if h.SCEPAddr == "" && strings.HasPrefix(strings.ToLower(h.PublicURL), "https://") {
		return true
	}
	return h.encrypted(r)
}

// encrypted reports whether this request reached scepd encrypted: TLS on
// this connection, or X-Forwarded-Proto: https from a trusted proxy. A
// public URL of https says where browsers should go, not that this one
// came that way (http://10.0.0.5:8080/console/ reaches the same listener,
// and so does http://pki.example.com/ with the public URL's Host: a TLS
// load balancer in front belongs in --trusted-proxies).
func (h *Handler) encrypted(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !h.trusted(peer(r)) {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// local reports whether the browser runs on this machine: a loopback peer
// that does not forward for someone else (a proxy or sidecar on this host
// does; it is local only as a trusted proxy whose X-Forwarded-For client
// is: Forwarded, which clientIP does not read, names no one local).
func (h *Handler) local(r *http.Request) bool {
	switch {
	case r.Header.Get("Forwarded") != "":
		return false
	case r.Header.Get("X-Forwarded-For") == "":
		return outbound.IsLoopback(peer(r))
	}
	return h.trusted(peer(r)) && outbound.IsLoopback(h.clientIP(r))
}
