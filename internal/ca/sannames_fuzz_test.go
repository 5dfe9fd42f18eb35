package ca

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSANNames feeds the well-formedness checks the names a CSR's
// subjectAltName may carry (device input): they never panic, and a name
// they accept has only the characters its form allows.
func FuzzSANNames(f *testing.F) {
	for _, s := range []string{"device.example", "*.alpha.example", "<svg onload=alert(3)>.alpha.example", "a b.example",
		"x@device.example", "first.last+tag@example.org", "@example", "https://device.example/p?q=1", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
		"https://user:pw@host/", "http://[::1]:8080/", strings.Repeat("a", 64) + ".example", "xn--bcher-kva.example", ".", "-a.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, wildcard := range []bool{false, true} {
			if !ValidHostname(s, wildcard) {
				continue
			}
			name := s
			if wildcard {
				name = strings.TrimPrefix(s, "*.")
			}
			if len(s) > 253 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != "" {
				t.Fatalf("ValidHostname(%q, %v) accepted characters a host name cannot have", s, wildcard)
			}
			if !wildcard && strings.Contains(s, "*") {
				t.Fatalf("ValidHostname(%q, false) accepted a wildcard", s)
			}
		}
		if ValidMailbox(s) {
			_, domain, _ := strings.Cut(s, "@")
			if !ValidHostname(domain, false) || strings.ContainsAny(s, " <>\"\\()[],;:\x00") {
				t.Fatalf("ValidMailbox(%q) accepted a malformed mailbox", s)
			}
		}
		if u, err := url.Parse(s); err == nil && ValidURI(u) == "" {
			if u.Scheme == "" || u.User != nil || strings.ContainsAny(u.String(), " <>\"{}|\\^`\x00") {
				t.Fatalf("ValidURI(%q) accepted a URI a certificate must not name", s)
			}
		}
	})
}
