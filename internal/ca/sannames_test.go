package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestValidNames(t *testing.T) {
	for name, want := range map[string]bool{
		"dev-1.alpha.example": true, "Printer01": true, "a.b": true, "xn--bcher-kva.example": true,
		"<svg onload=alert(3)>.alpha.example": false, "a b.example": false, "under_score.example": false,
		"-lead.example": false, "trail-.example": false, "a..b": false, "example.": false, "": false,
		"*.alpha.example": false, "a.*.example": false, "dev*.example": false,
		string(make([]byte, 64)) + ".example": false,
	} {
		if got := ValidHostname(name, false); got != want {
			t.Errorf("ValidHostname(%q) = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]bool{"*.alpha.example": true, "*.example": false, "*": false, "a.*.example": false} {
		if got := ValidHostname(name, true); got != want {
			t.Errorf("ValidHostname(%q, wildcard) = %v, want %v", name, got, want)
		}
	}
	for addr, want := range map[string]bool{
		"dev@example.com": true, "first.last+tag@mail.example": true,
		"<svg>@example.com": false, "a@b@example.com": false, `"quoted"@example.com`: false, "Name <a@example.com>": false,
		".lead@example.com": false, "a..b@example.com": false, "a@<svg>.example": false, "a@": false, "@example.com": false, "a@*.example.com": false,
	} {
		if got := ValidMailbox(addr); got != want {
			t.Errorf("ValidMailbox(%q) = %v, want %v", addr, got, want)
		}
	}
	for raw, want := range map[string]bool{
		"urn:uuid:8a1b0c7e-4f5d-4e2a-9b1c-0d3e5f7a9b2c": true, "https://dev-1.alpha.example/device": true, "https://[2001:db8::1]:8443/x": true,
		"spiffe://trust.example/ns/a": true, "https://user:pw@dev.alpha.example/": false, "relative/path": false, "https:///nohost": false,
		"https://dev_1.example/": false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if got := ValidURI(u) == ""; got != want {
			t.Errorf("ValidURI(%q) = %q, want valid %v", raw, ValidURI(u), want)
		}
	}
}

// TestSANPatternsNeedWellFormedNames: a malformed SAN is refused before
// any pattern applies; "*" in a pattern matches valid characters only.
func TestSANPatternsNeedWellFormedNames(t *testing.T) {
	caKey, _ := GenerateKey(ECDSAP256)
	root, err := NewRoot(caKey, pkix.Name{CommonName: "root"}, 2*365*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	uri := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	patterns := SANConfig{DNS: []string{"*.alpha.example", "dev-*.beta.example"}, Email: []string{"*@alpha.example"}, URI: []string{"urn:uuid:*", "https://*.alpha.example/*"}}
	for _, tt := range []struct {
		name   string
		sans   SANConfig
		csr    x509.CertificateRequest
		refuse bool
		dns    int // DNS SANs issued when not refused
		uris   int
	}{
		{name: "html in a DNS SAN under a pattern", sans: patterns, csr: x509.CertificateRequest{DNSNames: []string{"<svg onload=alert(3)>.alpha.example"}}, refuse: true},
		{name: "html in a DNS SAN, no patterns", csr: x509.CertificateRequest{DNSNames: []string{"<b>x</b>.example"}}, refuse: true},
		{name: "space in a label", sans: patterns, csr: x509.CertificateRequest{DNSNames: []string{"a b.alpha.example"}}, refuse: true},
		{name: "wildcard SAN not allowed", sans: patterns, csr: x509.CertificateRequest{DNSNames: []string{"*.alpha.example"}}, refuse: true},
		{name: "wildcard SAN allowed", sans: SANConfig{DNS: []string{"*.alpha.example"}, AllowWildcard: true}, csr: x509.CertificateRequest{DNSNames: []string{"*.alpha.example", "a.alpha.example"}}, dns: 2},
		{name: "bad email", sans: patterns, csr: x509.CertificateRequest{EmailAddresses: []string{"<svg>@alpha.example"}}, refuse: true},
		{name: "bad email domain", csr: x509.CertificateRequest{EmailAddresses: []string{"a@<svg>.example"}}, refuse: true},
		{name: "URI with user info", sans: patterns, csr: x509.CertificateRequest{URIs: []*url.URL{uri("https://evil.example@a.alpha.example/x")}}, refuse: true},
		{name: "valid names match", sans: patterns, csr: x509.CertificateRequest{DNSNames: []string{"a.alpha.example", "b.c.alpha.example", "dev-7.beta.example"},
			URIs: []*url.URL{uri("urn:uuid:1234-abcd"), uri("https://a.alpha.example/device")}}, dns: 3, uris: 2},
		{name: "in-label star does not cross dots", sans: patterns, csr: x509.CertificateRequest{DNSNames: []string{"dev-7.evil.beta.example", "dev-7.beta.example"}}, dns: 1},
		{name: "URI star stays in its segment", sans: patterns, csr: x509.CertificateRequest{URIs: []*url.URL{uri("https://a.alpha.example/x/y"), uri("https://a.alpha.example/x")}}, uris: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PolicyConfig{SANs: tt.sans}.Compile()
			if err != nil {
				t.Fatal(err)
			}
			tt.csr.Subject = pkix.Name{CommonName: "dev"}
			c, err := p.Evaluate(testCSR(t, key, &tt.csr), root.Cert, "p", time.Now())
			if tt.refuse {
				if !errors.Is(err, ErrPolicy) {
					t.Fatalf("Evaluate = %v, want a policy refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.DNSNames) != tt.dns || len(c.URIs) != tt.uris {
				t.Errorf("issued DNS %v URIs %v; want %d and %d", c.DNSNames, c.URIs, tt.dns, tt.uris)
			}
		})
	}
}
