package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepd/scepd/internal/der"
)

// Revoked is one entry of a CRL.
type Revoked struct {
	Serial *big.Int
	At     time.Time
	// Reason is the RFC 5280 §5.3.1 CRLReason; 0 (unspecified) is left out.
	Reason int
}

var (
	oidCRLNumber     = []int{2, 5, 29, 20}
	oidReasonCode    = []int{2, 5, 29, 21}
	oidAuthorityKeyI = []int{2, 5, 29, 35}
)

// crlSignature returns the AlgorithmIdentifier (DER) and the hash the CA
// signs with, as crypto/x509 would choose them; ok is false for keys it
// does not know (the CRL is then built by crypto/x509).
func crlSignature(pub crypto.PublicKey) (algID []byte, h crypto.Hash, ok bool) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		// sha256WithRSAEncryption, NULL parameters
		return []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00}, crypto.SHA256, true
	case *ecdsa.PublicKey:
		prefix := []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03}
		switch k.Curve {
		case elliptic.P256():
			return append(prefix, 0x02), crypto.SHA256, true // ecdsa-with-SHA256
		case elliptic.P384():
			return append(prefix, 0x03), crypto.SHA384, true
		case elliptic.P521():
			return append(prefix, 0x04), crypto.SHA512, true
		}
	case ed25519.PublicKey:
		return []byte{0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70}, 0, true
	}
	return nil, 0, false
}

// addExtension adds Extension ::= SEQUENCE { extnID, extnValue OCTET STRING }.
func addExtension(b *cryptobyte.Builder, oid []int, value func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(ext *cryptobyte.Builder) {
		ext.AddASN1ObjectIdentifier(oid)
		ext.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// CRL signs a certificate revocation list (RFC 5280 §5) numbered number,
// valid from now until next: version 2, the CA's subject as issuer, an
// authority key identifier and the CRL number, and per entry the serial,
// the revocation time and, unless unspecified, the reason code.
//
// It is encoded directly (one pass, no reflection) rather than with
// crypto/x509, which for 100,000 entries allocates over 300 MiB; the
// result is what crypto/x509 would produce for these fields.
func (c *CA) CRL(revoked []Revoked, number int64, now, next time.Time) ([]byte, error) {
	algID, h, ok := crlSignature(c.Signer.Public())
	if !ok {
		return c.crlWithX509(revoked, number, now, next)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 1024+len(revoked)*56))
	b.AddASN1(cbasn1.SEQUENCE, func(tbs *cryptobyte.Builder) {
		tbs.AddASN1Int64(1) // v2
		tbs.AddBytes(algID)
		tbs.AddBytes(c.Cert.RawSubject)
		tbs.AddBytes(appendTime(nil, now))
		tbs.AddBytes(appendTime(nil, next))
		if len(revoked) > 0 {
			tbs.AddASN1(cbasn1.SEQUENCE, func(list *cryptobyte.Builder) {
				// Entries are appended to one buffer without a builder each:
				// a CRL of 100,000 entries then costs a few allocations.
				buf := make([]byte, 0, len(revoked)*56)
				for _, r := range revoked {
					buf = appendEntry(buf, r)
				}
				list.AddBytes(buf)
			})
		}
		tbs.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(x *cryptobyte.Builder) {
			x.AddASN1(cbasn1.SEQUENCE, func(exts *cryptobyte.Builder) {
				if len(c.Cert.SubjectKeyId) > 0 {
					addExtension(exts, oidAuthorityKeyI, func(v *cryptobyte.Builder) {
						v.AddASN1(cbasn1.SEQUENCE, func(aki *cryptobyte.Builder) {
							aki.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(id *cryptobyte.Builder) { id.AddBytes(c.Cert.SubjectKeyId) })
						})
					})
				}
				addExtension(exts, oidCRLNumber, func(v *cryptobyte.Builder) { v.AddASN1Int64(number) })
			})
		})
	})
	tbs, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("ca: encoding CRL %d: %w", number, err)
	}
	signed := tbs
	var opts crypto.SignerOpts = h
	if h != 0 {
		d := h.New()
		d.Write(tbs)
		signed = d.Sum(nil)
	} else {
		opts = crypto.Hash(0) // Ed25519 signs the message itself
	}
	sig, err := c.Signer.Sign(c.rand(), signed, opts)
	if err != nil {
		return nil, fmt.Errorf("ca: signing CRL %d: %w", number, err)
	}
	out := cryptobyte.NewBuilder(make([]byte, 0, len(tbs)+len(algID)+len(sig)+16))
	out.AddASN1(cbasn1.SEQUENCE, func(crl *cryptobyte.Builder) {
		crl.AddBytes(tbs)
		crl.AddBytes(algID)
		crl.AddASN1BitString(sig)
	})
	return out.Bytes()
}

// appendEntry appends one revokedCertificates element: SEQUENCE {
// userCertificate INTEGER, revocationDate Time, crlEntryExtensions
// (reasonCode) unless the reason is unspecified }.
func appendEntry(dst []byte, r Revoked) []byte {
	var body [96]byte
	e := appendInteger(body[:0], r.Serial)
	e = appendTime(e, r.At)
	if r.Reason != 0 {
		// Extensions { Extension { id-ce-cRLReasons, OCTET STRING { ENUMERATED } } }
		e = append(e, 0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, byte(r.Reason))
	}
	dst = der.AppendHeader(dst, 0x30, len(e))
	return append(dst, e...)
}

// appendInteger appends a DER INTEGER of a non-negative n (certificate
// serials are positive; RFC 5280 §4.1.2.2).
func appendInteger(dst []byte, n *big.Int) []byte {
	if n.Sign() < 0 {
		var b cryptobyte.Builder
		b.AddASN1BigInt(n)
		out, _ := b.Bytes()
		return append(dst, out...)
	}
	var small [32]byte
	var v []byte
	if size := (n.BitLen() + 7) / 8; size > len(small) {
		v = n.Bytes() // an RSA modulus (MarshalPublicKey)
	} else {
		v = n.FillBytes(small[:size])
	}
	pad := len(v) == 0 || v[0]&0x80 != 0
	l := len(v)
	if pad {
		l++
	}
	dst = der.AppendHeader(dst, 0x02, l)
	if pad {
		dst = append(dst, 0)
	}
	return append(dst, v...)
}

// appendTime appends t as UTCTime through 2049 and GeneralizedTime after
// (RFC 5280 §5.1.2.4), in seconds, UTC.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if t.Year() < 2050 {
		dst = append(dst, 0x17, 13)
		return t.AppendFormat(dst, "060102150405Z")
	}
	dst = append(dst, 0x18, 15)
	return t.AppendFormat(dst, "20060102150405Z")
}

// crlWithX509 builds the CRL with crypto/x509, for CA keys crlSignature
// does not know.
func (c *CA) crlWithX509(revoked []Revoked, number int64, now, next time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At.UTC(), ReasonCode: r.Reason})
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(number),
		ThisUpdate:                now.UTC(),
		NextUpdate:                next.UTC(),
	}
	der, err := x509.CreateRevocationList(c.rand(), tmpl, c.Cert, c.Signer)
	if err != nil {
		return nil, fmt.Errorf("ca: signing CRL %d: %w", number, err)
	}
	return der, nil
}

// CRLReason codes (RFC 5280 §5.3.1).
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	ReasonRemoveFromCRL        = 8
	ReasonPrivilegeWithdrawn   = 9
	ReasonAACompromise         = 10
)

// reasonNames is the one table of CRLReason codes and their RFC 5280
// names; events, audit details, the API, the console and the CLI all
// speak these names.
var reasonNames = [...]string{
	ReasonUnspecified: "unspecified", ReasonKeyCompromise: "keyCompromise", ReasonCACompromise: "cACompromise",
	ReasonAffiliationChanged: "affiliationChanged", ReasonSuperseded: "superseded", ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold: "certificateHold", ReasonRemoveFromCRL: "removeFromCRL", ReasonPrivilegeWithdrawn: "privilegeWithdrawn",
	ReasonAACompromise: "aACompromise",
}

// ReasonName returns the RFC 5280 name of a CRLReason code, or the
// code in decimal for one the RFC does not define.
func ReasonName(code int) string {
	if code >= 0 && code < len(reasonNames) && reasonNames[code] != "" {
		return reasonNames[code]
	}
	return strconv.Itoa(code)
}

// ReasonCode returns the code of a CRLReason an operator may give by
// name. removeFromCRL is not one: it belongs to delta CRLs only.
func ReasonCode(name string) (int, bool) {
	for code, n := range reasonNames {
		if n != "" && n == name && code != ReasonRemoveFromCRL {
			return code, true
		}
	}
	return 0, false
}

// ReasonNames lists the reasons an operator may give, in code order.
func ReasonNames() []string {
	var out []string
	for code, n := range reasonNames {
		if n != "" && code != ReasonRemoveFromCRL {
			out = append(out, n)
		}
	}
	return out
}
