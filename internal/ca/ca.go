// Package ca issues certificates: key generation for CA and RA identities,
// the certificate policy pipeline, serials and signing.
package ca

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/scepd/scepd/internal/keys"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// KeyType names a key algorithm and size.
type KeyType string

// Key types for CA and RA keys.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
)

// DefaultKeyType is the key of a CA created without a key type (zero-config
// start, config file, CLI): every SCEP client handles an RSA chain, while
// some (micromdm's scepclient, older network gear) fail on an ECDSA one.
const DefaultKeyType = RSA2048

// KeyTypes lists the accepted key types, for flag help and validation.
func KeyTypes() []KeyType { return []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096} }

// Algorithm is what a key of type t is made of.
func (t KeyType) Algorithm() (keys.Algorithm, error) {
	switch t {
	case ECDSAP256:
		return keys.Algorithm{Curve: elliptic.P256()}, nil
	case ECDSAP384:
		return keys.Algorithm{Curve: elliptic.P384()}, nil
	case RSA2048:
		return keys.Algorithm{RSABits: 2048}, nil
	case RSA3072:
		return keys.Algorithm{RSABits: 3072}, nil
	case RSA4096:
		return keys.Algorithm{RSABits: 4096}, nil
	}
	return keys.Algorithm{}, fmt.Errorf("ca: unknown key type %q (want one of %v)", t, KeyTypes())
}

// GenerateKey makes a new private key of type t in memory.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	alg, err := t.Algorithm()
	if err != nil {
		return nil, err
	}
	return alg.Generate()
}

// CA is an issuer: its certificate, the chain above it (root last; empty
// for a root) and its signing key.
type CA struct {
	Cert   *x509.Certificate
	Chain  []*x509.Certificate
	Signer crypto.Signer
	// Rand is the randomness for serials and signatures; nil means crypto/rand.
	Rand io.Reader
}

func (c *CA) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

// ChainDER returns the CA certificate followed by its chain, as DER.
func (c *CA) ChainDER() [][]byte {
	out := [][]byte{c.Cert.Raw}
	for _, x := range c.Chain {
		out = append(out, x.Raw)
	}
	return out
}

// NewSerial returns a positive 16-octet serial: the current time in
// milliseconds since 1970 (6 octets) followed by 80 random bits, above the
// 64 bits of entropy CA/Browser Forum rules ask for and within RFC 5280's
// 20 octets. Random bits need no coordination between replicas; the time
// in front makes serials grow with issuance, so a new certificate's serial
// lands beside the previous ones in the store's serial index (at its end
// in a database of such serials only) instead of in a random page of it:
// one page written per commit for a group of enrollments rather than one
// per enrollment, and no random page rewritten at each checkpoint of a
// large database.
func NewSerial(r io.Reader) (*big.Int, error) {
	return serialAt(r, time.Now())
}

func serialAt(r io.Reader, now time.Time) (*big.Int, error) {
	ms := now.UnixMilli()
	if ms < 0 || ms >= 1<<47 {
		return nil, fmt.Errorf("ca: serial: clock out of range: %v", now)
	}
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[:8], uint64(ms)<<16)
	if _, err := io.ReadFull(r, b[6:]); err != nil {
		return nil, fmt.Errorf("ca: serial: %w", err)
	}
	return new(big.Int).SetBytes(b), nil
}

// SubjectKeyID computes a key identifier per RFC 5280 §4.2.1.2 method 1:
// the SHA-1 of the subjectPublicKey bits.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal public key: %w", err)
	}
	// SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier,
	// subjectPublicKey BIT STRING }, read without reflection.
	in := cryptobyte.String(der)
	var spki cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.SkipASN1(cbasn1.SEQUENCE) || !spki.ReadASN1BitString(&bits) {
		return nil, fmt.Errorf("ca: parse public key: malformed SubjectPublicKeyInfo")
	}
	sum := sha1.Sum(bits.Bytes)
	return sum[:], nil
}

// CAOption adjusts a CA certificate being created.
type CAOption func(*x509.Certificate)

// WithKeyEncipherment adds keyEncipherment, which an RSA CA needs to answer
// SCEP itself ("CA mode", RFC 8894 §2.1.2: clients encrypt to it).
func WithKeyEncipherment() CAOption {
	return func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageKeyEncipherment }
}

// NewRoot makes a self-signed root CA certificate for key.
func NewRoot(key crypto.Signer, subject pkix.Name, validity time.Duration, now time.Time, opts ...CAOption) (*CA, error) {
	serial, err := NewSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-5 * time.Minute).UTC(),
		NotAfter:              now.Add(validity).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}
	for _, o := range opts {
		o(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: self-signing root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parsing new root: %w", err)
	}
	return &CA{Cert: cert, Signer: key}, nil
}

// IssueRA issues the certificate of an RA identity: the certificate SCEP
// clients encrypt to and that signs replies, so it needs digitalSignature
// and keyEncipherment (RFC 8894 §2.1.2). Its key must be RSA.
func (c *CA) IssueRA(pub crypto.PublicKey, subject pkix.Name, validity time.Duration, now time.Time) (*x509.Certificate, error) {
	if _, ok := pub.(*rsa.PublicKey); !ok {
		return nil, errors.New("ca: an RA key must be RSA: SCEP clients encrypt to it with RSA key transport")
	}
	tmpl, err := c.childTemplate(pub, subject, validity, now)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	return c.sign(tmpl, pub)
}

// childTemplate starts the certificate of a CA-level identity under c
// (an RA or an intermediate): a fresh serial (NewSerial), SKI, five minutes of
// backdating, validity capped at c's notAfter. Callers set the key usage.
func (c *CA) childTemplate(pub crypto.PublicKey, subject pkix.Name, validity time.Duration, now time.Time) (*x509.Certificate, error) {
	serial, err := NewSerial(c.rand())
	if err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(c.Cert.NotAfter) {
		notAfter = c.Cert.NotAfter
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-5 * time.Minute).UTC(),
		NotAfter:              notAfter.UTC(),
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
	}, nil
}

func (c *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(c.rand(), tmpl, c.Cert, pub, c.Signer)
	if err != nil {
		return nil, fmt.Errorf("ca: signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parsing issued certificate: %w", err)
	}
	return cert, nil
}
