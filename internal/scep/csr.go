package scep

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// NewCSR makes a PKCS#10 request for key from tmpl, carrying
// challengePassword when it is not empty. crypto/x509 cannot write that
// attribute, so the request info is rebuilt with it and signed again with
// the same algorithm.
func NewCSR(key crypto.Signer, tmpl *x509.CertificateRequest, challengePassword string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil || challengePassword == "" {
		return der, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	in := cryptobyte.String(csr.RawTBSCertificateRequest)
	var info, version, subject, spki, attrs cryptobyte.String
	if !in.ReadASN1(&info, cbasn1.SEQUENCE) ||
		!info.ReadASN1Element(&version, cbasn1.INTEGER) ||
		!info.ReadASN1Element(&subject, cbasn1.SEQUENCE) ||
		!info.ReadASN1Element(&spki, cbasn1.SEQUENCE) ||
		!info.ReadOptionalASN1(&attrs, nil, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, fmt.Errorf("scep: re-reading CSR: malformed")
	}
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(version)
		b.AddBytes(subject)
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidChallengePassword)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(challengePassword)) })
				})
			})
			b.AddBytes(attrs)
		})
	})
	tbsDER, err := tbs.Bytes()
	if err != nil {
		return nil, err
	}
	h, sigAlg, err := signatureAlgorithm(csr.SignatureAlgorithm)
	if err != nil {
		return nil, err
	}
	hh := h.New()
	hh.Write(tbsDER)
	sig, err := key.Sign(rand.Reader, hh.Sum(nil), h)
	if err != nil {
		return nil, fmt.Errorf("scep: signing CSR: %w", err)
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(sig)
	})
	return out.Bytes()
}

func signatureAlgorithm(a x509.SignatureAlgorithm) (crypto.Hash, []byte, error) {
	var h crypto.Hash
	var oid asn1.ObjectIdentifier
	null := true
	switch a {
	case x509.SHA256WithRSA:
		h, oid = crypto.SHA256, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	case x509.SHA384WithRSA:
		h, oid = crypto.SHA384, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	case x509.SHA512WithRSA:
		h, oid = crypto.SHA512, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	case x509.ECDSAWithSHA256:
		h, oid, null = crypto.SHA256, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}, false
	case x509.ECDSAWithSHA384:
		h, oid, null = crypto.SHA384, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}, false
	default:
		return 0, nil, fmt.Errorf("scep: CSR signature algorithm %v not supported", a)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if null {
			b.AddASN1NULL()
		}
	})
	der, err := b.Bytes()
	return h, der, err
}

// RedactChallenge returns the CSR without its challengePassword attribute,
// for storage: a stored request must not keep a secret. The original
// signature is kept, so the result no longer verifies; scepd checked it on
// arrival (ca.Policy.EvaluateVerified takes such requests).
func RedactChallenge(der []byte) ([]byte, error) {
	in := cryptobyte.String(der)
	var outer, info, version, subject, spki, attrs, sigAlg cryptobyte.String
	var sig asn1.BitString
	var hasAttrs bool
	if !in.ReadASN1(&outer, cbasn1.SEQUENCE) || !outer.ReadASN1(&info, cbasn1.SEQUENCE) ||
		!outer.ReadASN1Element(&sigAlg, cbasn1.SEQUENCE) || !outer.ReadASN1BitString(&sig) ||
		!info.ReadASN1Element(&version, cbasn1.INTEGER) || !info.ReadASN1Element(&subject, cbasn1.SEQUENCE) ||
		!info.ReadASN1Element(&spki, cbasn1.SEQUENCE) ||
		!info.ReadOptionalASN1(&attrs, &hasAttrs, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, fmt.Errorf("%w: CSR malformed", ErrInvalid)
	}
	var kept [][]byte
	for !attrs.Empty() {
		var attr cryptobyte.String
		if !attrs.ReadASN1Element(&attr, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("%w: CSR attribute malformed", ErrInvalid)
		}
		body := attr
		var inner cryptobyte.String
		var oid asn1.ObjectIdentifier
		if body.ReadASN1(&inner, cbasn1.SEQUENCE) && inner.ReadASN1ObjectIdentifier(&oid) && oid.Equal(oidChallengePassword) {
			continue
		}
		kept = append(kept, attr)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(der))) // the result is no longer than the request
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(version)
			b.AddBytes(subject)
			b.AddBytes(spki)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				for _, a := range kept {
					b.AddBytes(a)
				}
			})
		})
		b.AddBytes(sigAlg)
		b.AddASN1BitString(sig.Bytes)
	})
	return b.Bytes()
}
