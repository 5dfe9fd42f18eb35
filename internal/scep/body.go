package scep

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// IssuerAndSubject is the body of CertPoll (RFC 8894 §3.3.3): the issuer
// the requester expects and the subject of its request, both DER Names.
type IssuerAndSubject struct {
	Issuer, Subject []byte
}

// ParseIssuerAndSubject parses a CertPoll body.
func ParseIssuerAndSubject(der []byte) (IssuerAndSubject, error) {
	var out IssuerAndSubject
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element((*cryptobyte.String)(&out.Issuer), cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element((*cryptobyte.String)(&out.Subject), cbasn1.SEQUENCE) || !s.Empty() {
		return out, fmt.Errorf("%w: IssuerAndSubject malformed", ErrInvalid)
	}
	return out, nil
}

// IssuerAndSerial is the body of GetCert and GetCRL (RFC 8894 §3.3.4, §3.3.5).
type IssuerAndSerial struct {
	Issuer []byte
	Serial *big.Int
}

// ParseIssuerAndSerial parses an IssuerAndSerialNumber.
func ParseIssuerAndSerial(der []byte) (IssuerAndSerial, error) {
	var out IssuerAndSerial
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	out.Serial = new(big.Int)
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element((*cryptobyte.String)(&out.Issuer), cbasn1.SEQUENCE) ||
		!seq.ReadASN1Integer(out.Serial) || !s.Empty() {
		return out, fmt.Errorf("%w: IssuerAndSerialNumber malformed", ErrInvalid)
	}
	return out, nil
}

// ParseCSR parses the PKCS#10 body of a PKCSReq or RenewalReq. The
// signature is not checked here: that is a policy decision with its own
// failInfo (an MD5 signature parses but is refused).
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS#10: %w", ErrInvalid, err)
	}
	return csr, nil
}

var oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}

// ChallengePassword returns the challengePassword attribute of a CSR
// (RFC 2985 §5.4.1), "" when there is none. Go's x509 package does not
// expose it, so the attributes are read from the raw request info.
func ChallengePassword(csr *x509.CertificateRequest) (string, error) {
	in := cryptobyte.String(csr.RawTBSCertificateRequest)
	var info, attrs cryptobyte.String
	var version int64
	if !in.ReadASN1(&info, cbasn1.SEQUENCE) || !info.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) ||
		!info.SkipASN1(cbasn1.SEQUENCE) || !info.SkipASN1(cbasn1.SEQUENCE) {
		return "", fmt.Errorf("%w: CSR request info malformed", ErrInvalid)
	}
	var present bool
	if !info.ReadOptionalASN1(&attrs, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return "", fmt.Errorf("%w: CSR attributes malformed", ErrInvalid)
	}
	for !attrs.Empty() {
		var attr, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) || !attr.ReadASN1(&values, cbasn1.SET) {
			return "", fmt.Errorf("%w: CSR attribute malformed", ErrInvalid)
		}
		if !oid.Equal(oidChallengePassword) {
			continue
		}
		var v cryptobyte.String
		var tag cbasn1.Tag
		if !values.ReadAnyASN1(&v, &tag) {
			return "", fmt.Errorf("%w: challengePassword has no value", ErrInvalid)
		}
		switch tag {
		case cbasn1.PrintableString, cbasn1.UTF8String, cbasn1.IA5String, cbasn1.T61String:
			return string(v), nil
		case cbasn1.Tag(30): // BMPString: UTF-16BE
			if len(v)%2 != 0 {
				return "", fmt.Errorf("%w: challengePassword BMPString has odd length", ErrInvalid)
			}
			u := make([]uint16, len(v)/2)
			for i := range u {
				u[i] = uint16(v[2*i])<<8 | uint16(v[2*i+1])
			}
			return string(utf16.Decode(u)), nil
		}
		return "", fmt.Errorf("%w: challengePassword has string tag %d", ErrInvalid, tag)
	}
	return "", nil
}
