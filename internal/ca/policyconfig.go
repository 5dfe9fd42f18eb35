package ca

import (
	"bytes"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// PolicyConfig is the declarative, stored form of a certificate policy (the
// `policy:` block of a profile in the config file, and its JSON in the
// database). Compile turns it into a Policy once, at profile load.
type PolicyConfig struct {
	// Subject says what the issued subject is.
	Subject SubjectConfig `yaml:"subject,omitempty" json:"subject,omitempty"`
	// SANs says which subjectAltNames pass through from the CSR.
	SANs SANConfig `yaml:"sans,omitempty" json:"sans,omitempty"`
	// KeyUsage names the keyUsage bits: digitalSignature, keyEncipherment,
	// keyAgreement, dataEncipherment, contentCommitment. Default:
	// digitalSignature, plus keyEncipherment for RSA keys.
	// keyEncipherment is never set on an EC key.
	KeyUsage []string `yaml:"key_usage,omitempty" json:"key_usage,omitempty"`
	// ExtKeyUsage names EKUs (clientAuth, serverAuth, emailProtection,
	// codeSigning, ipsecIKE, timeStamping) or dotted OIDs such as an
	// IdP's device-attestation EKU, or id-kp-cmcRA (1.3.6.1.5.5.7.3.28)
	// for RA certificates (profiles with challenge mode ra trusting the CA
	// accept what they sign: setting it needs an unscoped API token). Never
	// OCSPSigning or anyExtendedKeyUsage, by name or OID. Default: clientAuth.
	ExtKeyUsage []string `yaml:"ext_key_usage,omitempty" json:"ext_key_usage,omitempty"`
	// Validity of issued certificates, e.g. "8760h". Default 8760h (one
	// year); never past the CA's own notAfter.
	Validity Duration `yaml:"validity,omitempty" json:"validity,omitempty"`
	// Backdate moves notBefore back for device clock skew. Default 5m.
	Backdate Duration `yaml:"backdate,omitempty" json:"backdate,omitempty"`
	// Keys says which CSR keys are accepted.
	Keys KeyConfig `yaml:"keys,omitempty" json:"keys,omitempty"`
}

// SubjectConfig shapes the issued subject.
type SubjectConfig struct {
	// Template, when set, replaces the CSR subject: one "ATTR=value"
	// entry per attribute, in order, each value a Go text/template over
	// {{.CSR}} (the x509.CertificateRequest) and {{.Profile}}, e.g.
	// "CN={{.CSR.Subject.CommonName}}" and "O=Example". An entry that
	// renders empty is left out.
	Template []string `yaml:"template,omitempty" json:"template,omitempty"`
	// Allowed lists the CSR subject attributes that pass through when there
	// is no template: CN, O, OU, C, ST, L, SERIALNUMBER, STREET, POSTALCODE,
	// UID, DC, E. Default: CN, O, OU, C, ST, L, SERIALNUMBER.
	Allowed []string `yaml:"allowed,omitempty" json:"allowed,omitempty"`
	// RequireCN refuses requests whose issued subject has no CN. Default true.
	RequireCN *bool `yaml:"require_cn,omitempty" json:"require_cn,omitempty"`
	// MaxLength bounds each attribute value in characters. Default 64
	// (RFC 5280's upper bound for a common name).
	MaxLength int `yaml:"max_length,omitempty" json:"max_length,omitempty"`
}

// SANConfig says which subjectAltNames pass through. With no patterns at
// all, every SAN of the CSR passes. Once any type has patterns, a type that
// is not listed does not pass, and a value matching none of its type's
// patterns is dropped (the certificate is issued without it).
type SANConfig struct {
	// DNS patterns: a "*" label matches one or more whole labels
	// ("*.devices.example.com"), a "*" within a label a run of letters,
	// digits and hyphens ("dev-*.example.com"); matching ignores case.
	// Every DNS SAN must be a valid host name, whatever the patterns.
	DNS []string `yaml:"dns,omitempty" json:"dns,omitempty"`
	// AllowWildcard accepts DNS SANs whose first label is "*" (wildcard
	// certificates); a leading "*" label of a pattern then matches it.
	// Default false: such a request is refused.
	AllowWildcard bool `yaml:"allow_wildcard,omitempty" json:"allow_wildcard,omitempty"`
	// IP lists CIDR prefixes ("10.0.0.0/8", "::/0").
	IP []string `yaml:"ip,omitempty" json:"ip,omitempty"`
	// Email patterns: "*" matches dot-atom characters before the '@' and
	// like DNS after it ("*@example.com"). Every email SAN must be a valid
	// addr-spec with a host name domain.
	Email []string `yaml:"email,omitempty" json:"email,omitempty"`
	// URI patterns, case-sensitive: "*" matches characters of one path
	// segment, never '/', '?', '#' or '@' ("urn:uuid:*"). Every URI SAN must
	// be absolute, without user information, with a valid host if any.
	URI []string `yaml:"uri,omitempty" json:"uri,omitempty"`
	// Extra SANs added to every certificate, "TYPE:template" with TYPE one
	// of DNS, IP, email, URI, e.g. "URI:urn:device:{{.CSR.Subject.SerialNumber}}".
	Extra []string `yaml:"extra,omitempty" json:"extra,omitempty"`
	// Max bounds the SANs a CSR may carry. Default 32.
	Max int `yaml:"max,omitempty" json:"max,omitempty"`
}

// KeyConfig says which keys are accepted.
type KeyConfig struct {
	// RSAMinBits is the smallest RSA key accepted; 0 means 2048. Set -1 to
	// refuse RSA keys.
	RSAMinBits int `yaml:"rsa_min_bits,omitempty" json:"rsa_min_bits,omitempty"`
	// Curves lists accepted ECDSA curves: P-256, P-384, P-521. Default
	// P-256 and P-384. ["none"] refuses ECDSA keys.
	Curves []string `yaml:"curves,omitempty" json:"curves,omitempty"`
}

// Duration is a time.Duration written as "8760h" or "90m" in YAML and JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// DefaultPolicyConfig is an empty config: every default applies.
func DefaultPolicyConfig() PolicyConfig { return PolicyConfig{} }

var attrOIDs = map[string]asn1.ObjectIdentifier{
	"CN":           {2, 5, 4, 3},
	"SERIALNUMBER": {2, 5, 4, 5},
	"C":            {2, 5, 4, 6},
	"L":            {2, 5, 4, 7},
	"ST":           {2, 5, 4, 8},
	"STREET":       {2, 5, 4, 9},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"POSTALCODE":   {2, 5, 4, 17},
	"UID":          {0, 9, 2342, 19200300, 100, 1, 1},
	"DC":           {0, 9, 2342, 19200300, 100, 1, 25},
	"E":            {1, 2, 840, 113549, 1, 9, 1},
}

var curveNames = map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}

// Compile validates the config and builds the Policy. Every error names
// the field it is about.
func (c PolicyConfig) Compile() (*Policy, error) {
	p := basePolicy()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}

	if c.Validity != 0 {
		if c.Validity < Duration(time.Hour) {
			bad("validity", "%v is shorter than an hour", time.Duration(c.Validity))
		}
		p.Validity = time.Duration(c.Validity)
	}
	if c.Backdate != 0 {
		if c.Backdate < 0 || c.Backdate > Duration(24*time.Hour) {
			bad("backdate", "%v is outside 0..24h", time.Duration(c.Backdate))
		}
		p.Backdate = time.Duration(c.Backdate)
	}
	switch k := c.Keys.RSAMinBits; {
	case k == 0:
	case k < 0:
		p.AllowRSA = false
	case k < 2048:
		bad("keys.rsa_min_bits", "%d is below 2048", k)
	default:
		p.MinRSABits = k
	}
	if len(c.Keys.Curves) > 0 {
		p.Curves = nil
		for _, n := range c.Keys.Curves {
			if n == "none" {
				continue
			}
			cv, ok := curveNames[n]
			if !ok {
				bad("keys.curves", "unknown curve %q (want P-256, P-384, P-521 or none)", n)
			}
			p.Curves = append(p.Curves, cv)
		}
	}
	if !p.AllowRSA && len(p.Curves) == 0 {
		bad("keys", "accepts no key at all")
	}

	s := c.Subject
	p.RequireCN = s.RequireCN == nil || *s.RequireCN
	p.MaxAttrLength = 64
	if s.MaxLength != 0 {
		if s.MaxLength < 1 || s.MaxLength > 1024 {
			bad("subject.max_length", "%d is outside 1..1024", s.MaxLength)
		}
		p.MaxAttrLength = s.MaxLength
	}
	allowed := s.Allowed
	if len(allowed) == 0 {
		allowed = []string{"CN", "O", "OU", "C", "ST", "L", "SERIALNUMBER"}
	}
	p.AllowedAttrs = map[string]bool{}
	for _, a := range allowed {
		oid, ok := attrOIDs[strings.ToUpper(a)]
		if !ok {
			bad("subject.allowed", "unknown attribute %q", a)
			continue
		}
		p.AllowedAttrs[oid.String()] = true
	}
	for i, entry := range s.Template {
		attr, value, ok := strings.Cut(entry, "=")
		oid, known := attrOIDs[strings.ToUpper(strings.TrimSpace(attr))]
		if !ok || !known {
			bad(fmt.Sprintf("subject.template[%d]", i), "%q is not ATTR=value with a known ATTR", entry)
			continue
		}
		tmpl, err := template.New("").Option("missingkey=error").Parse(value)
		if err != nil {
			bad(fmt.Sprintf("subject.template[%d]", i), "%v", err)
			continue
		}
		p.SubjectTemplate = append(p.SubjectTemplate, attrTemplate{oid: oid, tmpl: tmpl})
	}

	sans := c.SANs
	var err error
	p.AllowWildcard = sans.AllowWildcard
	if p.DNSPatterns, err = compileGlobs(sans.DNS, globDNS, p.AllowWildcard); err != nil {
		bad("sans.dns", "%v", err)
	}
	if p.EmailPatterns, err = compileGlobs(sans.Email, globEmail, false); err != nil {
		bad("sans.email", "%v", err)
	}
	if p.URIPatterns, err = compileGlobs(sans.URI, globURI, false); err != nil {
		bad("sans.uri", "%v", err)
	}
	for _, cidr := range sans.IP {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			bad("sans.ip", "%q is not a CIDR prefix", cidr)
			continue
		}
		p.IPNets = append(p.IPNets, n)
	}
	// Listing any type restricts SANs to the listed types and patterns; an
	// empty sans block lets every SAN through.
	p.FilterSANs = len(sans.DNS)+len(sans.IP)+len(sans.Email)+len(sans.URI) > 0
	for i, e := range sans.Extra {
		typ, value, ok := strings.Cut(e, ":")
		switch typ {
		case "DNS", "IP", "email", "URI":
		default:
			ok = false
		}
		tmpl, err := template.New("").Option("missingkey=error").Parse(value)
		if !ok || err != nil {
			bad(fmt.Sprintf("sans.extra[%d]", i), "%q is not TYPE:template with TYPE DNS, IP, email or URI (%v)", e, err)
			continue
		}
		p.ExtraSANs = append(p.ExtraSANs, sanTemplate{typ: typ, tmpl: tmpl})
	}
	if sans.Max != 0 {
		if sans.Max < 0 || sans.Max > 1000 {
			bad("sans.max", "%d is outside 0..1000", sans.Max)
		}
		p.MaxSANs = sans.Max
	}

	if len(c.KeyUsage) > 0 {
		p.KeyUsage = 0
		for _, n := range c.KeyUsage {
			ku, ok := KeyUsageByName(n)
			if !ok {
				bad("key_usage", "unknown key usage %q", n)
			}
			p.KeyUsage |= ku
		}
		p.ExplicitKeyUsage = true
	}
	if len(c.ExtKeyUsage) > 0 {
		p.ExtKeyUsage = nil
		for _, n := range c.ExtKeyUsage {
			if eku, ok := ExtKeyUsageByName(n); ok {
				p.ExtKeyUsage = append(p.ExtKeyUsage, eku)
				continue
			}
			oid, err := parseOID(n)
			if err != nil {
				bad("ext_key_usage", "%q is neither a known EKU name nor a dotted OID", n)
				continue
			}
			if name, ok := unissuableEKU(oid); ok {
				// A policy may not reach by OID what it may not name:
				// an OCSPSigning certificate answers for the CA's every
				// certificate, an "any" one passes for everything.
				bad("ext_key_usage", "%q is %s, which a policy does not issue", n, name)
				continue
			}
			p.UnknownExtKeyUsage = append(p.UnknownExtKeyUsage, oid)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &p, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 3 {
		return nil, errors.New("too short")
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, errors.New("not numeric")
		}
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, errors.New("invalid arc")
	}
	return oid, nil
}

// compileGlobs turns SAN patterns into anchored regular expressions in
// which "*" matches only characters valid at its place (globRegexp).
func compileGlobs(patterns []string, kind globKind, wildcard bool) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, g := range patterns {
		if g == "" {
			return nil, errors.New("empty pattern")
		}
		re, err := globRegexp(g, kind, wildcard)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

type attrTemplate struct {
	oid  asn1.ObjectIdentifier
	tmpl *template.Template
}

type sanTemplate struct {
	typ  string
	tmpl *template.Template
}

// TemplateData is what subject and SAN templates see.
type TemplateData struct {
	CSR     *x509.CertificateRequest
	Profile string
}

func render(t *template.Template, d TemplateData) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("%w: template: %v", ErrPolicy, err)
	}
	return strings.TrimSpace(b.String()), nil
}

// subject builds the issued subject from the template or the allowed CSR
// attributes.
func (p *Policy) subject(csr *x509.CertificateRequest, profile string) (pkix.Name, error) {
	var rdns pkix.RDNSequence
	if len(p.SubjectTemplate) > 0 {
		for _, a := range p.SubjectTemplate {
			v, err := render(a.tmpl, TemplateData{CSR: csr, Profile: profile})
			if err != nil {
				return pkix.Name{}, err
			}
			if v != "" {
				rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: a.oid, Value: v}})
			}
		}
	} else {
		for _, rdn := range csr.Subject.ToRDNSequence() {
			var kept pkix.RelativeDistinguishedNameSET
			for _, atv := range rdn {
				if p.AllowedAttrs[atv.Type.String()] {
					kept = append(kept, atv)
				}
			}
			if len(kept) > 0 {
				rdns = append(rdns, kept)
			}
		}
	}
	for _, rdn := range rdns {
		for _, atv := range rdn {
			s, ok := atv.Value.(string)
			if !ok {
				return pkix.Name{}, fmt.Errorf("%w: subject attribute %s is not a string", ErrPolicy, atv.Type)
			}
			if n := len([]rune(s)); n > p.MaxAttrLength {
				return pkix.Name{}, fmt.Errorf("%w: subject attribute %s has %d characters, at most %d", ErrPolicy, atv.Type, n, p.MaxAttrLength)
			}
		}
	}
	var name pkix.Name
	name.FillFromRDNSequence(&rdns)
	// ExtraNames keeps attributes pkix.Name has no field for, in order.
	name.ExtraNames = nil
	for _, rdn := range rdns {
		name.ExtraNames = append(name.ExtraNames, rdn...)
	}
	if p.RequireCN && name.CommonName == "" {
		return pkix.Name{}, fmt.Errorf("%w: the subject has no CN", ErrPolicy)
	}
	return name, nil
}

// unissuableEKU names the EKU oid is when a policy may not name it.
func unissuableEKU(oid asn1.ObjectIdentifier) (string, bool) {
	for _, e := range extKeyUsageNames {
		if !e.issuable && oid.Equal(asn1.ObjectIdentifier(extKeyUsageOIDs[e.eku])) {
			return e.name, true
		}
	}
	return "", false
}

// OIDCMCRA is id-kp-cmcRA (RFC 6402 §2.10), the extended key usage of a
// registration authority's certificate.
func OIDCMCRA() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 28} }

// GrantsRA reports whether the policy issues certificates with the RA
// extended key usage (id-kp-cmcRA): profiles whose challenge mode is ra
// and that trust this profile's CA accept requests such a certificate
// signs.
func (p *Policy) GrantsRA() bool {
	return slices.ContainsFunc(p.UnknownExtKeyUsage, OIDCMCRA().Equal)
}
