package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"

	"github.com/scepd/scepd/internal/der"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// MarshalPublicKey is x509.MarshalPKIXPublicKey, byte for byte: RSA and
// ECDSA keys (what enrollments carry) are written here into one buffer,
// at a fraction of the cost of encoding/asn1's reflection; any other key,
// or one those would refuse, goes to crypto/x509.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	var alg, key []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.Sign() <= 0 {
			break
		}
		n := appendInteger(nil, k.N) // the CRL encoder's INTEGER writer
		e := int64Integer(int64(k.E))
		key = der.AppendHeader(nil, 0x30, len(n)+len(e))
		key = append(append(key, n...), e...)
		alg = algRSA
	case *ecdsa.PublicKey:
		a := curveAlg(k.Curve)
		if a == nil {
			break
		}
		var err error
		if key, err = k.Bytes(); err != nil {
			key = nil
			break
		}
		alg = a
	}
	if alg == nil {
		return x509.MarshalPKIXPublicKey(pub)
	}
	bits := 1 + len(key) // the unused-bits octet, then the key
	out := der.AppendHeader(make([]byte, 0, len(alg)+len(key)+16), 0x30, len(alg)+der.ElementLen(bits))
	out = append(out, alg...)
	out = der.AppendHeader(out, 0x03, bits)
	out = append(out, 0)
	return append(out, key...), nil
}

var (
	// AlgorithmIdentifiers: rsaEncryption with NULL parameters (RFC 3279
	// §2.3.1); id-ecPublicKey with the named curve.
	algRSA         = algorithm(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, nil)
	algP224        = algorithm(oidECPublicKey, asn1.ObjectIdentifier{1, 3, 132, 0, 33})
	algP256        = algorithm(oidECPublicKey, asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	algP384        = algorithm(oidECPublicKey, asn1.ObjectIdentifier{1, 3, 132, 0, 34})
	algP521        = algorithm(oidECPublicKey, asn1.ObjectIdentifier{1, 3, 132, 0, 35})
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
)

// curveAlg is the AlgorithmIdentifier of a key on c, or nil for a curve
// other than P-224, P-256, P-384 and P-521. It compares, as crypto/x509
// does, where a map lookup would panic on a Curve of an unhashable type.
func curveAlg(c elliptic.Curve) []byte {
	switch c {
	case elliptic.P224():
		return algP224
	case elliptic.P256():
		return algP256
	case elliptic.P384():
		return algP384
	case elliptic.P521():
		return algP521
	}
	return nil
}

// algorithm encodes an AlgorithmIdentifier: the OID and, for a nil
// curve, NULL parameters.
func algorithm(oid, curve asn1.ObjectIdentifier) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if curve == nil {
			b.AddASN1NULL()
		} else {
			b.AddASN1ObjectIdentifier(curve)
		}
	})
	return b.BytesOrPanic()
}

// int64Integer encodes v as an INTEGER, minimal two's complement.
func int64Integer(v int64) []byte {
	n := 1
	for n < 8 && (v>>(8*n-1) != 0 && v>>(8*n-1) != -1) {
		n++
	}
	out := der.AppendHeader(make([]byte, 0, n+2), 0x02, n)
	for i := n - 1; i >= 0; i-- {
		out = append(out, byte(v>>(8*i)))
	}
	return out
}

// KeyDigest is the SHA-256 of a public key's SubjectPublicKeyInfo as
// MarshalPublicKey encodes it (one encoding per key, whatever encoding a
// CSR or certificate carried); nil for none, or a key it cannot encode.
func KeyDigest(pub crypto.PublicKey) []byte {
	if pub == nil {
		return nil
	}
	der, err := MarshalPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return sum[:]
}
