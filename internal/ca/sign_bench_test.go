package ca

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"
)

// BenchmarkSign issues a device certificate as enrollment does: the
// template of the default policy for an RSA-2048 request, signed by an
// RSA-2048 and a P-256 CA.
func BenchmarkSign(b *testing.B) {
	now := time.Now()
	devKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "laptop-42"}, DNSNames: []string{"laptop-42.example.com"}}, devKey)
	csr, _ := x509.ParseCertificateRequest(der)
	for _, kt := range []KeyType{RSA2048, ECDSAP256} {
		b.Run(string(kt), func(b *testing.B) {
			key, _ := GenerateKey(kt)
			root, err := NewRoot(key, pkix.Name{CommonName: "bench root"}, 24*time.Hour, now)
			if err != nil {
				b.Fatal(err)
			}
			pol := DefaultPolicy()
			tmpl, err := pol.Evaluate(csr, root.Cert, "bench", now)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := root.Issue(tmpl, csr.PublicKey); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
