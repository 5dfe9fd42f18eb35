package ca

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Issued is a certificate just signed: its DER and the fields callers
// store and log, as a parser of the DER would read them.
type Issued struct {
	DER     []byte
	Serial  *big.Int
	Subject pkix.Name
	// NotBefore and NotAfter are as encoded: UTC, whole seconds.
	NotBefore, NotAfter time.Time
	// SANs are the subjectAltNames as TYPE:value strings (see SANs).
	SANs []string
}

// IssuedFrom is the Issued of a certificate signed elsewhere (an upstream
// CA's), parsed already.
func IssuedFrom(c *x509.Certificate) Issued {
	return Issued{DER: c.Raw, Serial: c.SerialNumber, Subject: c.Subject, NotBefore: c.NotBefore, NotAfter: c.NotAfter, SANs: SANs(c)}
}

// Certificate parses the issued DER, for callers that need the whole
// certificate (tests, notifiers).
func (i Issued) Certificate() (*x509.Certificate, error) { return x509.ParseCertificate(i.DER) }

// Issue signs tmpl (from Policy.Evaluate) for pub with a fresh random
// serial. The certificate is encoded in one pass from the template and the
// signature, with the bytes crypto/x509 would produce for the same
// template; what it returns comes from the template, so nothing is parsed
// back. An RSA signature is verified with the CA certificate's public key
// before it leaves: a signer that faults in its CRT computation (an HSM, a
// library) would otherwise publish a signature that factors the CA key.
// Templates with fields this encoder does not write (CA certificates,
// policies, name constraints, extra extensions) go through crypto/x509.
func (c *CA) Issue(tmpl *x509.Certificate, pub crypto.PublicKey) (Issued, error) {
	serial, err := NewSerial(c.rand())
	if err != nil {
		return Issued{}, err
	}
	return c.issue(tmpl, pub, serial)
}

func (c *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, serial *big.Int) (Issued, error) {
	algID, h, ok := crlSignature(c.Signer.Public())
	if !ok || h == 0 || !encodable(tmpl) {
		return c.issueWithX509(tmpl, pub, serial)
	}
	spki, err := MarshalPublicKey(pub)
	if err != nil {
		return Issued{}, fmt.Errorf("ca: marshal public key: %w", err)
	}
	subject, err := asn1.Marshal(tmpl.Subject.ToRDNSequence())
	if err != nil {
		return Issued{}, fmt.Errorf("ca: encoding subject: %w", err)
	}
	var name pkix.Name
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(subject, &rdns); err != nil {
		return Issued{}, fmt.Errorf("ca: encoding subject: %w", err)
	}
	name.FillFromRDNSequence(&rdns)
	notBefore, notAfter := tmpl.NotBefore.UTC().Truncate(time.Second), tmpl.NotAfter.UTC().Truncate(time.Second)
	var aki []byte
	if !bytes.Equal(c.Cert.RawSubject, subject) && len(c.Cert.SubjectKeyId) > 0 {
		aki = c.Cert.SubjectKeyId
	} else {
		aki = tmpl.AuthorityKeyId
	}

	b := cryptobyte.NewBuilder(make([]byte, 0, 1024+len(spki)))
	b.AddASN1(cbasn1.SEQUENCE, func(tbs *cryptobyte.Builder) {
		tbs.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(v *cryptobyte.Builder) { v.AddASN1Int64(2) })
		tbs.AddBytes(appendInteger(nil, serial))
		tbs.AddBytes(algID)
		tbs.AddBytes(c.Cert.RawSubject)
		tbs.AddASN1(cbasn1.SEQUENCE, func(v *cryptobyte.Builder) {
			v.AddBytes(appendTime(nil, notBefore))
			v.AddBytes(appendTime(nil, notAfter))
		})
		tbs.AddBytes(subject)
		tbs.AddBytes(spki)
		tbs.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(x *cryptobyte.Builder) {
			x.AddASN1(cbasn1.SEQUENCE, func(exts *cryptobyte.Builder) {
				addExtensions(exts, tmpl, aki, bytes.Equal(subject, []byte{0x30, 0}))
			})
		})
	})
	tbs, err := b.Bytes()
	if err != nil {
		return Issued{}, fmt.Errorf("ca: encoding certificate: %w", err)
	}
	d := h.New()
	d.Write(tbs)
	digest := d.Sum(nil)
	sig, err := c.Signer.Sign(c.rand(), digest, h)
	if err != nil {
		return Issued{}, fmt.Errorf("ca: signing: %w", err)
	}
	if k, ok := c.Cert.PublicKey.(*rsa.PublicKey); ok && !goRSAOf(c.Signer, k) {
		if err := rsa.VerifyPKCS1v15(k, h, digest, sig); err != nil {
			return Issued{}, fmt.Errorf("ca: the signer returned a signature that does not verify with the CA certificate: %w", err)
		}
	}
	out := cryptobyte.NewBuilder(make([]byte, 0, len(tbs)+len(algID)+len(sig)+16))
	out.AddASN1(cbasn1.SEQUENCE, func(cert *cryptobyte.Builder) {
		cert.AddBytes(tbs)
		cert.AddBytes(algID)
		cert.AddASN1BitString(sig)
	})
	der, err := out.Bytes()
	if err != nil {
		return Issued{}, fmt.Errorf("ca: encoding certificate: %w", err)
	}
	return Issued{DER: der, Serial: serial, Subject: name, NotBefore: notBefore, NotAfter: notAfter, SANs: SANs(tmpl)}, nil
}

// goRSAOf reports whether signer is Go's own RSA key for pub. crypto/rsa
// verifies each signature it makes before returning it (against fault
// attacks), so verifying it again against the certificate's key, the same
// key, would only repeat that; another signer (OpenSSL, a PKCS#11 token)
// is checked here, which also catches a key that is not the
// certificate's.
func goRSAOf(signer crypto.Signer, pub *rsa.PublicKey) bool {
	k, ok := signer.(*rsa.PrivateKey)
	return ok && k.PublicKey.Equal(pub)
}

// issueWithX509 signs with crypto/x509 and reads the result back.
func (c *CA) issueWithX509(tmpl *x509.Certificate, pub crypto.PublicKey, serial *big.Int) (Issued, error) {
	t := *tmpl
	t.SerialNumber = serial
	der, err := x509.CreateCertificate(c.rand(), &t, c.Cert, pub, c.Signer)
	if err != nil {
		return Issued{}, fmt.Errorf("ca: signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Issued{}, fmt.Errorf("ca: parsing issued certificate: %w", err)
	}
	return Issued{DER: der, Serial: cert.SerialNumber, Subject: cert.Subject, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, SANs: SANs(cert)}, nil
}

// encodable reports whether the one-pass encoder writes everything tmpl
// asks for: the fields Policy.Template sets, for an end-entity certificate.
func encodable(t *x509.Certificate) bool {
	if t.IsCA || !t.BasicConstraintsValid || t.MaxPathLen > 0 || t.MaxPathLen < -1 || t.MaxPathLenZero || len(t.RawSubject) > 0 ||
		len(t.ExtraExtensions) > 0 || len(t.PolicyIdentifiers) > 0 || len(t.Policies) > 0 ||
		len(t.PermittedDNSDomains)+len(t.ExcludedDNSDomains)+len(t.PermittedIPRanges)+len(t.ExcludedIPRanges)+
			len(t.PermittedEmailAddresses)+len(t.ExcludedEmailAddresses)+len(t.PermittedURIDomains)+len(t.ExcludedURIDomains) > 0 ||
		t.SignatureAlgorithm != x509.UnknownSignatureAlgorithm ||
		t.NotBefore.UTC().Year() < 1950 || t.NotAfter.UTC().Year() < 1950 ||
		t.KeyUsage < 0 || t.KeyUsage > x509.KeyUsageDecipherOnly<<1-1 {
		return false // (before 1950 is a GeneralizedTime, which appendTime does not write; key usage bits RFC 5280 does not define)
	}
	for _, u := range t.ExtKeyUsage {
		if _, ok := extKeyUsageOIDs[u]; !ok {
			return false
		}
	}
	for _, list := range [][]string{t.DNSNames, t.EmailAddresses, t.OCSPServer, t.IssuingCertificateURL, t.CRLDistributionPoints} {
		for _, s := range list {
			if !ia5(s) {
				return false // crypto/x509 refuses it with its own error
			}
		}
	}
	for _, u := range t.URIs {
		if !ia5(u.String()) {
			return false
		}
	}
	return true
}

func ia5(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var (
	oidKeyUsage            = []int{2, 5, 29, 15}
	oidExtKeyUsage         = []int{2, 5, 29, 37}
	oidBasicConstraints    = []int{2, 5, 29, 19}
	oidSubjectKeyID        = []int{2, 5, 29, 14}
	oidAuthorityInfoAccess = []int{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidSubjectAltNameExt   = []int{2, 5, 29, 17}
	oidCRLDistribution     = []int{2, 5, 29, 31}
	oidAccessOCSP          = []int{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidAccessCAIssuers     = []int{1, 3, 6, 1, 5, 5, 7, 48, 2}
)

// extKeyUsageOIDs are the OIDs of crypto/x509's named extended key usages.
var extKeyUsageOIDs = map[x509.ExtKeyUsage][]int{
	x509.ExtKeyUsageAny:                            {2, 5, 29, 37, 0},
	x509.ExtKeyUsageServerAuth:                     {1, 3, 6, 1, 5, 5, 7, 3, 1},
	x509.ExtKeyUsageClientAuth:                     {1, 3, 6, 1, 5, 5, 7, 3, 2},
	x509.ExtKeyUsageCodeSigning:                    {1, 3, 6, 1, 5, 5, 7, 3, 3},
	x509.ExtKeyUsageEmailProtection:                {1, 3, 6, 1, 5, 5, 7, 3, 4},
	x509.ExtKeyUsageIPSECEndSystem:                 {1, 3, 6, 1, 5, 5, 7, 3, 5},
	x509.ExtKeyUsageIPSECTunnel:                    {1, 3, 6, 1, 5, 5, 7, 3, 6},
	x509.ExtKeyUsageIPSECUser:                      {1, 3, 6, 1, 5, 5, 7, 3, 7},
	x509.ExtKeyUsageTimeStamping:                   {1, 3, 6, 1, 5, 5, 7, 3, 8},
	x509.ExtKeyUsageOCSPSigning:                    {1, 3, 6, 1, 5, 5, 7, 3, 9},
	x509.ExtKeyUsageMicrosoftServerGatedCrypto:     {1, 3, 6, 1, 4, 1, 311, 10, 3, 3},
	x509.ExtKeyUsageNetscapeServerGatedCrypto:      {2, 16, 840, 1, 113730, 4, 1},
	x509.ExtKeyUsageMicrosoftCommercialCodeSigning: {1, 3, 6, 1, 4, 1, 311, 2, 1, 22},
	x509.ExtKeyUsageMicrosoftKernelCodeSigning:     {1, 3, 6, 1, 4, 1, 311, 61, 1, 1},
}

// addExtensions writes the extensions of an end-entity certificate in
// crypto/x509's order: key usage, extended key usage, basic constraints,
// subject and authority key identifiers, authority information access,
// subjectAltName (critical when the subject is empty, RFC 5280
// §4.2.1.6), CRL distribution points.
func addExtensions(exts *cryptobyte.Builder, t *x509.Certificate, aki []byte, emptySubject bool) {
	if t.KeyUsage != 0 {
		a := [2]byte{reverseBits(byte(t.KeyUsage)), reverseBits(byte(t.KeyUsage >> 8))}
		bits := a[:1]
		if a[1] != 0 {
			bits = a[:2]
		}
		addCriticalExtension(exts, oidKeyUsage, true, func(v *cryptobyte.Builder) {
			last := bits[len(bits)-1]
			unused := byte(0)
			for unused < 8 && last&(1<<unused) == 0 {
				unused++
			}
			v.AddASN1(cbasn1.BIT_STRING, func(s *cryptobyte.Builder) {
				s.AddUint8(unused)
				s.AddBytes(bits)
			})
		})
	}
	if len(t.ExtKeyUsage)+len(t.UnknownExtKeyUsage) > 0 {
		addExtension(exts, oidExtKeyUsage, func(v *cryptobyte.Builder) {
			v.AddASN1(cbasn1.SEQUENCE, func(s *cryptobyte.Builder) {
				for _, u := range t.ExtKeyUsage {
					s.AddASN1ObjectIdentifier(extKeyUsageOIDs[u])
				}
				for _, oid := range t.UnknownExtKeyUsage {
					s.AddASN1ObjectIdentifier(oid)
				}
			})
		})
	}
	// Basic constraints of an end entity: cA FALSE (the default, left out).
	addCriticalExtension(exts, oidBasicConstraints, true, func(v *cryptobyte.Builder) {
		v.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
	})
	if len(t.SubjectKeyId) > 0 {
		addExtension(exts, oidSubjectKeyID, func(v *cryptobyte.Builder) { v.AddASN1OctetString(t.SubjectKeyId) })
	}
	if len(aki) > 0 {
		addExtension(exts, oidAuthorityKeyI, func(v *cryptobyte.Builder) {
			v.AddASN1(cbasn1.SEQUENCE, func(s *cryptobyte.Builder) {
				s.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(id *cryptobyte.Builder) { id.AddBytes(aki) })
			})
		})
	}
	if len(t.OCSPServer)+len(t.IssuingCertificateURL) > 0 {
		addExtension(exts, oidAuthorityInfoAccess, func(v *cryptobyte.Builder) {
			v.AddASN1(cbasn1.SEQUENCE, func(s *cryptobyte.Builder) {
				for _, list := range []struct {
					oid  []int
					urls []string
				}{{oidAccessOCSP, t.OCSPServer}, {oidAccessCAIssuers, t.IssuingCertificateURL}} {
					for _, u := range list.urls {
						s.AddASN1(cbasn1.SEQUENCE, func(ad *cryptobyte.Builder) {
							ad.AddASN1ObjectIdentifier(list.oid)
							ad.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(l *cryptobyte.Builder) { l.AddBytes([]byte(u)) })
						})
					}
				}
			})
		})
	}
	if len(t.DNSNames)+len(t.EmailAddresses)+len(t.IPAddresses)+len(t.URIs) > 0 {
		addCriticalExtension(exts, oidSubjectAltNameExt, emptySubject, func(v *cryptobyte.Builder) {
			v.AddASN1(cbasn1.SEQUENCE, func(s *cryptobyte.Builder) { addSANs(s, t.DNSNames, t.EmailAddresses, t.IPAddresses, t.URIs) })
		})
	}
	if len(t.CRLDistributionPoints) > 0 {
		addExtension(exts, oidCRLDistribution, func(v *cryptobyte.Builder) {
			v.AddASN1(cbasn1.SEQUENCE, func(s *cryptobyte.Builder) {
				for _, u := range t.CRLDistributionPoints {
					// DistributionPoint { distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] } } }
					s.AddASN1(cbasn1.SEQUENCE, func(dp *cryptobyte.Builder) {
						dp.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(dpn *cryptobyte.Builder) {
							dpn.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(full *cryptobyte.Builder) {
								full.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(l *cryptobyte.Builder) { l.AddBytes([]byte(u)) })
							})
						})
					})
				}
			})
		})
	}
}

// addSANs writes GeneralNames in crypto/x509's order: dNSName,
// rfc822Name, iPAddress (4 bytes for IPv4), uniformResourceIdentifier.
func addSANs(s *cryptobyte.Builder, dns, email []string, ips []net.IP, uris []*url.URL) {
	for _, d := range dns {
		s.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(l *cryptobyte.Builder) { l.AddBytes([]byte(d)) })
	}
	for _, e := range email {
		s.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(l *cryptobyte.Builder) { l.AddBytes([]byte(e)) })
	}
	for _, ip := range ips {
		raw := ip.To4()
		if raw == nil {
			raw = ip
		}
		s.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(l *cryptobyte.Builder) { l.AddBytes(raw) })
	}
	for _, u := range uris {
		s.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(l *cryptobyte.Builder) { l.AddBytes([]byte(u.String())) })
	}
}

// addCriticalExtension adds Extension ::= SEQUENCE { extnID, critical
// BOOLEAN DEFAULT FALSE (written only when true), extnValue }.
func addCriticalExtension(b *cryptobyte.Builder, oid []int, critical bool, value func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(ext *cryptobyte.Builder) {
		ext.AddASN1ObjectIdentifier(oid)
		if critical {
			ext.AddASN1Boolean(true)
		}
		ext.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

func reverseBits(b byte) byte {
	var r byte
	for i := 0; i < 8; i++ {
		r = r<<1 | b&1
		b >>= 1
	}
	return r
}
