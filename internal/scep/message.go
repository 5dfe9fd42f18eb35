// Package scep implements the SCEP wire protocol (RFC 8894): parsing and
// verifying PKIMessages, decrypting their envelopes, and building CertRep
// replies. It holds no storage and no policy.
package scep

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/scepd/scepd/internal/scep/cms"
)

// MessageType is the messageType attribute (RFC 8894 §3.2.1.2).
type MessageType string

// The message types of RFC 8894 §3.2.1.2 (UpdateReq is from older drafts).
const (
	CertRep    MessageType = "3"
	RenewalReq MessageType = "17"
	UpdateReq  MessageType = "18"
	PKCSReq    MessageType = "19"
	CertPoll   MessageType = "20"
	GetCert    MessageType = "21"
	GetCRL     MessageType = "22"
)

func (t MessageType) String() string {
	switch t {
	case CertRep:
		return "CertRep"
	case RenewalReq:
		return "RenewalReq"
	case UpdateReq:
		return "UpdateReq"
	case PKCSReq:
		return "PKCSReq"
	case CertPoll:
		return "CertPoll"
	case GetCert:
		return "GetCert"
	case GetCRL:
		return "GetCRL"
	}
	return "MessageType(" + string(t) + ")"
}

// PKIStatus is the pkiStatus attribute (RFC 8894 §3.2.1.3).
type PKIStatus string

// PKIStatus values.
const (
	StatusSuccess PKIStatus = "0"
	StatusFailure PKIStatus = "2"
	StatusPending PKIStatus = "3"
)

// FailInfo is the failInfo attribute (RFC 8894 §3.2.1.4).
type FailInfo string

// FailInfo values.
const (
	BadAlg          FailInfo = "0"
	BadMessageCheck FailInfo = "1"
	BadRequest      FailInfo = "2"
	BadTime         FailInfo = "3"
	BadCertID       FailInfo = "4"
)

func (f FailInfo) String() string {
	switch f {
	case BadAlg:
		return "badAlg"
	case BadMessageCheck:
		return "badMessageCheck"
	case BadRequest:
		return "badRequest"
	case BadTime:
		return "badTime"
	case BadCertID:
		return "badCertId"
	}
	return "failInfo(" + string(f) + ")"
}

// Signed attribute OIDs (RFC 8894 §3.2.1).
var (
	oidMessageType    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
	oidPKIStatus      = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 3}
	oidFailInfo       = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 4}
	oidSenderNonce    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
	oidRecipientNonce = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 6}
	oidTransactionID  = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
	oidFailInfoText   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 24, 1}
)

// Limits on attribute sizes from untrusted senders.
const (
	maxNonce         = 64
	maxTransactionID = 256
)

// ErrInvalid wraps every reason a message cannot be used at all; the HTTP
// layer answers it with 400.
var ErrInvalid = errors.New("scep: invalid message")

// Message is a verified SCEP PKIMessage (RFC 8894 §3.2).
type Message struct {
	Raw            []byte
	Type           MessageType
	TransactionID  string
	SenderNonce    []byte
	RecipientNonce []byte
	Status         PKIStatus // CertRep only
	FailInfo       FailInfo  // CertRep FAILURE only
	FailInfoText   string
	// Signer is the certificate whose key signed the message: a self-signed
	// certificate for a first enrollment, an issued one for renewal.
	Signer *cms.Certificate
	// Digest is the signer's digest algorithm; DigestErr is set instead when
	// the algorithm is unknown.
	Digest crypto.Hash
	// Envelope is the pkcsPKIEnvelope (RFC 8894 §3.3), nil when absent.
	Envelope []byte

	rawTransactionID []byte
}

// Parse parses a PKIMessage and verifies its signature with the signer
// certificate the message carries (or one of known, for replies whose
// signer is not included). The envelope is not decrypted.
func Parse(raw []byte, known ...*cms.Certificate) (*Message, error) {
	sd, err := cms.ParseSignedData(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	signer, si, err := sd.Verify(known...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	m := &Message{Raw: raw, Signer: signer, Envelope: sd.Content}
	if m.Digest, err = si.Hash(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	mt, err := printableAttr(si, oidMessageType, 4)
	if err != nil {
		return nil, err
	}
	m.Type = MessageType(mt)
	if m.TransactionID, err = printableAttr(si, oidTransactionID, maxTransactionID); err != nil {
		return nil, err
	}
	m.rawTransactionID, _ = si.Attr(oidTransactionID)
	if m.TransactionID == "" {
		return nil, fmt.Errorf("%w: empty transactionID", ErrInvalid)
	}
	if m.SenderNonce, err = nonceAttr(si, oidSenderNonce); err != nil {
		return nil, err
	}
	if m.RecipientNonce, err = nonceAttr(si, oidRecipientNonce); err != nil {
		return nil, err
	}
	if m.Type == CertRep {
		st, err := printableAttr(si, oidPKIStatus, 2)
		if err != nil {
			return nil, err
		}
		m.Status = PKIStatus(st)
		if m.Status == StatusFailure {
			fi, err := printableAttr(si, oidFailInfo, 2)
			if err != nil {
				return nil, err
			}
			m.FailInfo = FailInfo(fi)
			if v, ok := si.Attr(oidFailInfoText); ok {
				var s string
				if _, err := asn1.UnmarshalWithParams(v, &s, "utf8"); err == nil {
					m.FailInfoText = s
				}
			}
		}
	} else if m.SenderNonce == nil {
		return nil, fmt.Errorf("%w: request without senderNonce", ErrInvalid)
	}
	return m, nil
}

// printableAttr reads a required string attribute. RFC 8894 says
// PrintableString; clients also send UTF8String or IA5String, which are
// accepted when they hold printable ASCII.
func printableAttr(si *cms.SignerInfo, oid asn1.ObjectIdentifier, max int) (string, error) {
	v, ok := si.Attr(oid)
	if !ok {
		return "", fmt.Errorf("%w: missing attribute %s", ErrInvalid, oid)
	}
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(v, &raw); err != nil || raw.Class != asn1.ClassUniversal {
		return "", fmt.Errorf("%w: attribute %s is not a string", ErrInvalid, oid)
	}
	switch raw.Tag {
	case asn1.TagPrintableString, asn1.TagUTF8String, asn1.TagIA5String:
	default:
		return "", fmt.Errorf("%w: attribute %s has string tag %d", ErrInvalid, oid, raw.Tag)
	}
	if len(raw.Bytes) > max {
		return "", fmt.Errorf("%w: attribute %s longer than %d bytes", ErrInvalid, oid, max)
	}
	if !utf8.Valid(raw.Bytes) {
		return "", fmt.Errorf("%w: attribute %s is not valid text", ErrInvalid, oid)
	}
	for _, c := range raw.Bytes {
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: attribute %s has control characters", ErrInvalid, oid)
		}
	}
	return string(raw.Bytes), nil
}

func nonceAttr(si *cms.SignerInfo, oid asn1.ObjectIdentifier) ([]byte, error) {
	v, ok := si.Attr(oid)
	if !ok {
		return nil, nil
	}
	var n []byte
	if rest, err := asn1.Unmarshal(v, &n); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: nonce %s is not an OCTET STRING", ErrInvalid, oid)
	}
	if len(n) == 0 || len(n) > maxNonce {
		return nil, fmt.Errorf("%w: nonce %s has length %d", ErrInvalid, oid, len(n))
	}
	return n, nil
}

// OpenEnvelope parses the pkcsPKIEnvelope without decrypting it, so the
// caller can apply policy to its cipher first.
func (m *Message) OpenEnvelope() (*cms.EnvelopedData, error) {
	if m.Envelope == nil {
		return nil, fmt.Errorf("%w: %v has no pkcsPKIEnvelope", ErrInvalid, m.Type)
	}
	e, err := cms.ParseEnvelopedData(m.Envelope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return e, nil
}

// Builder makes signed PKIMessages: CertRep replies on the server side and
// requests on the client side.
type Builder struct {
	Cert *x509.Certificate
	// CMSCert is Cert as CMS needs it; set it to avoid re-reading Cert on
	// every message (servers build it once per profile).
	CMSCert *cms.Certificate
	Key     crypto.Signer
	// Rand is the randomness source; nil means crypto/rand.
	Rand io.Reader
}

func (b Builder) rand() io.Reader {
	if b.Rand != nil {
		return b.Rand
	}
	return rand.Reader
}

// NewNonce returns a fresh 16-byte nonce (RFC 8894 §3.2.1.5).
func NewNonce(r io.Reader) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	n := make([]byte, 16)
	if _, err := io.ReadFull(r, n); err != nil {
		return nil, fmt.Errorf("scep: nonce: %w", err)
	}
	return n, nil
}

// printable encodes a string attribute as PrintableString (RFC 8894
// §3.2.1), falling back to UTF8String for characters PrintableString lacks.
func printable(oid asn1.ObjectIdentifier, s string) (cms.Attribute, error) {
	v, err := asn1.MarshalWithParams(s, "printable")
	if err != nil {
		v, err = asn1.MarshalWithParams(s, "utf8")
	}
	if err != nil {
		return cms.Attribute{}, fmt.Errorf("scep: attribute %s: %w", oid, err)
	}
	return cms.Attribute{Type: oid, Values: [][]byte{v}}, nil
}

func octets(oid asn1.ObjectIdentifier, b []byte) cms.Attribute {
	v, _ := asn1.Marshal(b) // an OCTET STRING always marshals
	return cms.Attribute{Type: oid, Values: [][]byte{v}}
}
