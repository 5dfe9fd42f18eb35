package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"testing"
	"time"
)

// FuzzIssueMatchesX509: whatever a device puts in its CSR's subject and
// SANs, and the policy passes through, the one-pass encoder writes the
// same to-be-signed bytes as crypto/x509 (or both refuse).
func FuzzIssueMatchesX509(f *testing.F) {
	f.Add("laptop-42", "Example", "SN-7", "laptop-42.example.com", "dev@example.com", "urn:uuid:6f1b3a2c", []byte{192, 0, 2, 7})
	f.Add("", "", "", "no-subject.example.com", "", "", []byte(nil))
	f.Add("ünïcödé \x00", "O=x,CN=y", "+", "*.example.com", "a@b", "https://x/y?z", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7})
	now := time.Now()
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	root, err := NewRoot(key, pkix.Name{CommonName: "scepd Root CA"}, 10*365*24*time.Hour, now)
	if err != nil {
		f.Fatal(err)
	}
	p, err := PolicyConfig{Subject: SubjectConfig{Allowed: []string{"CN", "O", "serialNumber"}},
		SANs: SANConfig{DNS: []string{"*"}, Email: []string{"*"}, URI: []string{"*"}, IP: []string{"0.0.0.0/0", "::/0"}}}.Compile()
	if err != nil {
		f.Fatal(err)
	}
	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Fuzz(func(t *testing.T, cn, org, sn, dns, email, uri string, ip []byte) {
		req := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, SerialNumber: sn}}
		if org != "" {
			req.Subject.Organization = []string{org}
		}
		if dns != "" {
			req.DNSNames = []string{dns}
		}
		if email != "" {
			req.EmailAddresses = []string{email}
		}
		if u, err := url.Parse(uri); err == nil && uri != "" {
			req.URIs = []*url.URL{u}
		}
		if len(ip) == 4 || len(ip) == 16 {
			req.IPAddresses = []net.IP{ip}
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, req, devKey)
		if err != nil {
			return
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return
		}
		tmpl, err := p.Evaluate(csr, root.Cert, "fuzz", now)
		if err != nil {
			return
		}
		serial, _ := NewSerial(rand.Reader)
		got, gotErr := root.issue(tmpl, csr.PublicKey, serial)
		want, wantErr := root.issueWithX509(tmpl, csr.PublicKey, serial)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("one-pass: %v, crypto/x509: %v", gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		gc, err := got.Certificate()
		if err != nil {
			t.Fatalf("the issued certificate does not parse: %v", err)
		}
		wc, _ := want.Certificate()
		if !bytes.Equal(gc.RawTBSCertificate, wc.RawTBSCertificate) {
			t.Fatalf("TBS differs from crypto/x509's\n got %x\nwant %x", gc.RawTBSCertificate, wc.RawTBSCertificate)
		}
	})
}
