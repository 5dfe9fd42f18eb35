package scep

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"github.com/scepd/scepd/internal/scep/cms"
)

// Reply is the outcome to put in a CertRep.
type Reply struct {
	Status   PKIStatus
	FailInfo FailInfo
	// FailText is sent as failInfoText (RFC 8894 §3.2.1.4); keep it free of
	// anything secret.
	FailText string
	// Certificates go in the degenerate SignedData of a SUCCESS reply, the
	// issued certificate first (clients take the first one).
	Certificates [][]byte
	// CRL, for a GetCRL reply, goes in the degenerate SignedData instead.
	CRL []byte
	// Cipher encrypts a SUCCESS reply; it must be the cipher of the request.
	Cipher cms.Cipher
	// ToAlternateRA: the request was encrypted to the profile's other RA
	// of a CA rollover (the one it replaced, or the one replacing it: a
	// client that fetched GetCACert on the other side of the switch); the
	// reply is signed by that RA, the one the client knows.
	ToAlternateRA bool
}

// CertRep builds the signed reply to req (RFC 8894 §3.3.2): the same
// transactionID, recipientNonce = the request's senderNonce, a fresh
// senderNonce, and for SUCCESS the certificates enveloped to the request's
// signer with reply.Cipher. The digest is the request's when it is one we
// sign with, SHA-256 otherwise.
func (b Builder) CertRep(req *Message, reply Reply) ([]byte, error) {
	nonce, err := NewNonce(b.rand())
	if err != nil {
		return nil, err
	}
	attrs := []cms.Attribute{
		{Type: oidTransactionID, Values: [][]byte{req.transactionIDAttr()}},
		octets(oidSenderNonce, nonce),
	}
	if req.SenderNonce != nil {
		attrs = append(attrs, octets(oidRecipientNonce, req.SenderNonce))
	}
	for _, a := range []struct {
		oid asn1.ObjectIdentifier
		v   string
	}{{oidMessageType, string(CertRep)}, {oidPKIStatus, string(reply.Status)}} {
		attr, err := printable(a.oid, a.v)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, attr)
	}
	// FAILURE and PENDING carry no pkcsPKIEnvelope, but an empty eContent
	// rather than none: OpenSSL's PKCS7_verify (certmonger, sscep) refuses a
	// SignedData without content ("no content").
	content := []byte{}
	switch reply.Status {
	case StatusFailure:
		attr, err := printable(oidFailInfo, string(reply.FailInfo))
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, attr)
		if reply.FailText != "" {
			v, err := asn1.MarshalWithParams(reply.FailText, "utf8")
			if err != nil {
				return nil, fmt.Errorf("scep: failInfoText: %w", err)
			}
			attrs = append(attrs, cms.Attribute{Type: oidFailInfoText, Values: [][]byte{v}})
		}
	case StatusSuccess:
		var crls [][]byte
		if reply.CRL != nil {
			crls = [][]byte{reply.CRL}
		}
		inner, err := cms.DegenerateWithCRLs(reply.Certificates, crls)
		if err != nil {
			return nil, fmt.Errorf("scep: certs-only SignedData: %w", err)
		}
		if content, err = cms.Encrypt(inner, req.Signer, reply.Cipher, b.rand()); err != nil {
			return nil, fmt.Errorf("scep: encrypting CertRep to the requester: %w", err)
		}
	case StatusPending:
	default:
		return nil, fmt.Errorf("scep: unknown pkiStatus %q", reply.Status)
	}
	h := req.Digest
	switch h {
	case crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		h = crypto.SHA256
	}
	return b.sign(content, attrs, h)
}

func (b Builder) sign(content []byte, attrs []cms.Attribute, h crypto.Hash) ([]byte, error) {
	cc := b.CMSCert
	if cc == nil {
		cc = cms.FromX509(b.Cert)
	}
	s := cms.Signer{Cert: cc, Key: b.Key, Hash: h, Certificates: [][]byte{b.Cert.Raw}}
	return s.Sign(content, attrs, b.rand())
}

// transactionIDAttr echoes the transactionID exactly as the client encoded
// it; clients send strings PrintableString cannot hold.
func (m *Message) transactionIDAttr() []byte {
	if m.rawTransactionID != nil {
		return m.rawTransactionID
	}
	a, err := printable(oidTransactionID, m.TransactionID)
	if err != nil {
		return nil // only for invalid UTF-8, which Parse never lets through
	}
	return a.Values[0]
}

// Request describes a client request to build.
type Request struct {
	Type          MessageType
	TransactionID string
	// Body is the plaintext messageData: a DER CSR for PKCSReq/RenewalReq,
	// IssuerAndSubject for CertPoll, IssuerAndSerialNumber for GetCert/GetCRL.
	Body      []byte
	Recipient *x509.Certificate
	Cipher    cms.Cipher
	Digest    crypto.Hash
}

// NewRequest builds a signed, enveloped request; b is the requester's
// (often self-signed) certificate and key. It returns the message and the
// senderNonce it used.
func (b Builder) NewRequest(r Request) (msg []byte, nonce []byte, err error) {
	env, err := cms.Encrypt(r.Body, cms.FromX509(r.Recipient), r.Cipher, b.rand())
	if err != nil {
		return nil, nil, err
	}
	if nonce, err = NewNonce(b.rand()); err != nil {
		return nil, nil, err
	}
	attrs := []cms.Attribute{octets(oidSenderNonce, nonce)}
	for _, a := range []struct {
		oid asn1.ObjectIdentifier
		v   string
	}{{oidMessageType, string(r.Type)}, {oidTransactionID, r.TransactionID}} {
		attr, err := printable(a.oid, a.v)
		if err != nil {
			return nil, nil, err
		}
		attrs = append(attrs, attr)
	}
	msg, err = b.sign(env, attrs, r.Digest)
	return msg, nonce, err
}

// CertificatesOf decrypts a SUCCESS CertRep with the requester's key and
// returns the certificates it carries, the issued one first.
func (m *Message) CertificatesOf(key crypto.Decrypter, self *x509.Certificate) ([][]byte, error) {
	env, err := m.OpenEnvelope()
	if err != nil {
		return nil, err
	}
	inner, err := env.Decrypt(key, cms.FromX509(self))
	if err != nil {
		return nil, err
	}
	return DegenerateCertificates(inner)
}

// DegenerateCertificates returns the certificates of a certs-only SignedData.
func DegenerateCertificates(der []byte) ([][]byte, error) {
	sd, err := cms.ParseSignedData(der)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(sd.Certificates))
	for i, c := range sd.Certificates {
		out[i] = c.Raw
	}
	return out, nil
}
