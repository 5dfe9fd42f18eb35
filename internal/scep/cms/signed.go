package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepd/scepd/internal/der"
)

// Limits on the shape of a SignedData, so that hostile input cannot make the
// server parse thousands of certificates or signers.
const (
	MaxCertificates = 16
	MaxSigners      = 4
	MaxAttributes   = 32
)

// Errors callers distinguish with errors.Is.
var (
	ErrUnsupportedAlgorithm = errors.New("cms: unsupported algorithm")
	ErrVerification         = errors.New("cms: signature verification failed")
	ErrNoSigner             = errors.New("cms: signer certificate not found")
	ErrMalformed            = errors.New("cms: malformed message")
)

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// Attribute is one signed attribute with its values kept as DER elements.
type Attribute struct {
	Type   asn1.ObjectIdentifier
	Values [][]byte
}

// SignerInfo is one signer of a SignedData (RFC 5652 §5.3).
type SignerInfo struct {
	sid          signerID
	DigestOID    asn1.ObjectIdentifier
	SignatureOID asn1.ObjectIdentifier
	Signature    []byte
	// RawSignedAttrs is the [0] IMPLICIT signedAttrs element exactly as received.
	RawSignedAttrs []byte
	Attributes     []Attribute
}

// Attr returns the first value of the signed attribute t.
func (si *SignerInfo) Attr(t asn1.ObjectIdentifier) ([]byte, bool) {
	for _, a := range si.Attributes {
		if a.Type.Equal(t) && len(a.Values) > 0 {
			return a.Values[0], true
		}
	}
	return nil, false
}

// SignedData is a parsed ContentInfo carrying SignedData (RFC 5652 §5).
type SignedData struct {
	ContentType  asn1.ObjectIdentifier // eContentType
	Content      []byte                // eContent octets; nil when absent
	Certificates []*Certificate
	// CRLs holds the raw RevocationInfoChoices (a GetCRL reply's CRL).
	CRLs    [][]byte
	Signers []SignerInfo
}

// ParseSignedData parses BER or DER ContentInfo wrapping a SignedData.
func ParseSignedData(in []byte) (*SignedData, error) {
	der, err := normalize(in)
	if err != nil {
		return nil, err
	}
	content, err := unwrapContentInfo(der, OIDSignedData)
	if err != nil {
		return nil, err
	}
	s := cryptobyte.String(content)
	var sd cryptobyte.String
	if !s.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, malformed("SignedData is not a SEQUENCE")
	}
	var version int64
	var digestAlgs, eci cryptobyte.String
	if !sd.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) ||
		!sd.ReadASN1(&digestAlgs, cbasn1.SET) ||
		!sd.ReadASN1(&eci, cbasn1.SEQUENCE) {
		return nil, malformed("SignedData header")
	}
	out := &SignedData{}
	if !eci.ReadASN1ObjectIdentifier(&out.ContentType) {
		return nil, malformed("eContentType")
	}
	if eci.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var explicit, octets cryptobyte.String
		if !eci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
			!explicit.ReadASN1(&octets, cbasn1.OCTET_STRING) {
			return nil, malformed("eContent")
		}
		out.Content = append([]byte{}, octets...)
		if out.Content == nil {
			out.Content = []byte{}
		}
	}
	var certs cryptobyte.String
	var hasCerts bool
	if !sd.ReadOptionalASN1(&certs, &hasCerts, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, malformed("certificates")
	}
	for !certs.Empty() {
		var c cryptobyte.String
		var tag cbasn1.Tag
		if !certs.ReadAnyASN1Element(&c, &tag) {
			return nil, malformed("certificate element")
		}
		if tag != cbasn1.SEQUENCE {
			continue // attribute certificates and other choices are not used by SCEP
		}
		if len(out.Certificates) == MaxCertificates {
			return nil, malformed(fmt.Sprintf("more than %d certificates", MaxCertificates))
		}
		cert, err := ParseCertificate(c)
		if err != nil {
			return nil, err
		}
		out.Certificates = append(out.Certificates, cert)
	}
	var crls cryptobyte.String
	var hasCRLs bool
	if !sd.ReadOptionalASN1(&crls, &hasCRLs, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return nil, malformed("crls")
	}
	for !crls.Empty() {
		var c cryptobyte.String
		var tag cbasn1.Tag
		if !crls.ReadAnyASN1Element(&c, &tag) || len(out.CRLs) == MaxCertificates {
			return nil, malformed("crl element")
		}
		out.CRLs = append(out.CRLs, c)
	}
	var signerInfos cryptobyte.String
	if !sd.ReadASN1(&signerInfos, cbasn1.SET) {
		return nil, malformed("signerInfos")
	}
	for !signerInfos.Empty() {
		if len(out.Signers) == MaxSigners {
			return nil, malformed(fmt.Sprintf("more than %d signers", MaxSigners))
		}
		si, err := parseSignerInfo(&signerInfos)
		if err != nil {
			return nil, err
		}
		out.Signers = append(out.Signers, si)
	}
	return out, nil
}

func unwrapContentInfo(der []byte, want asn1.ObjectIdentifier) ([]byte, error) {
	s := cryptobyte.String(der)
	var ci, content cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, malformed("ContentInfo")
	}
	if !ct.Equal(want) {
		return nil, malformed(fmt.Sprintf("content type %s, want %s", ct, want))
	}
	if !ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, malformed("ContentInfo content")
	}
	return content, nil
}

func parseSignerInfo(s *cryptobyte.String) (SignerInfo, error) {
	var si SignerInfo
	var seq, digAlg, sigAlg cryptobyte.String
	var version int64
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) {
		return si, malformed("SignerInfo")
	}
	var err error
	if si.sid, err = readSignerID(&seq); err != nil {
		return si, err
	}
	if !seq.ReadASN1(&digAlg, cbasn1.SEQUENCE) || !digAlg.ReadASN1ObjectIdentifier(&si.DigestOID) {
		return si, malformed("SignerInfo digestAlgorithm")
	}
	if seq.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var raw, attrs cryptobyte.String
		if !seq.ReadASN1Element(&raw, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return si, malformed("signedAttrs")
		}
		si.RawSignedAttrs = raw
		if !raw.ReadASN1(&attrs, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return si, malformed("signedAttrs")
		}
		for !attrs.Empty() {
			if len(si.Attributes) == MaxAttributes {
				return si, malformed(fmt.Sprintf("more than %d signed attributes", MaxAttributes))
			}
			var attr, values cryptobyte.String
			var a Attribute
			if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&a.Type) ||
				!attr.ReadASN1(&values, cbasn1.SET) {
				return si, malformed("signed attribute")
			}
			for !values.Empty() {
				var v cryptobyte.String
				var tag cbasn1.Tag
				if !values.ReadAnyASN1Element(&v, &tag) || len(a.Values) == MaxAttributes {
					return si, malformed("signed attribute value")
				}
				a.Values = append(a.Values, v)
			}
			si.Attributes = append(si.Attributes, a)
		}
	}
	if !seq.ReadASN1(&sigAlg, cbasn1.SEQUENCE) || !sigAlg.ReadASN1ObjectIdentifier(&si.SignatureOID) {
		return si, malformed("SignerInfo signatureAlgorithm")
	}
	var sig cryptobyte.String
	if !seq.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return si, malformed("SignerInfo signature")
	}
	si.Signature = sig
	return si, nil
}

// Verify checks the first signer's signature and returns its certificate
// and signer info. The signer certificate is looked up in the message and
// then in extra. Nothing about the certificate's trust is decided here:
// SCEP request signers are usually self-signed.
func (sd *SignedData) Verify(extra ...*Certificate) (*Certificate, *SignerInfo, error) {
	if len(sd.Signers) == 0 {
		return nil, nil, malformed("no signers")
	}
	si := &sd.Signers[0]
	var signer *Certificate
	for _, c := range append(append([]*Certificate{}, sd.Certificates...), extra...) {
		if c.matches(si.sid) {
			signer = c
			break
		}
	}
	if signer == nil {
		return nil, si, ErrNoSigner
	}
	h, err := HashFromOID(si.DigestOID)
	if err != nil {
		return signer, si, err
	}
	content := sd.Content
	signed := content
	if si.RawSignedAttrs != nil {
		md, ok := si.Attr(OIDAttrMessageDigest)
		if !ok {
			return signer, si, fmt.Errorf("%w: no messageDigest attribute", ErrVerification)
		}
		var digest []byte
		if _, err := asn1.Unmarshal(md, &digest); err != nil {
			return signer, si, malformed("messageDigest")
		}
		hh := h.New()
		hh.Write(content)
		if subtle.ConstantTimeCompare(hh.Sum(nil), digest) != 1 {
			return signer, si, fmt.Errorf("%w: messageDigest does not match the content", ErrVerification)
		}
		// RFC 5652 §5.4: the signature covers the DER SET OF, i.e. the received
		// bytes with the IMPLICIT [0] tag replaced by the SET tag.
		signed = make([]byte, len(si.RawSignedAttrs))
		copy(signed, si.RawSignedAttrs)
		signed[0] = 0x31
	}
	hh := h.New()
	hh.Write(signed)
	if err := verifySignature(signer.PublicKey, h, hh.Sum(nil), si.Signature); err != nil {
		return signer, si, err
	}
	return signer, si, nil
}

// Hash returns the signer's digest algorithm.
func (si *SignerInfo) Hash() (crypto.Hash, error) { return HashFromOID(si.DigestOID) }

func verifySignature(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, h, digest, sig) == nil {
			return nil
		}
		if verifyPKCS1v15Lenient(k, h, digest, sig) {
			return nil
		}
		return ErrVerification
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, digest, sig) {
			return nil
		}
		return ErrVerification
	}
	return fmt.Errorf("%w: signer key type %T", ErrUnsupportedAlgorithm, pub)
}

// verifyPKCS1v15Lenient checks a PKCS#1 v1.5 signature (RFC 8017 §8.2.2)
// with plain big-number arithmetic. crypto/rsa refuses keys under 1024 bits
// and DigestInfos without NULL parameters; old clients (OpenSCEP, sscep of
// 2005, Java SCEP clients) produce both. Only request signatures are checked
// this way: they prove possession of a key, and policy decides separately
// whether that key is acceptable.
func verifyPKCS1v15Lenient(pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte) bool {
	oid, err := oidFromHash(h)
	if err != nil || pub.N.Sign() <= 0 || pub.E < 3 {
		return false
	}
	k := (pub.N.BitLen() + 7) / 8
	if len(sig) != k {
		return false
	}
	em := new(big.Int).Exp(new(big.Int).SetBytes(sig), big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, k))
	for _, withNull := range []bool{true, false} {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oid)
				if withNull {
					b.AddASN1NULL()
				}
			})
			b.AddASN1OctetString(digest)
		})
		t, err := b.Bytes()
		if err != nil || len(t)+11 > k {
			continue
		}
		// EM = 0x00 || 0x01 || PS (0xff, at least 8) || 0x00 || T
		ok := em[0] == 0 && em[1] == 1 && em[k-len(t)-1] == 0 && bytes.Equal(em[k-len(t):], t)
		for _, c := range em[2 : k-len(t)-1] {
			ok = ok && c == 0xff
		}
		if ok {
			return true
		}
	}
	return false
}

// Signer describes how to sign a SignedData.
type Signer struct {
	Cert *Certificate
	Key  crypto.Signer
	Hash crypto.Hash
	// Certificates to include in the message (often the signer's own).
	Certificates [][]byte
}

// Sign builds a DER ContentInfo/SignedData over content with the given
// extra signed attributes (contentType and messageDigest are added here).
// A nil content produces a SignedData without eContent.
func (s Signer) Sign(content []byte, attrs []Attribute, random io.Reader) ([]byte, error) {
	if random == nil {
		random = rand.Reader
	}
	digestOID, err := oidFromHash(s.Hash)
	if err != nil {
		return nil, err
	}
	hh := s.Hash.New()
	hh.Write(content)
	all := append([]Attribute{
		{Type: OIDAttrContentType, Values: [][]byte{mustMarshal(OIDData)}},
		{Type: OIDAttrMessageDigest, Values: [][]byte{mustMarshal(hh.Sum(nil))}},
	}, attrs...)
	encoded := make([][]byte, 0, len(all))
	for _, a := range all {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(a.Type)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, v := range a.Values {
					b.AddBytes(v)
				}
			})
		})
		e, err := b.Bytes()
		if err != nil {
			return nil, fmt.Errorf("cms: encoding attribute %s: %w", a.Type, err)
		}
		encoded = append(encoded, e)
	}
	// DER SET OF: elements in ascending order of their encodings (X.690 §11.6).
	sort.Slice(encoded, func(i, j int) bool { return bytes.Compare(encoded[i], encoded[j]) < 0 })
	set := make([]byte, 0, size(encoded))
	for _, e := range encoded {
		set = append(set, e...)
	}
	toSign := appendTLV(nil, []byte{0x31}, set)
	hh = s.Hash.New()
	hh.Write(toSign)
	var sigOID asn1.ObjectIdentifier
	switch s.Key.Public().(type) {
	case *rsa.PublicKey:
		sigOID = oidRSAEncryption
	case *ecdsa.PublicKey:
		if sigOID, err = ecdsaSignatureOID(s.Hash); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: signing key %T", ErrUnsupportedAlgorithm, s.Key.Public())
	}
	sig, err := s.Key.Sign(random, hh.Sum(nil), s.Hash)
	if err != nil {
		return nil, fmt.Errorf("cms: signing: %w", err)
	}

	return encodeSignedData(digestOID, content, s.Certificates, s.Cert.id(), set, sigOID, sig), nil
}

// encodeSignedData writes the ContentInfo of a SignedData with one
// SignerInfo (RFC 5652 §5) in one pass into a buffer of its exact size:
// the lengths are summed first, so nothing is built twice or copied into
// a larger buffer (cryptobyte allocates a builder per element). attrs is
// the content of the DER SET OF the signed attributes.
func encodeSignedData(digestOID asn1.ObjectIdentifier, content []byte, certs [][]byte, id signerID, attrs []byte, sigOID asn1.ObjectIdentifier, sig []byte) []byte {
	var algs [64]byte
	digestAlg := appendAlgorithmID(algs[:0], digestOID, true)
	sigAlg := appendAlgorithmID(algs[len(digestAlg):len(digestAlg)], sigOID, sigOID.Equal(oidRSAEncryption))
	version := []byte{0x02, 0x01, 0x01}

	encap := len(oidDataTLV)
	if content != nil {
		encap += der.ElementLen(der.ElementLen(len(content)))
	}
	signerInfo := len(version) + id.encodedLen() + len(digestAlg) + der.ElementLen(len(attrs)) + len(sigAlg) + der.ElementLen(len(sig))
	signedData := len(version) + der.ElementLen(len(digestAlg)) + der.ElementLen(encap) + der.ElementLen(der.ElementLen(signerInfo))
	if len(certs) > 0 {
		signedData += der.ElementLen(size(certs))
	}
	b := beginContentInfo(oidSignedDataTLV, signedData)
	b = append(b, version...)
	b = der.AppendHeader(b, 0x31, len(digestAlg))
	b = append(b, digestAlg...)
	b = der.AppendHeader(b, 0x30, encap)
	b = append(b, oidDataTLV...)
	if content != nil {
		b = der.AppendHeader(b, 0xa0, der.ElementLen(len(content)))
		b = der.AppendHeader(b, 0x04, len(content))
		b = append(b, content...)
	}
	if len(certs) > 0 {
		b = der.AppendHeader(b, 0xa0, size(certs))
		for _, c := range certs {
			b = append(b, c...)
		}
	}
	b = der.AppendHeader(b, 0x31, der.ElementLen(signerInfo))
	b = der.AppendHeader(b, 0x30, signerInfo)
	b = append(b, version...)
	b = id.appendTo(b)
	b = append(b, digestAlg...)
	b = der.AppendHeader(b, 0xa0, len(attrs))
	b = append(b, attrs...)
	b = append(b, sigAlg...)
	b = der.AppendHeader(b, 0x04, len(sig))
	return append(b, sig...)
}

// The content types as DER OBJECT IDENTIFIERs.
var oidDataTLV, oidSignedDataTLV, oidEnvelopedDataTLV = appendOID(nil, OIDData), appendOID(nil, OIDSignedData), appendOID(nil, OIDEnvelopedData)

// beginContentInfo returns a buffer of the exact size of a ContentInfo
// (RFC 5652 §3) of contentType (its DER OBJECT IDENTIFIER) whose content
// is a SEQUENCE of inner octets, with everything written but those
// octets: the encoders append them.
func beginContentInfo(contentType []byte, inner int) []byte {
	contentInfo := len(contentType) + der.ElementLen(der.ElementLen(inner))
	b := make([]byte, 0, der.ElementLen(contentInfo))
	b = der.AppendHeader(b, 0x30, contentInfo)
	b = append(b, contentType...)
	b = der.AppendHeader(b, 0xa0, der.ElementLen(inner))
	return der.AppendHeader(b, 0x30, inner)
}

// appendOID appends the DER OBJECT IDENTIFIER oid, as cryptobyte writes
// it; oid is one of this package's (valid: two arcs or more, the first
// 0-2, the second below 40 under 0 and 1, none negative).
func appendOID(dst []byte, oid asn1.ObjectIdentifier) []byte {
	var buf [32]byte
	c := appendBase128(buf[:0], int64(oid[0]*40+oid[1]))
	for _, a := range oid[2:] {
		c = appendBase128(c, int64(a))
	}
	return append(der.AppendHeader(dst, 0x06, len(c)), c...)
}

func appendBase128(dst []byte, n int64) []byte {
	l := 1
	for i := n >> 7; i > 0; i >>= 7 {
		l++
	}
	for i := l - 1; i >= 0; i-- {
		o := byte(n>>uint(i*7)) & 0x7f
		if i != 0 {
			o |= 0x80
		}
		dst = append(dst, o)
	}
	return dst
}

// appendAlgorithmID appends the DER AlgorithmIdentifier of oid, with NULL
// parameters if null.
func appendAlgorithmID(dst []byte, oid asn1.ObjectIdentifier, null bool) []byte {
	var buf [32]byte
	o := appendOID(buf[:0], oid)
	n := len(o)
	if null {
		n += 2
	}
	dst = append(der.AppendHeader(dst, 0x30, n), o...)
	if null {
		dst = append(dst, 0x05, 0x00)
	}
	return dst
}

// Degenerate builds a certs-only SignedData (RFC 8894 §3.4), the form of
// GetCACert and of the certificate carried in a CertRep.
func Degenerate(certs [][]byte) ([]byte, error) { return DegenerateWithCRLs(certs, nil) }

// DegenerateWithCRLs is Degenerate with CRLs, the form of a GetCRL reply.
func DegenerateWithCRLs(certs, crls [][]byte) ([]byte, error) {
	// Written in one pass into a buffer of its exact size: version 1, no
	// digest algorithms, eContentType id-data without content, the
	// certificates [0] and CRLs [1] when there are any, no SignerInfos.
	encap := len(oidDataTLV)
	signedData := 3 + 2 + der.ElementLen(encap) + 2
	if len(certs) > 0 {
		signedData += der.ElementLen(size(certs))
	}
	if len(crls) > 0 {
		signedData += der.ElementLen(size(crls))
	}
	b := beginContentInfo(oidSignedDataTLV, signedData)
	b = append(b, 0x02, 0x01, 0x01, 0x31, 0x00)
	b = der.AppendHeader(b, 0x30, encap)
	b = append(b, oidDataTLV...)
	for _, l := range []struct {
		tag   byte
		elems [][]byte
	}{{0xa0, certs}, {0xa1, crls}} {
		if len(l.elems) > 0 {
			b = der.AppendHeader(b, l.tag, size(l.elems))
			for _, e := range l.elems {
				b = append(b, e...)
			}
		}
	}
	return append(b, 0x31, 0x00), nil
}

// size is the total length of bs.
func size(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cms: marshal of a fixed value failed: %v", err))
	}
	return b
}
