package cms

import (
	"crypto"
	_ "crypto/md5" // registers MD5 so legacy requests can be verified and then refused by policy
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/asn1"
	"fmt"
)

// Object identifiers used by CMS (RFC 5652) and the algorithms SCEP clients send.
var (
	OIDData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	OIDSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	OIDEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}

	OIDAttrContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	OIDAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	OIDAttrSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}

	oidMD5    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAESOAEP     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMD5WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}
	oidSHA1WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidSHA224WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}

	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}

	oidDESCBC    = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}
	oidDESEDE3   = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

var digestOIDs = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
}{
	{oidSHA1, crypto.SHA1},
	{oidSHA256, crypto.SHA256},
	{oidSHA384, crypto.SHA384},
	{oidSHA512, crypto.SHA512},
	{oidSHA224, crypto.SHA224},
	{oidMD5, crypto.MD5},
}

// HashFromOID maps a digest algorithm identifier to its hash. Some clients
// put a signature algorithm (sha256WithRSAEncryption) where a digest
// algorithm belongs; that is accepted too.
func HashFromOID(oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	for _, d := range digestOIDs {
		if d.oid.Equal(oid) {
			return d.hash, nil
		}
	}
	switch {
	case oid.Equal(oidMD5WithRSA):
		return crypto.MD5, nil
	case oid.Equal(oidSHA1WithRSA), oid.Equal(oidECDSAWithSHA1):
		return crypto.SHA1, nil
	case oid.Equal(oidSHA224WithRSA):
		return crypto.SHA224, nil
	case oid.Equal(oidSHA256WithRSA), oid.Equal(oidECDSAWithSHA256):
		return crypto.SHA256, nil
	case oid.Equal(oidSHA384WithRSA), oid.Equal(oidECDSAWithSHA384):
		return crypto.SHA384, nil
	case oid.Equal(oidSHA512WithRSA), oid.Equal(oidECDSAWithSHA512):
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: digest algorithm %s", ErrUnsupportedAlgorithm, oid)
}

func oidFromHash(h crypto.Hash) (asn1.ObjectIdentifier, error) {
	for _, d := range digestOIDs {
		if d.hash == h {
			return d.oid, nil
		}
	}
	return nil, fmt.Errorf("%w: digest %v", ErrUnsupportedAlgorithm, h)
}

func ecdsaSignatureOID(h crypto.Hash) (asn1.ObjectIdentifier, error) {
	switch h {
	case crypto.SHA1:
		return oidECDSAWithSHA1, nil
	case crypto.SHA256:
		return oidECDSAWithSHA256, nil
	case crypto.SHA384:
		return oidECDSAWithSHA384, nil
	case crypto.SHA512:
		return oidECDSAWithSHA512, nil
	}
	return nil, fmt.Errorf("%w: ECDSA with %v", ErrUnsupportedAlgorithm, h)
}

// Cipher is a content-encryption algorithm of an EnvelopedData.
type Cipher int

// The content ciphers SCEP clients use (RFC 8894 §3.5.2). The zero value is
// not a cipher.
const (
	DES Cipher = iota + 1
	TripleDES
	AES128
	AES192
	AES256
)

var cipherOIDs = []struct {
	oid    asn1.ObjectIdentifier
	cipher Cipher
}{
	{oidDESCBC, DES},
	{oidDESEDE3, TripleDES},
	{oidAES128CBC, AES128},
	{oidAES192CBC, AES192},
	{oidAES256CBC, AES256},
}

// String names the cipher the way operators read it in logs.
func (c Cipher) String() string {
	switch c {
	case DES:
		return "DES-CBC"
	case TripleDES:
		return "DES-EDE3-CBC"
	case AES128:
		return "AES-128-CBC"
	case AES192:
		return "AES-192-CBC"
	case AES256:
		return "AES-256-CBC"
	}
	return fmt.Sprintf("cipher(%d)", int(c))
}

// KeySize is the content-encryption key length in bytes.
func (c Cipher) KeySize() int {
	switch c {
	case DES:
		return 8
	case TripleDES:
		return 24
	case AES128:
		return 16
	case AES192:
		return 24
	case AES256:
		return 32
	}
	return 0
}

func (c Cipher) oid() asn1.ObjectIdentifier {
	for _, e := range cipherOIDs {
		if e.cipher == c {
			return e.oid
		}
	}
	return nil
}

func cipherFromOID(oid asn1.ObjectIdentifier) (Cipher, error) {
	for _, e := range cipherOIDs {
		if e.oid.Equal(oid) {
			return e.cipher, nil
		}
	}
	return 0, fmt.Errorf("%w: content cipher %s", ErrUnsupportedAlgorithm, oid)
}
