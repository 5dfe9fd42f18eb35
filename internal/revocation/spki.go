package revocation

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// subjectPublicKeyBits returns the key bits of a SubjectPublicKeyInfo, the
// input of the OCSP issuerKeyHash (RFC 6960 §4.1.1).
func subjectPublicKeyBits(spki []byte) ([]byte, error) {
	in := cryptobyte.String(spki)
	var seq cryptobyte.String
	var bits []byte
	var alg cryptobyte.String
	var bs cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !seq.ReadASN1(&bs, cbasn1.BIT_STRING) || len(bs) < 1 {
		return nil, errors.New("revocation: malformed SubjectPublicKeyInfo")
	}
	bits = bs[1:] // skip the unused-bits octet
	return bits, nil
}
