package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepd/scepd/internal/der"
)

// Certificate is a certificate found in (or destined for) a CMS message.
//
// Real SCEP clients sign requests with self-made certificates that Go's
// x509 parser refuses (version 4, RSA keys without NULL parameters), so
// the fields CMS needs are read from the DER directly and X509 is set only
// when Go's parser accepts the certificate.
type Certificate struct {
	Raw       []byte
	X509      *x509.Certificate // nil when crypto/x509 refused the certificate
	PublicKey crypto.PublicKey
	// RawIssuer is the DER issuer Name; RawSerial the serialNumber INTEGER
	// as a whole TLV, exactly as encoded, so recipient identifiers can echo it.
	RawIssuer    []byte
	RawSerial    []byte
	RawSubject   []byte
	SubjectKeyID []byte
}

// Serial returns the serial number, read leniently.
func (c *Certificate) Serial() *big.Int {
	_, body, err := splitTLV(c.RawSerial)
	if err != nil {
		return new(big.Int)
	}
	return new(big.Int).SetBytes(body)
}

// FromX509 wraps a certificate Go has already parsed.
func FromX509(c *x509.Certificate) *Certificate {
	cc, err := ParseCertificate(c.Raw)
	if err != nil {
		// c.Raw came from crypto/x509, so the structure is sound; keep what we know.
		return &Certificate{Raw: c.Raw, X509: c, PublicKey: c.PublicKey, RawIssuer: c.RawIssuer,
			RawSubject: c.RawSubject, RawSerial: marshalSerial(c.SerialNumber), SubjectKeyID: c.SubjectKeyId}
	}
	cc.X509 = c
	return cc
}

func marshalSerial(n *big.Int) []byte {
	var b cryptobyte.Builder
	b.AddASN1BigInt(n)
	out, _ := b.Bytes()
	return out
}

// ParseCertificate reads the fields CMS needs from a DER certificate,
// tolerating encodings crypto/x509 rejects.
func ParseCertificate(der []byte) (*Certificate, error) {
	c := &Certificate{Raw: der}
	if x, err := x509.ParseCertificate(der); err == nil {
		c.X509 = x
		c.PublicKey = x.PublicKey
		c.SubjectKeyID = x.SubjectKeyId
	}
	in := cryptobyte.String(der)
	var cert, tbs cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("cms: certificate is not a SEQUENCE")
	}
	var version cryptobyte.String
	if !tbs.ReadOptionalASN1(&version, nil, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, errors.New("cms: certificate version malformed")
	}
	var serial, sigAlg, issuer, validity, subject, spki cryptobyte.String
	var tag cbasn1.Tag
	if !tbs.ReadAnyASN1Element(&serial, &tag) || tag != cbasn1.INTEGER ||
		!tbs.ReadASN1(&sigAlg, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1(&validity, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&subject, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return nil, errors.New("cms: certificate fields malformed")
	}
	c.RawSerial = serial
	c.RawIssuer = issuer
	c.RawSubject = subject
	if c.PublicKey == nil {
		pub, err := parsePublicKeyLenient(spki)
		if err != nil {
			return nil, err
		}
		c.PublicKey = pub
	}
	return c, nil
}

// parsePublicKeyLenient accepts what x509.ParsePKIXPublicKey does, plus RSA
// keys whose AlgorithmIdentifier lacks the NULL parameter.
func parsePublicKeyLenient(spki []byte) (crypto.PublicKey, error) {
	if pub, err := x509.ParsePKIXPublicKey(spki); err == nil {
		return pub, nil
	}
	in := cryptobyte.String(spki)
	var seq, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	var bits asn1.BitString
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) || !seq.ReadASN1BitString(&bits) {
		return nil, errors.New("cms: subjectPublicKeyInfo malformed")
	}
	if !oid.Equal(oidRSAEncryption) {
		return nil, fmt.Errorf("%w: public key algorithm %s", ErrUnsupportedAlgorithm, oid)
	}
	pub, err := x509.ParsePKCS1PublicKey(bits.RightAlign())
	if err != nil {
		return nil, fmt.Errorf("cms: RSA public key: %w", err)
	}
	return pub, nil
}

// matches reports whether the certificate is the one an IssuerAndSerialNumber
// or SubjectKeyIdentifier names.
func (c *Certificate) matches(id signerID) bool {
	if id.ski != nil {
		return len(c.SubjectKeyID) > 0 && bytes.Equal(c.SubjectKeyID, id.ski)
	}
	if !bytes.Equal(c.RawIssuer, id.issuer) {
		return false
	}
	if bytes.Equal(c.RawSerial, id.serial) {
		return true
	}
	_, body, err := splitTLV(id.serial)
	if err != nil {
		return false
	}
	return new(big.Int).SetBytes(body).Cmp(c.Serial()) == 0
}

// signerID is an IssuerAndSerialNumber or a SubjectKeyIdentifier (RFC 5652 §5.3, §6.2.1).
type signerID struct {
	issuer, serial []byte
	ski            []byte
}

// encodedLen is the size of id as a SignerIdentifier (or
// RecipientIdentifier): [0] subjectKeyIdentifier, or the
// issuerAndSerialNumber SEQUENCE.
func (id signerID) encodedLen() int {
	if id.ski != nil {
		return der.ElementLen(len(id.ski))
	}
	return der.ElementLen(len(id.issuer) + len(id.serial))
}

// appendTo appends id as a SignerIdentifier (or RecipientIdentifier).
func (id signerID) appendTo(b []byte) []byte {
	if id.ski != nil {
		b = der.AppendHeader(b, 0x80, len(id.ski))
		return append(b, id.ski...)
	}
	b = der.AppendHeader(b, 0x30, len(id.issuer)+len(id.serial))
	return append(append(b, id.issuer...), id.serial...)
}

func readSignerID(s *cryptobyte.String) (signerID, error) {
	var id signerID
	if s.PeekASN1Tag(cbasn1.SEQUENCE) {
		var ias cryptobyte.String
		var serial cryptobyte.String
		var tag cbasn1.Tag
		if !s.ReadASN1(&ias, cbasn1.SEQUENCE) ||
			!ias.ReadASN1Element((*cryptobyte.String)(&id.issuer), cbasn1.SEQUENCE) ||
			!ias.ReadAnyASN1Element(&serial, &tag) || tag != cbasn1.INTEGER {
			return id, errors.New("cms: issuerAndSerialNumber malformed")
		}
		id.serial = serial
		return id, nil
	}
	var ski cryptobyte.String
	if !s.ReadASN1(&ski, cbasn1.Tag(0).ContextSpecific()) {
		return id, errors.New("cms: signer identifier malformed")
	}
	id.ski = ski
	return id, nil
}

func (c *Certificate) id() signerID {
	return signerID{issuer: c.RawIssuer, serial: c.RawSerial}
}
