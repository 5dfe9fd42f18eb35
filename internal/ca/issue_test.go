package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestIssueMatchesX509: the one-pass encoder writes the bytes crypto/x509
// writes for the same template and serial: the whole certificate under an
// RSA CA (PKCS #1 v1.5 signatures are deterministic), the signed part
// under an ECDSA one; and what Issue returns is what a parser reads.
func TestIssueMatchesX509(t *testing.T) {
	now := time.Now()
	u, _ := url.Parse("urn:uuid:6f1b3a2c-1d2e-4f5a-8b9c-0d1e2f3a4b5c")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	configs := []PolicyConfig{
		{},
		{Subject: SubjectConfig{Template: []string{"CN={{.CSR.Subject.CommonName}}", "O=Example Corp", "OU=Devices"}}, ExtKeyUsage: []string{"clientAuth", "1.3.6.1.4.1.99999.1.2", "serverAuth"},
			SANs: SANConfig{DNS: []string{"*.example.com"}, URI: []string{"urn:uuid:*"}, IP: []string{"192.0.2.0/24", "2001:db8::/32"}, Email: []string{"*@example.com"}, Extra: []string{"URI:urn:scepd:{{.Profile}}"}}, Validity: Duration(90 * 24 * time.Hour)},
		{KeyUsage: []string{"digitalSignature", "keyAgreement"}, ExtKeyUsage: []string{"emailProtection", "ipsecUser"}, Subject: SubjectConfig{Allowed: []string{"CN", "O", "serialNumber"}}},
		{Subject: SubjectConfig{Template: []string{"CN={{.CSR.Subject.SerialNumber}}"}}, SANs: SANConfig{DNS: []string{"*"}}},
	}
	compared := 0
	for _, kt := range []KeyType{RSA2048, ECDSAP256, ECDSAP384} {
		key, _ := GenerateKey(kt)
		root, err := NewRoot(key, pkix.Name{CommonName: "scepd Root CA", Organization: []string{"scepd"}}, 20*365*24*time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		for i, cfg := range configs {
			p, err := cfg.Compile()
			if err != nil {
				t.Fatalf("policy %d: %v", i, err)
			}
			if i == 2 {
				p.KeyUsage |= x509.KeyUsageDecipherOnly // the second byte of the bit string
			}
			if i == 1 {
				p.IssuingCertificateURL = []string{"http://pki.example.com/ca/root.crt"}
				p.OCSPServer = []string{"http://pki.example.com/ocsp/root"}
				p.CRLDistributionPoints = []string{"http://pki.example.com/crl/root.crl", "ldap://ldap.example.com/cn=root"}
			}
			for j, req := range []struct {
				key  crypto.Signer
				tmpl *x509.CertificateRequest
			}{
				{rsaKey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "laptop-42", Organization: []string{"Example"}, SerialNumber: "SN-7"}, DNSNames: []string{"laptop-42.example.com"},
					IPAddresses: []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}, EmailAddresses: []string{"dev@example.com"}, URIs: []*url.URL{u}}},
				{ecKey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "router-7", SerialNumber: "R7"}, DNSNames: []string{"router-7"}}},
				{ecKey, &x509.CertificateRequest{DNSNames: []string{"no-subject.example.com"}}},
			} {
				der, err := x509.CreateCertificateRequest(rand.Reader, req.tmpl, req.key)
				if err != nil {
					t.Fatal(err)
				}
				csr, _ := x509.ParseCertificateRequest(der)
				tmpl, err := p.Evaluate(csr, root.Cert, "test", now)
				if err != nil {
					continue // a policy that refuses this request
				}
				compared++
				serial, _ := NewSerial(rand.Reader)
				got, err := root.issue(tmpl, csr.PublicKey, serial)
				if err != nil {
					t.Fatalf("%s policy %d request %d: %v", kt, i, j, err)
				}
				want, err := root.issueWithX509(tmpl, csr.PublicKey, serial)
				if err != nil {
					t.Fatal(err)
				}
				gc, err := got.Certificate()
				if err != nil {
					t.Fatalf("%s policy %d request %d: issued certificate does not parse: %v", kt, i, j, err)
				}
				wc, _ := want.Certificate()
				if !bytes.Equal(gc.RawTBSCertificate, wc.RawTBSCertificate) {
					t.Errorf("%s policy %d request %d: TBS differs from crypto/x509's\n got %x\nwant %x", kt, i, j, gc.RawTBSCertificate, wc.RawTBSCertificate)
				}
				if kt == RSA2048 && !bytes.Equal(got.DER, want.DER) {
					t.Errorf("%s policy %d request %d: certificate differs from crypto/x509's", kt, i, j)
				}
				if err := gc.CheckSignatureFrom(root.Cert); err != nil {
					t.Errorf("%s policy %d request %d: %v", kt, i, j, err)
				}
				if got.Serial.Cmp(gc.SerialNumber) != 0 || got.Subject.String() != gc.Subject.String() || !got.NotBefore.Equal(gc.NotBefore) ||
					!got.NotAfter.Equal(gc.NotAfter) || strings.Join(got.SANs, ",") != strings.Join(SANs(gc), ",") {
					t.Errorf("%s policy %d request %d: returned %v %q %v %v %v, parsed %v %q %v %v %v", kt, i, j, got.Serial, got.Subject, got.NotBefore, got.NotAfter, got.SANs,
						gc.SerialNumber, gc.Subject, gc.NotBefore, gc.NotAfter, SANs(gc))
				}
			}
		}
	}
	if compared < 24 {
		t.Fatalf("only %d certificates compared", compared)
	}
	t.Logf("%d certificates compared", compared)
}

// faultySigner corrupts every signature, as an RSA-CRT fault would.
type faultySigner struct{ crypto.Signer }

func (f faultySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := f.Signer.Sign(r, digest, opts)
	if err == nil {
		sig[len(sig)/2] ^= 0x10
	}
	return sig, err
}

// TestIssueRefusesFaultySignature: a signature that does not verify with
// the CA's public key never leaves Issue, a faulty signer's or another
// key's.
func TestIssueRefusesFaultySignature(t *testing.T) {
	key, _ := GenerateKey(RSA2048)
	root, err := NewRoot(key, pkix.Name{CommonName: "r"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	root.Signer = faultySigner{key}
	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "d"}}, devKey)
	csr, _ := x509.ParseCertificateRequest(der)
	p := DefaultPolicy()
	tmpl, err := p.Evaluate(csr, root.Cert, "t", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	is, err := root.Issue(tmpl, csr.PublicKey)
	if err == nil || !strings.Contains(err.Error(), "does not verify") || is.DER != nil {
		t.Fatalf("faulty signature: %v, %d bytes", err, len(is.DER))
	}
	// Go's own RSA key, but not the certificate's: its signatures verify
	// with itself (crypto/rsa checks that), not with the CA certificate.
	other, _ := GenerateKey(RSA2048)
	root.Signer = other
	is, err = root.Issue(tmpl, csr.PublicKey)
	if err == nil || !strings.Contains(err.Error(), "does not verify") || is.DER != nil {
		t.Fatalf("another key's signature: %v, %d bytes", err, len(is.DER))
	}
}
