package ca

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// SAN values are checked for form before any pattern applies: a pattern
// says which names a profile issues, never whether a string is a name.
// Without this, "*.alpha.example" let "<svg onload=alert(3)>.alpha.example"
// through into a certificate (and every page and log that shows it).

// ValidHostname reports whether name is a DNS host name (RFC 1123): dot-
// separated labels of letters, digits and hyphens, 1 to 63 characters,
// not starting or ending with a hyphen, 253 characters at most, no
// trailing dot. With wildcard, the first label may be "*" (RFC 6125 §6.4.3
// wildcard certificates) when at least two labels follow it.
func ValidHostname(name string, wildcard bool) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	labels := strings.Split(name, ".")
	if labels[0] == "*" {
		if !wildcard || len(labels) < 3 {
			return false
		}
		labels = labels[1:]
	}
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		if !isLDH(l[i]) {
			return false
		}
	}
	return true
}

func isLDH(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// atext is RFC 5322 §3.2.3's atext: the characters of a dot-atom.
const atext = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"

var dotAtom = regexp.MustCompile(`^[` + atext + `]+(\.[` + atext + `]+)*$`)

// ValidMailbox reports whether addr is an RFC 5280 rfc822Name mailbox: an
// RFC 5322 addr-spec whose local part is a dot-atom (no quoted strings, no
// comments, no display name) of 64 characters at most, and whose domain is
// a host name.
func ValidMailbox(addr string) bool {
	local, domain, ok := strings.Cut(addr, "@")
	return ok && len(local) <= 64 && dotAtom.MatchString(local) && ValidHostname(domain, false)
}

// uriChars is what a serialised URI may contain (RFC 3986 §2: unreserved,
// reserved and '%').
var uriChars = regexp.MustCompile(`^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$`)

// ValidURI reports why u is not a URI a certificate may name, or "": it
// must be absolute (a scheme), RFC 3986 characters only, carry no user
// information, and its host, when it has an authority, must be a host
// name or an IP address.
func ValidURI(u *url.URL) string {
	s := u.String()
	switch {
	case u.Scheme == "":
		return "not an absolute URI"
	case !uriChars.MatchString(s):
		return "characters outside RFC 3986"
	case u.User != nil:
		return "user information in a URI"
	case u.Opaque != "":
		return ""
	}
	if u.Host == "" {
		if strings.HasPrefix(s[len(u.Scheme)+1:], "//") {
			return "an empty host"
		}
		return ""
	}
	if h := u.Hostname(); net.ParseIP(h) == nil && !ValidHostname(h, false) {
		return "an invalid host"
	}
	if p := u.Port(); p != "" && strings.Trim(p, "0123456789") != "" {
		return "an invalid port"
	}
	return ""
}

// checkSANForms refuses a certificate whose SANs are not well formed names.
func (p *Policy) checkSANForms(dns, email []string, uris []*url.URL) error {
	for _, n := range dns {
		if !ValidHostname(n, p.AllowWildcard) {
			if strings.HasPrefix(n, "*.") && !p.AllowWildcard {
				return fmt.Errorf("%w: DNS SAN %q: wildcard names are not allowed", ErrPolicy, clip(n))
			}
			return fmt.Errorf("%w: DNS SAN %q is not a valid host name", ErrPolicy, clip(n))
		}
	}
	for _, e := range email {
		if !ValidMailbox(e) {
			return fmt.Errorf("%w: email SAN %q is not a valid address", ErrPolicy, clip(e))
		}
	}
	for _, u := range uris {
		if why := ValidURI(u); why != "" {
			return fmt.Errorf("%w: URI SAN %q: %s", ErrPolicy, clip(u.String()), why)
		}
	}
	return nil
}

// clip quotes at most 128 bytes of untrusted s for a message.
func clip(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	return s
}

// Glob kinds: what "*" may match in a SAN pattern.
type globKind int

const (
	globDNS globKind = iota
	globEmail
	globURI
)

const (
	// ldhLabels: one or more whole labels (a pattern label that is "*").
	ldhLabels = `[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*`
	// ldhRun: letters, digits and hyphens within one label ("dev-*").
	ldhRun = `[A-Za-z0-9-]*`
	// uriRun: within one path segment, never '/', '?', '#' or '@'.
	uriRun = `[A-Za-z0-9\-._~!$&'()*+,;=:%]*`
)

// globRegexp turns a SAN pattern into an anchored regular expression in
// which "*" matches only characters valid at its place: in a DNS name,
// whole labels where it is a label ("*.devices.example") and a run of
// label characters within a label ("dev-*.example"), never dots there;
// in an email address, dot-atom characters before the '@' and DNS rules
// after it; in a URI, characters of one path segment. wildcard lets a
// whole-label "*" leading a DNS pattern also match a wildcard SAN's "*".
func globRegexp(g string, kind globKind, wildcard bool) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	switch kind {
	case globDNS:
		dnsGlob(&b, g, wildcard)
	case globEmail:
		local, domain, ok := strings.Cut(g, "@")
		b.WriteString(strings.ReplaceAll(regexp.QuoteMeta(local), `\*`, `[.`+atext+`]+`))
		if ok {
			b.WriteString("@")
			dnsGlob(&b, domain, false)
		}
	case globURI:
		b.WriteString(strings.ReplaceAll(regexp.QuoteMeta(g), `\*`, uriRun))
	}
	b.WriteString("$")
	expr := b.String()
	if kind != globURI {
		expr = "(?i)" + expr
	}
	return regexp.Compile(expr)
}

func dnsGlob(b *strings.Builder, g string, wildcard bool) {
	for i, label := range strings.Split(g, ".") {
		if i > 0 {
			b.WriteString(`\.`)
		}
		switch {
		case label == "*" && i == 0 && wildcard:
			b.WriteString(`(?:\*|` + ldhLabels + `)`)
		case label == "*":
			b.WriteString(ldhLabels)
		default:
			b.WriteString(strings.ReplaceAll(regexp.QuoteMeta(label), `\*`, ldhRun))
		}
	}
}
