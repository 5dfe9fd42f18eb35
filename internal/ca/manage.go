package ca

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// NewIntermediate issues an intermediate CA certificate for key under c.
// Its pathLen is 0: it issues device certificates, not further CAs.
func (c *CA) NewIntermediate(key crypto.Signer, subject pkix.Name, validity time.Duration, now time.Time, opts ...CAOption) (*CA, error) {
	tmpl, err := c.childTemplate(key.Public(), subject, validity, now)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.IsCA, tmpl.MaxPathLenZero = true, true
	for _, o := range opts {
		o(tmpl)
	}
	cert, err := c.sign(tmpl, key.Public())
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Chain: append([]*x509.Certificate{c.Cert}, c.Chain...), Signer: key}, nil
}

// Import builds a CA from an operator's certificate chain (the CA first,
// then its issuers) and key, checking that they belong together.
func Import(chain []*x509.Certificate, key crypto.Signer) (*CA, error) {
	if len(chain) == 0 {
		return nil, errors.New("ca: import: no certificate")
	}
	c := chain[0]
	if !c.IsCA {
		return nil, fmt.Errorf("ca: import: %q is not a CA certificate: it lacks basicConstraints CA:TRUE", c.Subject)
	}
	if err := KeyUsageProblem(c); err != nil {
		return nil, fmt.Errorf("ca: import: %q: %w", c.Subject, err)
	}
	if !KeyMatches(c, key) {
		return nil, fmt.Errorf("ca: import: the key does not belong to %q", c.Subject)
	}
	for i := 1; i < len(chain); i++ {
		if err := chain[i-1].CheckSignatureFrom(chain[i]); err != nil {
			return nil, fmt.Errorf("ca: import: %q is not issued by %q: %w", chain[i-1].Subject, chain[i].Subject, err)
		}
	}
	return &CA{Cert: c, Chain: chain[1:], Signer: key}, nil
}

// KeyMatches reports whether key is the private key of c.
func KeyMatches(c *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(c.PublicKey)
}

// CAModeCapable reports whether a CA can be the RA of a profile in CA
// mode: devices encrypt their requests to it, so its key must be RSA and
// its certificate allow keyEncipherment.
func CAModeCapable(c *x509.Certificate) bool {
	_, isRSA := c.PublicKey.(*rsa.PublicKey)
	return isRSA && c.KeyUsage&x509.KeyUsageKeyEncipherment != 0
}

// KeyUsageProblem says what a CA certificate's keyUsage lacks of
// keyCertSign and cRLSign (nil when neither): relying parties reject what
// scepd would sign with it. One with no keyUsage extension has none:
// RFC 5280 wants the extension in a CA certificate (§4.2.1.3), but path
// validation restricts a key only by an extension present (§6.1.4 (n),
// §6.3.3 (f)), and relying parties (OpenSSL, CryptoAPI, NSS, crypto/x509)
// accept its certificates and CRLs; old CAs, and those OpenSSL's default
// v3_ca section makes, have none.
func KeyUsageProblem(c *x509.Certificate) error {
	if !slices.ContainsFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oidKeyUsage) }) {
		return nil
	}
	var missing, rejected []string
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		missing, rejected = append(missing, "keyCertSign"), append(rejected, "the certificates")
	}
	if c.KeyUsage&x509.KeyUsageCRLSign == 0 {
		missing, rejected = append(missing, "cRLSign"), append(rejected, "the CRLs")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("the CA certificate's key usage lacks %s: relying parties would reject %s scepd signs with it",
		strings.Join(missing, " and "), strings.Join(rejected, " and "))
}

// ParseCertificatesPEM reads every CERTIFICATE block of a PEM bundle (or a
// single DER certificate).
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		if c, err := x509.ParseCertificate(b); err == nil {
			return []*x509.Certificate{c}, nil
		}
		return nil, errors.New("ca: no certificate found (want PEM or DER)")
	}
	return out, nil
}

// ParsePKCS12 reads a PKCS#12 bundle (key, certificate and CA chain).
func ParsePKCS12(b []byte, password string) (crypto.Signer, []*x509.Certificate, error) {
	key, cert, cas, err := pkcs12.DecodeChain(b, password)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: PKCS#12: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("ca: PKCS#12 key %T cannot sign", key)
	}
	return signer, append([]*x509.Certificate{cert}, orderChain(cert, cas)...), nil
}

// orderChain puts issuers in order above leaf (PKCS#12 bags are unordered).
func orderChain(leaf *x509.Certificate, pool []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	cur := leaf
	for range pool {
		var next *x509.Certificate
		for _, c := range pool {
			if !c.Equal(cur) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil || next.Equal(cur) {
			break
		}
		out = append(out, next)
		if next.CheckSignatureFrom(next) == nil {
			break // self-signed root
		}
		cur = next
	}
	return out
}

// ParseName parses an RFC 4514-style name, "CN=Corp Root,O=Corp,C=DE",
// most significant last or first as written; "\," escapes a comma.
func ParseName(s string) (pkix.Name, error) {
	var rdns pkix.RDNSequence
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		attr, value, ok := strings.Cut(strings.TrimSpace(p), "=")
		oid, known := attrOIDs[strings.ToUpper(strings.TrimSpace(attr))]
		value = strings.TrimSpace(value)
		if !ok || !known || value == "" {
			return pkix.Name{}, fmt.Errorf("ca: %q is not ATTR=value with ATTR one of CN, O, OU, C, ST, L, SERIALNUMBER, STREET, POSTALCODE, UID, DC, E", p)
		}
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: value}})
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdns)
	n.ExtraNames = nil
	for _, rdn := range rdns {
		n.ExtraNames = append(n.ExtraNames, rdn...)
	}
	return n, nil
}

// EncodePKCS12 is used by tests and tools to build bundles.
func EncodePKCS12(key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate, password string) ([]byte, error) {
	return pkcs12.Modern.Encode(key, cert, chain, password)
}
