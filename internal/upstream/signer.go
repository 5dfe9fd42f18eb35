package upstream

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/keys"
)

// scepd signs what it sends an upstream with one of two identities:
//
//   - the profile's requester certificate (RequesterCertificate): a
//     self-signed certificate over the profile's persisted RA key, as any
//     SCEP client's first request. It is the same bytes on every replica
//     and after every restart, so a CertPoll is signed as its PKCSReq was.
//   - an RA credential the upstream trusts (LoadCredential, config
//     upstream.scep.ra): EJBCA's RA mode, or a scepd upstream whose
//     profile has challenge mode ra.

// RequesterCertificate is the self-signed certificate profile's requests
// upstream are signed with when no RA credential is configured: over key
// (the profile's RSA RA key, whose certificate is ra), with fixed fields
// only: subject "CN=<profile> upstream requester,O=scepd", a serial
// derived from the public key, ra's validity. RSA PKCS#1 v1.5 signatures
// are deterministic, so every build from the same key gives the same DER.
func RequesterCertificate(profile string, key crypto.Signer, ra *x509.Certificate) (*x509.Certificate, error) {
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("upstream: the requester key of profile %q is %T; SCEP replies are encrypted to it, so it must be RSA", profile, key.Public())
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("upstream: requester key: %w", err)
	}
	sum := sha256.Sum256(spki)
	serial := new(big.Int).SetBytes(sum[:16])
	serial.SetBit(serial, 127, 0) // positive in 16 bytes of DER
	if serial.Sign() == 0 {
		serial.SetInt64(1)
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: profile + " upstream requester", Organization: []string{"scepd"}},
		NotBefore:          ra.NotBefore,
		NotAfter:           ra.NotAfter,
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	// rand is not read by a PKCS#1 v1.5 signature.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("upstream: requester certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// LoadCredential reads an RA credential: certFile, a PEM certificate the
// upstream trusts (the first one in the file is used), and keyFile, its
// PEM private key, mode 0600 (encrypted keys are read with ks's
// passphrase, as scepd's own key files). It refuses a key that is not
// RSA (replies are encrypted to it) or not the certificate's, and a
// certificate that is not valid at now or whose keyUsage lacks
// digitalSignature. Every error names the file.
func LoadCredential(certFile, keyFile string, ks keys.Source, now time.Time) (client.Requester, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return client.Requester{}, fmt.Errorf("upstream.scep.ra.cert: %w", err)
	}
	certs, err := ca.ParseCertificatesPEM(b)
	if err != nil {
		return client.Requester{}, fmt.Errorf("upstream.scep.ra.cert %s: %w", certFile, err)
	}
	if len(certs) == 0 {
		return client.Requester{}, fmt.Errorf("upstream.scep.ra.cert %s: no certificate", certFile)
	}
	cert := certs[0]
	kb, err := keys.ReadPrivateFile(keyFile)
	if err != nil {
		return client.Requester{}, fmt.Errorf("upstream.scep.ra.key: %w", err)
	}
	signer, err := ks.Parse(kb)
	if err != nil {
		return client.Requester{}, fmt.Errorf("upstream.scep.ra.key %s: %w", keyFile, err)
	}
	key, ok := signer.(*rsa.PrivateKey)
	if !ok {
		return client.Requester{}, fmt.Errorf("upstream.scep.ra.key %s: a %T key; the upstream encrypts its replies to the RA certificate, so it must be RSA", keyFile, signer)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return client.Requester{}, fmt.Errorf("upstream.scep.ra.key %s is not the key of the certificate %s (%s)", keyFile, certFile, cert.Subject)
	}
	if err := CheckCredential(cert, now); err != nil {
		return client.Requester{}, fmt.Errorf("upstream.scep.ra.cert %s: %w", certFile, err)
	}
	return client.Requester{Cert: cert, Key: key}, nil
}

// ErrCredentialNotValid is an RA certificate outside its validity: a
// matter of time, not of configuration (see LoadCredential).
var ErrCredentialNotValid = errors.New("the RA certificate is not valid now")

// CheckCredential checks an RA certificate for signing SCEP requests at
// now: valid (else ErrCredentialNotValid), with digitalSignature in its
// keyUsage when it has one.
func CheckCredential(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("%w: %s expired on %s", ErrCredentialNotValid, cert.Subject, cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("%w: %s is not valid before %s", ErrCredentialNotValid, cert.Subject, cert.NotBefore.UTC().Format(time.RFC3339))
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return errors.New(cert.Subject.String() + " has no digitalSignature in its keyUsage: it cannot sign SCEP requests")
	}
	return nil
}
