package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testCSR(t testing.TB, key any, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	return csr
}

func TestPolicyConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  PolicyConfig
		want string
	}{
		{PolicyConfig{Validity: Duration(time.Minute)}, "validity"},
		{PolicyConfig{Keys: KeyConfig{RSAMinBits: 1024}}, "keys.rsa_min_bits"},
		{PolicyConfig{Keys: KeyConfig{Curves: []string{"P-999"}}}, "keys.curves"},
		{PolicyConfig{Keys: KeyConfig{RSAMinBits: -1, Curves: []string{"none"}}}, "accepts no key"},
		{PolicyConfig{Subject: SubjectConfig{Allowed: []string{"XX"}}}, "subject.allowed"},
		{PolicyConfig{Subject: SubjectConfig{Template: []string{"CN"}}}, "subject.template[0]"},
		{PolicyConfig{Subject: SubjectConfig{Template: []string{"CN={{.Nope"}}}, "subject.template[0]"},
		{PolicyConfig{SANs: SANConfig{IP: []string{"10.0.0.1"}}}, "sans.ip"},
		{PolicyConfig{SANs: SANConfig{Extra: []string{"FTP:x"}}}, "sans.extra[0]"},
		{PolicyConfig{KeyUsage: []string{"signEverything"}}, "key_usage"},
		{PolicyConfig{ExtKeyUsage: []string{"1.2"}}, "ext_key_usage"},
		// What a policy may not name, it may not spell as an OID either.
		{PolicyConfig{ExtKeyUsage: []string{"OCSPSigning"}}, "ext_key_usage"},
		{PolicyConfig{ExtKeyUsage: []string{"1.3.6.1.5.5.7.3.9"}}, "OCSPSigning"},
		{PolicyConfig{ExtKeyUsage: []string{"clientAuth", "2.5.29.37.0"}}, "any"},
		{PolicyConfig{ExtKeyUsage: []string{"1.3.6.1.5.5.7.3.09"}}, "OCSPSigning"},
	} {
		_, err := tt.cfg.Compile()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%+v) = %v, want an error about %s", tt.cfg, err, tt.want)
		}
	}
}

func TestPolicyEvaluate(t *testing.T) {
	caKey, _ := GenerateKey(ECDSAP256)
	root, err := NewRoot(caKey, pkix.Name{CommonName: "root"}, 2*365*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	u1, _ := url.Parse("urn:uuid:1234")
	u2, _ := url.Parse("https://evil.example/x")
	full := &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "dev-1", Organization: []string{"Org"}, OrganizationalUnit: []string{"Unit"}, SerialNumber: "SN42", Locality: []string{"Town"}},
		DNSNames: []string{"dev-1.devices.example.com", "www.other.example"}, IPAddresses: []net.IP{net.ParseIP("10.1.2.3"), net.ParseIP("192.0.2.1")},
		EmailAddresses: []string{"dev@example.com", "x@evil.example"}, URIs: []*url.URL{u1, u2},
	}
	attest := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1, 2}
	for _, tt := range []struct {
		name  string
		cfg   PolicyConfig
		key   any
		csr   *x509.CertificateRequest
		check func(t *testing.T, c *x509.Certificate)
		err   error
	}{
		{name: "defaults pass subject and SANs through", key: rsaKey, csr: full, check: func(t *testing.T, c *x509.Certificate) {
			if c.Subject.CommonName != "dev-1" || len(c.DNSNames) != 2 || len(c.URIs) != 2 || c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Errorf("got %v %v %v %v", c.Subject, c.DNSNames, c.URIs, c.KeyUsage)
			}
		}},
		{name: "allowed attributes", cfg: PolicyConfig{Subject: SubjectConfig{Allowed: []string{"CN", "O"}}}, key: rsaKey, csr: full, check: func(t *testing.T, c *x509.Certificate) {
			if c.Subject.String() != "CN=dev-1,O=Org" {
				t.Errorf("subject %q", c.Subject)
			}
		}},
		{name: "subject template", cfg: PolicyConfig{Subject: SubjectConfig{Template: []string{"CN={{.CSR.Subject.CommonName}}", "O=Example Corp", "OU={{.Profile}}", "SERIALNUMBER={{.CSR.Subject.SerialNumber}}"}}},
			key: ecKey, csr: full, check: func(t *testing.T, c *x509.Certificate) {
				if c.Subject.CommonName != "dev-1" || c.Subject.Organization[0] != "Example Corp" || c.Subject.OrganizationalUnit[0] != "laptops" || c.Subject.SerialNumber != "SN42" || len(c.Subject.Locality) != 0 {
					t.Errorf("subject %q", c.Subject)
				}
				if c.KeyUsage != x509.KeyUsageDigitalSignature {
					t.Errorf("EC key usage %v", c.KeyUsage)
				}
			}},
		{name: "SAN filter and extras", cfg: PolicyConfig{SANs: SANConfig{DNS: []string{"*.devices.example.com"}, IP: []string{"10.0.0.0/8"}, URI: []string{"urn:uuid:*"},
			Extra: []string{"URI:urn:device:{{.CSR.Subject.SerialNumber}}"}}}, key: rsaKey, csr: full, check: func(t *testing.T, c *x509.Certificate) {
			if len(c.DNSNames) != 1 || c.DNSNames[0] != "dev-1.devices.example.com" || len(c.IPAddresses) != 1 || len(c.EmailAddresses) != 0 ||
				len(c.URIs) != 2 || c.URIs[1].String() != "urn:device:SN42" {
				t.Errorf("SANs %v %v %v %v", c.DNSNames, c.IPAddresses, c.EmailAddresses, c.URIs)
			}
		}},
		{name: "custom EKU and key usage", cfg: PolicyConfig{ExtKeyUsage: []string{"clientAuth", "1.3.6.1.4.1.99999.1.2"}, KeyUsage: []string{"digitalSignature", "keyAgreement"}},
			key: ecKey, csr: full, check: func(t *testing.T, c *x509.Certificate) {
				if len(c.UnknownExtKeyUsage) != 1 || !c.UnknownExtKeyUsage[0].Equal(attest) || c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement {
					t.Errorf("EKU %v KU %v", c.UnknownExtKeyUsage, c.KeyUsage)
				}
			}},
		{name: "validity capped by the CA", cfg: PolicyConfig{Validity: Duration(10 * 365 * 24 * time.Hour)}, key: rsaKey, csr: full, check: func(t *testing.T, c *x509.Certificate) {
			if c.NotAfter.After(root.Cert.NotAfter) {
				t.Errorf("certificate outlives its CA")
			}
		}},
		{name: "validity 30 days", cfg: PolicyConfig{Validity: Duration(30 * 24 * time.Hour), Backdate: Duration(time.Minute)}, key: rsaKey, csr: full, check: func(t *testing.T, c *x509.Certificate) {
			if d := c.NotAfter.Sub(c.NotBefore); d != 30*24*time.Hour+time.Minute {
				t.Errorf("validity %v", d)
			}
		}},
		{name: "CN required", key: rsaKey, csr: &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{"x"}}}, err: ErrPolicy},
		{name: "CN optional", cfg: PolicyConfig{Subject: SubjectConfig{RequireCN: new(bool)}}, key: rsaKey, csr: &x509.CertificateRequest{DNSNames: []string{"a.example"}}},
		{name: "attribute too long", key: rsaKey, csr: &x509.CertificateRequest{Subject: pkix.Name{CommonName: strings.Repeat("x", 65)}}, err: ErrPolicy},
		{name: "RSA refused", cfg: PolicyConfig{Keys: KeyConfig{RSAMinBits: -1}}, key: rsaKey, csr: full, err: ErrPolicy},
		{name: "RSA 3072 minimum", cfg: PolicyConfig{Keys: KeyConfig{RSAMinBits: 3072}}, key: rsaKey, csr: full, err: ErrPolicy},
		{name: "P-384 not listed", cfg: PolicyConfig{Keys: KeyConfig{Curves: []string{"P-256"}}}, key: p384, csr: full, err: ErrPolicy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.cfg.Compile()
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := p.Evaluate(testCSR(t, tt.key, tt.csr), root.Cert, "laptops", time.Now())
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := root.Sign(tmpl, testCSR(t, tt.key, tt.csr).PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestPolicyGrantsRA(t *testing.T) {
	for _, tt := range []struct {
		ekus []string
		want bool
	}{
		{nil, false},
		{[]string{"clientAuth"}, false},
		{[]string{"clientAuth", "1.3.6.1.5.5.7.3.28"}, true},
		{[]string{"1.3.6.1.5.5.7.3.028"}, true},
		{[]string{"1.3.6.1.5.5.7.3.280"}, false},
	} {
		p, err := PolicyConfig{ExtKeyUsage: tt.ekus}.Compile()
		if err != nil {
			t.Fatal(err)
		}
		if got := p.GrantsRA(); got != tt.want {
			t.Errorf("GrantsRA(%v) = %v, want %v", tt.ekus, got, tt.want)
		}
	}
}
