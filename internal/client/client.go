// Package client is a SCEP client (RFC 8894 §4): GetCACaps, GetCACert and
// enrollment by GET or POST with any content cipher and digest. It backs
// `scepd client`, the end-to-end tests and, later, `scepd bench`.
package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
)

// Client talks to one SCEP URL.
type Client struct {
	URL  string
	HTTP *http.Client
	// ReplySigners are certificates besides the recipient that may sign
	// the server's replies without carrying themselves in them: the RA
	// signing certificates of GetCACert (an NDES has one for signing and
	// one for encryption, and its CertRep may leave both out).
	ReplySigners []*x509.Certificate
}

// New returns a client for a SCEP URL such as http://host/scep/default/pkiclient.exe.
func New(u string) *Client {
	return &Client{URL: u, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

const maxResponse = 4 << 20

func (c *Client) do(ctx context.Context, method, op string, query url.Values, body []byte) ([]byte, string, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, "", fmt.Errorf("client: URL: %w", err)
	}
	if query == nil {
		query = url.Values{}
	}
	query.Set("operation", op)
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-pki-message")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("client: %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, "", fmt.Errorf("client: %s: reading response: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("client: %s: HTTP %d: %s", op, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, resp.Header.Get("Content-Type"), nil
}

// GetCACaps returns the server's capability keywords.
func (c *Client) GetCACaps(ctx context.Context) ([]string, error) {
	b, _, err := c.do(ctx, http.MethodGet, "GetCACaps", nil, nil)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// GetCACert returns the CA/RA certificates.
func (c *Client) GetCACert(ctx context.Context) ([]*x509.Certificate, error) {
	b, ct, err := c.do(ctx, http.MethodGet, "GetCACert", url.Values{"message": {"scepd-client"}}, nil)
	if err != nil {
		return nil, err
	}
	ders := [][]byte{b}
	if ct != "application/x-x509-ca-cert" {
		if ders, err = scep.DegenerateCertificates(b); err != nil {
			return nil, fmt.Errorf("client: GetCACert: %w", err)
		}
	}
	certs := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("client: GetCACert: %w", err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// Recipient picks the certificate to encrypt requests to: an RSA
// certificate with keyEncipherment (or no keyUsage at all) that is not a
// CA (a separate RA), else such an RSA CA (CA mode) (RFC 8894 §2.1.2),
// else any RSA certificate.
func Recipient(certs []*x509.Certificate) (*x509.Certificate, error) {
	var ca, anyRSA *x509.Certificate
	for _, c := range certs {
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			continue
		}
		if anyRSA == nil {
			anyRSA = c
		}
		if c.KeyUsage&x509.KeyUsageKeyEncipherment == 0 && c.KeyUsage != 0 {
			continue
		}
		if !c.IsCA {
			return c, nil
		}
		if ca == nil {
			ca = c
		}
	}
	switch {
	case ca != nil:
		return ca, nil
	case anyRSA != nil:
		// Some servers' CAs answer SCEP without declaring keyEncipherment.
		return anyRSA, nil
	}
	return nil, errors.New("client: GetCACert has no RSA certificate to encrypt to")
}

// Enrollment describes one PKCSReq.
type Enrollment struct {
	Key       *rsa.PrivateKey
	Subject   pkix.Name
	DNSNames  []string
	IPs       []net.IP
	Emails    []string
	URIs      []*url.URL
	Challenge string
	Cipher    cms.Cipher
	Digest    crypto.Hash
	// GET sends the message base64 in the query string instead of POSTing it.
	GET bool
	// TransactionID defaults to the hex SHA-256 of the public key.
	TransactionID string
	// Recipient is the RA certificate; nil means fetch and choose one.
	Recipient *x509.Certificate
	// SignWith and SignKey renew: the request is signed with an issued
	// certificate instead of a self-signed one, as a RenewalReq (Renewal
	// set) or as a PKCSReq (what sscep sends).
	SignWith *x509.Certificate
	SignKey  *rsa.PrivateKey
	Renewal  bool
}

// ErrPending is returned while the server holds a request for approval;
// Poll asks again.
var ErrPending = errors.New("client: the request is PENDING approval")

// Failure is a CertRep FAILURE.
type Failure struct {
	FailInfo scep.FailInfo
	Text     string
}

func (f *Failure) Error() string {
	if f.Text == "" {
		return "SCEP FAILURE " + f.FailInfo.String()
	}
	return fmt.Sprintf("SCEP FAILURE %s: %s", f.FailInfo, f.Text)
}

// Signers are the certificates of GetCACert besides the recipient that
// may sign the server's replies (see Client.ReplySigners): RA
// certificates for signing, not CAs.
func Signers(certs []*x509.Certificate, recipient *x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range certs {
		if !c.IsCA && c != recipient && (c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageDigitalSignature != 0) {
			out = append(out, c)
		}
	}
	return out
}

// Enroll runs PKCSReq and returns the issued certificates (the client's first).
func (c *Client) Enroll(ctx context.Context, e Enrollment) ([]*x509.Certificate, error) {
	if e.Recipient == nil {
		certs, err := c.GetCACert(ctx)
		if err != nil {
			return nil, err
		}
		if e.Recipient, err = Recipient(certs); err != nil {
			return nil, err
		}
		cc := *c
		cc.ReplySigners = append(slices.Clip(c.ReplySigners), Signers(certs, e.Recipient)...)
		c = &cc
	}
	csr, err := scep.NewCSR(e.Key, &x509.CertificateRequest{Subject: e.Subject, DNSNames: e.DNSNames,
		IPAddresses: e.IPs, EmailAddresses: e.Emails, URIs: e.URIs}, e.Challenge)
	if err != nil {
		return nil, fmt.Errorf("client: CSR: %w", err)
	}
	self, signKey := e.SignWith, e.SignKey
	if self == nil {
		if self, err = selfSigned(e.Key, e.Subject); err != nil {
			return nil, err
		}
		signKey = e.Key
	}
	if e.TransactionID == "" {
		pub, _ := x509.MarshalPKIXPublicKey(&e.Key.PublicKey)
		sum := crypto.SHA256.New()
		sum.Write(pub)
		e.TransactionID = strings.ToUpper(hex.EncodeToString(sum.Sum(nil)))
	}
	mt := scep.PKCSReq
	if e.Renewal {
		mt = scep.RenewalReq
	}
	return c.operation(ctx, operation{
		Type: mt, TransactionID: e.TransactionID, Body: csr, Recipient: e.Recipient, Cipher: e.Cipher, Digest: e.Digest,
		GET: e.GET, Self: self, SignKey: signKey, DecryptKey: signKey,
	})
}

// operation is one PKIOperation exchange.
type operation struct {
	Type          scep.MessageType
	TransactionID string
	Body          []byte
	Recipient     *x509.Certificate
	Cipher        cms.Cipher
	Digest        crypto.Hash
	GET           bool
	// Self signs the request; replies are encrypted to it.
	Self       *x509.Certificate
	SignKey    Key
	DecryptKey Key
	// AnyReplyCipher accepts a reply in another cipher than the request's.
	AnyReplyCipher bool
}

// Requester is who sends a GetCert, GetCRL or CertPoll: its certificate
// and key (an issued certificate, or the self-signed one of the request).
type Requester struct {
	Cert *x509.Certificate
	Key  Key
}

// Key is a requester's private key: it signs the request and decrypts
// the reply (an *rsa.PrivateKey, or a key held by a token or engine).
type Key interface {
	crypto.Signer
	crypto.Decrypter
}

// Poll sends CertPoll (GetCertInitial) for a pending transaction; it
// returns ErrPending while the request waits.
func (c *Client) Poll(ctx context.Context, who Requester, issuer *x509.Certificate, subject pkix.Name, transactionID string, recipient *x509.Certificate, ciph cms.Cipher) ([]*x509.Certificate, error) {
	return c.poll(ctx, who, issuer, subject, transactionID, recipient, ciph, false)
}

// PollAnyCipher is Poll accepting a reply in any cipher (see
// Submission.AnyReplyCipher).
func (c *Client) PollAnyCipher(ctx context.Context, who Requester, issuer *x509.Certificate, subject pkix.Name, transactionID string, recipient *x509.Certificate, ciph cms.Cipher) ([]*x509.Certificate, error) {
	return c.poll(ctx, who, issuer, subject, transactionID, recipient, ciph, true)
}

func (c *Client) poll(ctx context.Context, who Requester, issuer *x509.Certificate, subject pkix.Name, transactionID string, recipient *x509.Certificate, ciph cms.Cipher, anyCipher bool) ([]*x509.Certificate, error) {
	subj, err := asn1Marshal(subject.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	body := append([]byte{0x30}, derLen(len(issuer.RawSubject)+len(subj))...)
	body = append(append(body, issuer.RawSubject...), subj...)
	return c.operation(ctx, operation{Type: scep.CertPoll, TransactionID: transactionID, Body: body, Recipient: recipient, Cipher: ciph,
		Digest: crypto.SHA256, Self: who.Cert, SignKey: who.Key, DecryptKey: who.Key, AnyReplyCipher: anyCipher})
}

// GetCert fetches a certificate by issuer and serial (RFC 8894 §3.3.4).
func (c *Client) GetCert(ctx context.Context, who Requester, issuer *x509.Certificate, serial *big.Int, recipient *x509.Certificate) ([]*x509.Certificate, error) {
	body, err := issuerAndSerial(issuer, serial)
	if err != nil {
		return nil, err
	}
	return c.operation(ctx, operation{Type: scep.GetCert, TransactionID: "getcert-" + serial.Text(16), Body: body, Recipient: recipient,
		Cipher: cms.AES128, Digest: crypto.SHA256, Self: who.Cert, SignKey: who.Key, DecryptKey: who.Key})
}

// GetCRL fetches the CRL of the CA that issued cert (RFC 8894 §3.3.5).
func (c *Client) GetCRL(ctx context.Context, who Requester, cert *x509.Certificate, recipient *x509.Certificate) (*x509.RevocationList, error) {
	body, err := issuerAndSerial(&x509.Certificate{RawSubject: cert.RawIssuer}, cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	rep, err := c.exchange(ctx, operation{Type: scep.GetCRL, TransactionID: "getcrl-" + cert.SerialNumber.Text(16), Body: body, Recipient: recipient,
		Cipher: cms.AES128, Digest: crypto.SHA256, Self: who.Cert, SignKey: who.Key, DecryptKey: who.Key})
	if err != nil {
		return nil, err
	}
	env, err := rep.OpenEnvelope()
	if err != nil {
		return nil, err
	}
	inner, err := env.Decrypt(who.Key, cms.FromX509(who.Cert))
	if err != nil {
		return nil, fmt.Errorf("client: decrypting CertRep: %w", err)
	}
	sd, err := cms.ParseSignedData(inner)
	if err != nil || len(sd.CRLs) != 1 {
		return nil, fmt.Errorf("client: GetCRL reply carries no CRL (%v)", err)
	}
	return x509.ParseRevocationList(sd.CRLs[0])
}

func issuerAndSerial(issuer *x509.Certificate, serial *big.Int) ([]byte, error) {
	s, err := asn1Marshal(serial)
	if err != nil {
		return nil, err
	}
	body := append([]byte{0x30}, derLen(len(issuer.RawSubject)+len(s))...)
	return append(append(body, issuer.RawSubject...), s...), nil
}

func asn1Marshal(v any) ([]byte, error) { return asn1.Marshal(v) }

func derLen(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x100:
		return []byte{0x81, byte(n)}
	default:
		return []byte{0x82, byte(n >> 8), byte(n)}
	}
}

func (c *Client) operation(ctx context.Context, op operation) ([]*x509.Certificate, error) {
	rep, err := c.exchange(ctx, op)
	if err != nil {
		return nil, err
	}
	env, err := rep.OpenEnvelope()
	if err != nil {
		return nil, err
	}
	if env.Cipher != op.Cipher && !op.AnyReplyCipher {
		return nil, fmt.Errorf("client: reply encrypted with %v, request used %v", env.Cipher, op.Cipher)
	}
	ders, err := rep.CertificatesOf(op.DecryptKey, op.Self)
	if err != nil {
		return nil, fmt.Errorf("client: decrypting CertRep: %w", err)
	}
	if len(ders) == 0 {
		return nil, errors.New("client: CertRep SUCCESS without certificates")
	}
	out := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("client: issued certificate: %w", err)
		}
		out = append(out, cert)
	}
	return out, nil
}

// exchange sends one PKIOperation and returns the verified SUCCESS reply.
func (c *Client) exchange(ctx context.Context, op operation) (*scep.Message, error) {
	b := scep.Builder{Cert: op.Self, Key: op.SignKey}
	msg, nonce, err := b.NewRequest(scep.Request{
		Type: op.Type, TransactionID: op.TransactionID, Body: op.Body,
		Recipient: op.Recipient, Cipher: op.Cipher, Digest: op.Digest,
	})
	if err != nil {
		return nil, fmt.Errorf("client: building %v: %w", op.Type, err)
	}
	var raw []byte
	if op.GET {
		raw, _, err = c.do(ctx, http.MethodGet, "PKIOperation", url.Values{"message": {base64.StdEncoding.EncodeToString(msg)}}, nil)
	} else {
		raw, _, err = c.do(ctx, http.MethodPost, "PKIOperation", nil, msg)
	}
	if err != nil {
		return nil, err
	}
	known := []*cms.Certificate{cms.FromX509(op.Recipient)}
	for _, c := range c.ReplySigners {
		known = append(known, cms.FromX509(c))
	}
	rep, err := scep.Parse(raw, known...)
	if err != nil {
		return nil, fmt.Errorf("client: CertRep: %w", err)
	}
	switch {
	case rep.Type != scep.CertRep:
		return nil, fmt.Errorf("client: reply is %v, not CertRep", rep.Type)
	case rep.TransactionID != op.TransactionID:
		return nil, fmt.Errorf("client: reply transactionID %q, want %q", rep.TransactionID, op.TransactionID)
	case !bytes.Equal(rep.RecipientNonce, nonce):
		return nil, errors.New("client: reply recipientNonce does not match our senderNonce")
	case rep.Status == scep.StatusFailure:
		return nil, &Failure{FailInfo: rep.FailInfo, Text: rep.FailInfoText}
	case rep.Status == scep.StatusPending:
		return nil, ErrPending
	case rep.Status != scep.StatusSuccess:
		return nil, fmt.Errorf("client: unknown pkiStatus %q", rep.Status)
	}
	return rep, nil
}

// SelfSigned makes the transient certificate that signs a first request;
// exported for callers that poll later with the same identity.
func SelfSigned(key *rsa.PrivateKey, subject pkix.Name) (*x509.Certificate, error) {
	return selfSigned(key, subject)
}

// selfSigned makes the transient certificate that signs a first request (RFC 8894 §2.3).
func selfSigned(key *rsa.PrivateKey, subject pkix.Name) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("client: self-signed certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// Submission is a PKCSReq of a CSR made elsewhere (an RA forwarding a
// device's request): the client signs the message with its own
// certificate and key, not the CSR's.
type Submission struct {
	CSR           []byte
	TransactionID string
	Recipient     *x509.Certificate
	Cipher        cms.Cipher
	Digest        crypto.Hash
	GET           bool
	// Signer signs the message; the reply is encrypted to it.
	Signer Requester
	// AnyReplyCipher accepts a reply encrypted otherwise than the request
	// (micromdm's scepserver answers in DES whatever it was sent): the
	// reply carries only certificates, which are public.
	AnyReplyCipher bool
}

// Submit sends a Submission and returns the certificates of the reply
// (ErrPending while the server holds it: Poll with the same Signer).
func (c *Client) Submit(ctx context.Context, s Submission) ([]*x509.Certificate, error) {
	if s.Recipient == nil || s.Signer.Cert == nil || s.Signer.Key == nil {
		return nil, errors.New("client: a submission needs a recipient and a signer")
	}
	return c.operation(ctx, operation{
		Type: scep.PKCSReq, TransactionID: s.TransactionID, Body: s.CSR, Recipient: s.Recipient, Cipher: s.Cipher, Digest: s.Digest,
		GET: s.GET, Self: s.Signer.Cert, SignKey: s.Signer.Key, DecryptKey: s.Signer.Key, AnyReplyCipher: s.AnyReplyCipher,
	})
}
