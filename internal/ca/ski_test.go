package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

// TestSubjectKeyIDMethod1: the key identifier is the SHA-1 of the
// subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1), as encoding/asn1
// reads them, for each kind of key.
func TestSubjectKeyIDMethod1(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, pub := range []crypto.PublicKey{&rk.PublicKey, &ek.PublicKey, edPub} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		var spki struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &spki); err != nil {
			t.Fatal(err)
		}
		want := sha1.Sum(spki.PublicKey.Bytes)
		got, err := SubjectKeyID(pub)
		if err != nil || !bytes.Equal(got, want[:]) {
			t.Errorf("%T: %x, %v; want %x", pub, got, err, want)
		}
	}
	if _, err := SubjectKeyID(struct{}{}); err == nil {
		t.Error("an unsupported key got a key identifier")
	}
}
