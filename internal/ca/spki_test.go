package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"testing"
)

// TestMarshalPublicKeyAsX509: MarshalPublicKey writes the bytes
// x509.MarshalPKIXPublicKey writes, and fails where it fails.
func TestMarshalPublicKeyAsX509(t *testing.T) {
	var keys []crypto.PublicKey
	for _, bits := range []int{1024, 2048} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, &k.PublicKey)
		for _, e := range []int{0, 3, 127, 128, 255, 256, 65537, 1<<31 - 1, 1 << 40, -1, -128, -129, -1 << 40} {
			keys = append(keys, &rsa.PublicKey{N: k.N, E: e})
		}
	}
	keys = append(keys, &rsa.PublicKey{N: big.NewInt(0x7f), E: 3}, &rsa.PublicKey{N: big.NewInt(0x80), E: 0x80})
	for _, c := range []elliptic.Curve{elliptic.P224(), elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, &k.PublicKey)
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	xk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	keys = append(keys, edPub, xk.PublicKey(), nil, struct{}{}, &rsa.PublicKey{E: 3}, &rsa.PublicKey{N: big.NewInt(-5), E: 3},
		&ecdsa.PublicKey{Curve: elliptic.P256()}, &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)})
	for i, pub := range keys {
		want, werr := noPanic(func(p crypto.PublicKey) ([]byte, error) { return x509.MarshalPKIXPublicKey(p) }, pub)
		got, err := noPanic(MarshalPublicKey, pub)
		if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Errorf("key %d (%T): %x, %v; crypto/x509: %x, %v", i, pub, got, err, want, werr)
		}
	}
}

// noPanic turns a panic (crypto/ecdsa's on a key without coordinates) into an error.
func noPanic(f func(crypto.PublicKey) ([]byte, error), pub crypto.PublicKey) (b []byte, err error) {
	defer func() {
		if recover() != nil {
			b, err = nil, errPanic
		}
	}()
	return f(pub)
}

var errPanic = errorString("panicked")

type errorString string

func (e errorString) Error() string { return string(e) }

// BenchmarkMarshalPublicKey compares MarshalPublicKey with crypto/x509's
// encoder for an enrollment's RSA-2048 key: go test -run x -bench MarshalPublicKey ./internal/ca
func BenchmarkMarshalPublicKey(b *testing.B) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ca", func(b *testing.B) {
		for b.Loop() {
			MarshalPublicKey(&k.PublicKey)
		}
	})
	b.Run("x509", func(b *testing.B) {
		for b.Loop() {
			x509.MarshalPKIXPublicKey(&k.PublicKey)
		}
	})
}

// unhashableCurve is a Curve whose dynamic type cannot be a map key.
type unhashableCurve struct {
	elliptic.Curve
	_ []byte
}

// TestMarshalPublicKeyUnhashableCurve: an ECDSA key on a curve of an
// unhashable type is refused with an error, as crypto/x509 refuses it,
// not with a panic.
func TestMarshalPublicKeyUnhashableCurve(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := &ecdsa.PublicKey{Curve: unhashableCurve{Curve: elliptic.P256()}, X: k.X, Y: k.Y}
	if _, err := x509.MarshalPKIXPublicKey(pub); err == nil {
		t.Fatal("crypto/x509 encoded the key")
	}
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("panicked: %v", p)
		}
	}()
	if b, err := MarshalPublicKey(pub); err == nil {
		t.Fatalf("encoded %x", b)
	}
}
