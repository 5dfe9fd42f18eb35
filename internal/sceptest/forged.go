package sceptest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// Forged is a certificate for key with subject, naming issuerName (a DER
// Name, a CA's subject) as its issuer but signed by key itself: what a
// requester makes to pass for a certificate that CA issued.
func Forged(t testing.TB, key *rsa.PrivateKey, issuerName []byte, subject pkix.Name) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(77), Subject: subject, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	// The parent has no public key, so crypto/x509 does not check the
	// signature against it.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{RawSubject: issuerName}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil || !bytes.Equal(c.RawIssuer, issuerName) {
		t.Fatalf("forged certificate: %v", err)
	}
	return c
}
