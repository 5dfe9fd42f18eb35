package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// TestIssuedCertificatesLint runs zlint over a root, an RA and device
// certificates issued under the default policy: no errors and no fatals.
//
// The CA/Browser Forum and root-program lints are for publicly trusted TLS
// server certificates and do not apply to a private device PKI; the
// RFC 5280 and community lints do, with one exception:
// e_key_usage_and_extended_key_usage_inconsistent reads RFC 5280's
// informative "key usage bits that may be consistent" comment for
// clientAuth (digitalSignature, keyAgreement) as a rule. Device
// certificates for RSA keys carry keyEncipherment on purpose (the
// foundation issue asks for it; IKEv1/IPsec and older EAP stacks on
// routers and phones use it, and Microsoft's and NDES's templates set it).
func TestIssuedCertificatesLint(t *testing.T) {
	registry, err := lint.GlobalRegistry().Filter(lint.FilterOptions{
		IncludeSources: lint.SourceList{lint.RFC5280, lint.Community},
		ExcludeNames:   []string{"e_key_usage_and_extended_key_usage_inconsistent"},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		key, err := GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		root, err := NewRoot(key, pkix.Name{CommonName: "scepd Root CA", Organization: []string{"scepd"}}, 20*365*24*time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		raKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		ra, err := root.IssueRA(&raKey.PublicKey, pkix.Name{CommonName: "scepd RA", Organization: []string{"scepd"}}, 10*365*24*time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		u, _ := url.Parse("urn:uuid:6f1b3a2c-1d2e-4f5a-8b9c-0d1e2f3a4b5c")
		var certs = []*x509.Certificate{root.Cert, ra}
		for i, cfg := range []PolicyConfig{
			{},
			{Subject: SubjectConfig{Template: []string{"CN={{.CSR.Subject.CommonName}}", "O=Example Corp"}}, ExtKeyUsage: []string{"clientAuth", "1.3.6.1.4.1.99999.1.2"},
				SANs: SANConfig{DNS: []string{"*.example.com"}, URI: []string{"urn:uuid:*"}, Extra: []string{"URI:urn:scepd:{{.Profile}}"}}, Validity: Duration(90 * 24 * time.Hour)},
			{KeyUsage: []string{"digitalSignature"}, ExtKeyUsage: []string{"clientAuth", "serverAuth"}, Subject: SubjectConfig{Allowed: []string{"CN"}}},
		} {
			p, err := cfg.Compile()
			if err != nil {
				t.Fatalf("policy %d: %v", i, err)
			}
			if i == 1 {
				// What public_url adds (provision): AIA caIssuers and OCSP, CDP.
				p.IssuingCertificateURL = []string{"http://pki.example.com/ca/root.crt"}
				p.OCSPServer = []string{"http://pki.example.com/ocsp/root"}
				p.CRLDistributionPoints = []string{"http://pki.example.com/crl/root.crl"}
			}
			certs = append(certs, issueSamples(t, root, p, raKey, ecKey, u, now)...)
		}
		for _, c := range certs {
			zc, err := zx509.ParseCertificate(c.Raw)
			if err != nil {
				t.Fatal(err)
			}
			rs := zlint.LintCertificateEx(zc, registry)
			for name, r := range rs.Results {
				if r.Status == lint.Error || r.Status == lint.Fatal {
					t.Errorf("%s CA, %s: %s: %s %s", kt, c.Subject.CommonName, name, r.Status, r.Details)
				}
			}
		}
	}
}

func issueSamples(t *testing.T, root *CA, p *Policy, raKey *rsa.PrivateKey, ecKey *ecdsa.PrivateKey, u *url.URL, now time.Time) []*x509.Certificate {
	var certs []*x509.Certificate
	for _, csrTmpl := range []struct {
		key  any
		tmpl *x509.CertificateRequest
	}{
		{raKey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "laptop-42", Organization: []string{"Example"}}, DNSNames: []string{"laptop-42.example.com"},
			IPAddresses: []net.IP{net.ParseIP("192.0.2.7")}, EmailAddresses: []string{"dev@example.com"}, URIs: []*url.URL{u}}},
		{ecKey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "router-7"}}},
	} {
		der, err := x509.CreateCertificateRequest(rand.Reader, csrTmpl.tmpl, csrTmpl.key)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := x509.ParseCertificateRequest(der)
		tmpl, err := p.Evaluate(csr, root.Cert, "test", now)
		if err != nil {
			t.Fatal(err)
		}
		c, err := root.Sign(tmpl, csr.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	return certs
}
