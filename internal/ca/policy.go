package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"time"
)

// Shape limits on requests, whatever the profile's policy.
const (
	MaxCSRExtensions = 32
	MaxSubjectBytes  = 1024
)

// Errors a policy decision wraps, so callers can map them to protocol
// failure codes with errors.Is.
var (
	// ErrPolicy: the request is well formed but the policy refuses it.
	ErrPolicy = errors.New("refused by policy")
	// ErrAlgorithm: an algorithm the policy does not accept.
	ErrAlgorithm = errors.New("algorithm not allowed")
	// ErrCSRSignature: the CSR's self-signature does not verify.
	ErrCSRSignature = errors.New("CSR signature does not verify")
)

// Policy says what an issued certificate may contain. The CSR never decides
// these alone: it is validated, a template is built from policy, and the
// result is checked again before signing (in that order).
type Policy struct {
	// Validity of issued certificates; capped so no certificate outlives its CA.
	Validity time.Duration
	// Backdate moves notBefore back to tolerate device clock skew.
	Backdate time.Duration
	// MinRSABits is the smallest RSA modulus accepted.
	MinRSABits int
	// AllowRSA and Curves say which key types are accepted.
	AllowRSA bool
	Curves   []elliptic.Curve
	// ExtKeyUsage and UnknownExtKeyUsage (custom OIDs) of issued certificates.
	ExtKeyUsage        []x509.ExtKeyUsage
	UnknownExtKeyUsage []asn1.ObjectIdentifier
	// KeyUsage applies when ExplicitKeyUsage is set; otherwise
	// digitalSignature, plus keyEncipherment for RSA keys.
	KeyUsage         x509.KeyUsage
	ExplicitKeyUsage bool
	// MaxSANs bounds the subjectAltNames a CSR may carry.
	MaxSANs int

	// Subject: a template, or the CSR's attributes whose OIDs AllowedAttrs
	// lists (nil: all pass).
	SubjectTemplate []attrTemplate
	AllowedAttrs    map[string]bool
	RequireCN       bool
	MaxAttrLength   int

	// FilterSANs applies the patterns below; a SAN type without patterns
	// does not pass. Unset, every SAN passes (plus ExtraSANs).
	FilterSANs                              bool
	DNSPatterns, EmailPatterns, URIPatterns []*regexp.Regexp
	IPNets                                  []*net.IPNet
	ExtraSANs                               []sanTemplate
	// AllowWildcard accepts DNS SANs with a leading "*." label; every SAN
	// must be a well-formed name whatever the patterns (sannames.go).
	AllowWildcard bool

	// IssuingCertificateURL, OCSPServer and CRLDistributionPoints go into
	// every certificate when set (AIA caIssuers, AIA OCSP, CDP).
	IssuingCertificateURL []string
	OCSPServer            []string
	CRLDistributionPoints []string
}

// DefaultPolicy is the policy of an empty PolicyConfig (the zero-config
// profile): device client certificates for RSA >= 2048 or ECDSA
// P-256/P-384 keys, one year, the CSR's common subject attributes (a CN
// required) and every SAN passed through.
func DefaultPolicy() Policy {
	p, err := PolicyConfig{}.Compile()
	if err != nil {
		panic(fmt.Sprintf("ca: the empty policy config does not compile: %v", err)) // a programming error, caught by any test
	}
	return *p
}

// basePolicy holds the defaults Compile starts from.
func basePolicy() Policy {
	return Policy{
		Validity:      365 * 24 * time.Hour,
		Backdate:      5 * time.Minute,
		MinRSABits:    2048,
		AllowRSA:      true,
		Curves:        []elliptic.Curve{elliptic.P256(), elliptic.P384()},
		ExtKeyUsage:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		MaxSANs:       32,
		MaxAttrLength: 64,
	}
}

// CheckRequest is the first stage: the CSR's signature and key.
func (p *Policy) CheckRequest(csr *x509.CertificateRequest) error { return p.checkRequest(csr, true) }

func (p *Policy) checkRequest(csr *x509.CertificateRequest, verify bool) error {
	switch csr.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.UnknownSignatureAlgorithm:
		return fmt.Errorf("%w: CSR signature algorithm %v", ErrAlgorithm, csr.SignatureAlgorithm)
	}
	switch k := csr.PublicKey.(type) {
	case *rsa.PublicKey:
		if !p.AllowRSA {
			return fmt.Errorf("%w: RSA keys are not accepted", ErrPolicy)
		}
		if k.N.BitLen() < p.MinRSABits {
			return fmt.Errorf("%w: RSA key of %d bits, minimum is %d", ErrPolicy, k.N.BitLen(), p.MinRSABits)
		}
	case *ecdsa.PublicKey:
		ok := false
		for _, c := range p.Curves {
			ok = ok || c == k.Curve
		}
		if !ok {
			return fmt.Errorf("%w: ECDSA curve %s is not accepted", ErrPolicy, k.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("%w: key type %T is not accepted", ErrPolicy, csr.PublicKey)
	}
	if len(csr.Extensions) > MaxCSRExtensions {
		return fmt.Errorf("%w: %d CSR extensions, at most %d", ErrPolicy, len(csr.Extensions), MaxCSRExtensions)
	}
	if len(csr.RawSubject) > MaxSubjectBytes {
		return fmt.Errorf("%w: a subject of %d bytes, at most %d", ErrPolicy, len(csr.RawSubject), MaxSubjectBytes)
	}
	if n := len(csr.DNSNames) + len(csr.IPAddresses) + len(csr.EmailAddresses) + len(csr.URIs); n > p.MaxSANs {
		return fmt.Errorf("%w: %d subjectAltNames, at most %d", ErrPolicy, n, p.MaxSANs)
	}
	// The key is judged before the signature: a key policy refuses anyway
	// (a 512-bit RSA key, say) gets that reason rather than a crypto error.
	if !verify {
		return nil
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("%w: %v", ErrCSRSignature, err)
	}
	return nil
}

// Template is the second stage: the certificate to issue, built from
// policy and the parts of the CSR policy lets through.
func (p *Policy) Template(csr *x509.CertificateRequest, issuer *x509.Certificate, profile string, now time.Time) (*x509.Certificate, error) {
	ski, err := SubjectKeyID(csr.PublicKey)
	if err != nil {
		return nil, err
	}
	_, isRSA := csr.PublicKey.(*rsa.PublicKey)
	ku := x509.KeyUsageDigitalSignature
	if isRSA {
		ku |= x509.KeyUsageKeyEncipherment
	}
	if p.ExplicitKeyUsage {
		ku = p.KeyUsage
		if !isRSA {
			ku &^= x509.KeyUsageKeyEncipherment // an EC key cannot encipher
		}
	}
	notAfter := now.Add(p.Validity)
	if notAfter.After(issuer.NotAfter) {
		notAfter = issuer.NotAfter
	}
	subject, err := p.subject(csr, profile)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               subject,
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
		EmailAddresses:        csr.EmailAddresses,
		URIs:                  csr.URIs,
		NotBefore:             now.Add(-p.Backdate).UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              ku,
		ExtKeyUsage:           p.ExtKeyUsage,
		UnknownExtKeyUsage:    p.UnknownExtKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          ski,
		IssuingCertificateURL: p.IssuingCertificateURL,
		OCSPServer:            p.OCSPServer,
		CRLDistributionPoints: p.CRLDistributionPoints,
	}
	if err := p.filterSANs(tmpl, csr, profile); err != nil {
		return nil, err
	}
	return tmpl, nil
}

// filterSANs keeps the CSR's SANs the policy allows and adds the
// policy's extra SANs.
func (p *Policy) filterSANs(t *x509.Certificate, csr *x509.CertificateRequest, profile string) error {
	// Form first, patterns second: a malformed name is refused, not
	// silently dropped or matched.
	if err := p.checkSANForms(csr.DNSNames, csr.EmailAddresses, csr.URIs); err != nil {
		return err
	}
	if p.FilterSANs {
		t.DNSNames = keepMatching(csr.DNSNames, p.DNSPatterns)
		t.EmailAddresses = keepMatching(csr.EmailAddresses, p.EmailPatterns)
		t.URIs = nil
		for _, u := range csr.URIs {
			if matchAny(u.String(), p.URIPatterns) {
				t.URIs = append(t.URIs, u)
			}
		}
		t.IPAddresses = nil
		for _, ip := range csr.IPAddresses {
			for _, n := range p.IPNets {
				if n.Contains(ip) {
					t.IPAddresses = append(t.IPAddresses, ip)
					break
				}
			}
		}
	}
	for _, e := range p.ExtraSANs {
		v, err := render(e.tmpl, TemplateData{CSR: csr, Profile: profile})
		if err != nil {
			return err
		}
		if v == "" {
			continue
		}
		switch e.typ {
		case "DNS":
			t.DNSNames = append(t.DNSNames, v)
		case "email":
			t.EmailAddresses = append(t.EmailAddresses, v)
		case "IP":
			ip := net.ParseIP(v)
			if ip == nil {
				return fmt.Errorf("%w: extra SAN %q is not an IP address", ErrPolicy, v)
			}
			t.IPAddresses = append(t.IPAddresses, ip)
		case "URI":
			u, err := url.Parse(v)
			if err != nil || u.Scheme == "" {
				return fmt.Errorf("%w: extra SAN %q is not an absolute URI", ErrPolicy, v)
			}
			t.URIs = append(t.URIs, u)
		}
	}
	// Extra SANs are rendered from CSR fields: the same rules hold.
	return p.checkSANForms(t.DNSNames, t.EmailAddresses, t.URIs)
}

func keepMatching(values []string, patterns []*regexp.Regexp) []string {
	var out []string
	for _, v := range values {
		if matchAny(v, patterns) {
			out = append(out, v)
		}
	}
	return out
}

func matchAny(v string, patterns []*regexp.Regexp) bool {
	for _, re := range patterns {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// CheckResult is the last stage, on the finished template.
func (p *Policy) CheckResult(tmpl *x509.Certificate) error {
	if tmpl.IsCA {
		return fmt.Errorf("%w: would issue a CA certificate", ErrPolicy)
	}
	if !tmpl.NotAfter.After(tmpl.NotBefore) {
		return fmt.Errorf("%w: the CA expires before the certificate would start", ErrPolicy)
	}
	if len(tmpl.Subject.ToRDNSequence()) == 0 && len(tmpl.DNSNames)+len(tmpl.IPAddresses)+len(tmpl.EmailAddresses)+len(tmpl.URIs) == 0 {
		return fmt.Errorf("%w: neither a subject nor a subjectAltName", ErrPolicy)
	}
	return nil
}

// Evaluate runs the policy pipeline on csr in order (validate the request,
// build the template, validate the result) and returns the template to sign.
func (p *Policy) Evaluate(csr *x509.CertificateRequest, issuer *x509.Certificate, profile string, now time.Time) (*x509.Certificate, error) {
	return p.evaluate(csr, issuer, profile, now, true)
}

// EvaluateVerified is Evaluate for a stored request whose signature was
// verified when it arrived (and no longer verifies: its challengePassword
// was removed before storing it).
func (p *Policy) EvaluateVerified(csr *x509.CertificateRequest, issuer *x509.Certificate, profile string, now time.Time) (*x509.Certificate, error) {
	return p.evaluate(csr, issuer, profile, now, false)
}

func (p *Policy) evaluate(csr *x509.CertificateRequest, issuer *x509.Certificate, profile string, now time.Time, verify bool) (*x509.Certificate, error) {
	if err := p.checkRequest(csr, verify); err != nil {
		return nil, err
	}
	tmpl, err := p.Template(csr, issuer, profile, now)
	if err != nil {
		return nil, err
	}
	if err := p.CheckResult(tmpl); err != nil {
		return nil, err
	}
	return tmpl, nil
}

// Sign issues tmpl (from Policy.Evaluate) for pub with a fresh random
// serial and returns it parsed; Issue returns what enrollment stores
// without parsing.
func (c *CA) Sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	is, err := c.Issue(tmpl, pub)
	if err != nil {
		return nil, err
	}
	cert, err := is.Certificate()
	if err != nil {
		return nil, fmt.Errorf("ca: parsing issued certificate: %w", err)
	}
	return cert, nil
}

// PublicKeyAlgorithm names a public key for logs.
func PublicKeyAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA-" + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", pub)
}

// SANs lists a certificate's subjectAltNames as TYPE:value strings.
func SANs(c *x509.Certificate) []string {
	var out []string
	for _, d := range c.DNSNames {
		out = append(out, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		out = append(out, "IP:"+ip.String())
	}
	for _, e := range c.EmailAddresses {
		out = append(out, "email:"+e)
	}
	for _, u := range c.URIs {
		out = append(out, "URI:"+u.String())
	}
	return out
}

// CSRSANs lists a request's subjectAltNames the same way.
func CSRSANs(r *x509.CertificateRequest) []string {
	return SANs(&x509.Certificate{DNSNames: r.DNSNames, IPAddresses: r.IPAddresses, EmailAddresses: r.EmailAddresses, URIs: r.URIs})
}
