package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidPublicKeyRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidPublicKeyECDSA = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	curveOIDs         = map[elliptic.Curve]asn1.ObjectIdentifier{
		elliptic.P224(): {1, 3, 132, 0, 33},
		elliptic.P256(): {1, 2, 840, 10045, 3, 1, 7},
		elliptic.P384(): {1, 3, 132, 0, 34},
		elliptic.P521(): {1, 3, 132, 0, 35},
	}
)

// MarshalPublicKey is x509.MarshalPKIXPublicKey, byte for byte: RSA and
// ECDSA keys (what enrollments carry) are encoded here with cryptobyte,
// which costs a fraction of encoding/asn1's reflection; any other key, or
// one those would refuse, goes to crypto/x509.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	var alg func(*cryptobyte.Builder)
	var key []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.Sign() <= 0 {
			break
		}
		var kb cryptobyte.Builder
		kb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1BigInt(k.N)
			b.AddASN1Int64(int64(k.E))
		})
		var err error
		if key, err = kb.Bytes(); err != nil {
			key = nil
			break
		}
		alg = func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidPublicKeyRSA)
			b.AddASN1NULL() // RFC 3279 §2.3.1
		}
	case *ecdsa.PublicKey:
		oid, ok := curveOIDs[k.Curve]
		if !ok {
			break
		}
		var err error
		if key, err = k.Bytes(); err != nil {
			key = nil
			break
		}
		alg = func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidPublicKeyECDSA)
			b.AddASN1ObjectIdentifier(oid)
		}
	}
	if alg == nil {
		return x509.MarshalPKIXPublicKey(pub)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(key)+32))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, alg)
		b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
			b.AddUint8(0) // no unused bits
			b.AddBytes(key)
		})
	})
	return b.Bytes()
}
