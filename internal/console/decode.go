package console

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/scepd/scepd/internal/ca"
)

// field is one line of a decoded certificate.
type field struct{ Name, Value string }

// extension is one extension as it appears in the certificate.
type extension struct {
	Name, OID string
	Critical  bool
	Value     string
}

type decoded struct {
	Fields     []field
	Extensions []extension
	Error      string
}

var extNames = map[string]string{
	"2.5.29.14": "Subject Key Identifier", "2.5.29.15": "Key Usage", "2.5.29.17": "Subject Alternative Name",
	"2.5.29.19": "Basic Constraints", "2.5.29.31": "CRL Distribution Points", "2.5.29.32": "Certificate Policies",
	"2.5.29.35": "Authority Key Identifier", "2.5.29.37": "Extended Key Usage", "1.3.6.1.5.5.7.1.1": "Authority Information Access",
	"2.5.29.30": "Name Constraints",
}

func colonHex(b []byte) string {
	s := strings.ToUpper(hex.EncodeToString(b))
	var out strings.Builder
	for i := 0; i < len(s); i += 2 {
		if i > 0 {
			out.WriteByte(':')
		}
		out.WriteString(s[i : i+2])
	}
	return out.String()
}

// decode lists everything a certificate says, for the detail page.
func decode(der []byte) decoded {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return decoded{Error: "the stored certificate does not parse: " + err.Error()}
	}
	var d decoded
	add := func(name, value string) {
		if value != "" {
			d.Fields = append(d.Fields, field{name, value})
		}
	}
	add("Version", fmt.Sprint(c.Version))
	add("Serial number", colonHex(c.SerialNumber.Bytes()))
	add("Subject", c.Subject.String())
	add("Issuer", c.Issuer.String())
	add("Not before", c.NotBefore.UTC().Format("2006-01-02 15:04:05 UTC"))
	add("Not after", c.NotAfter.UTC().Format("2006-01-02 15:04:05 UTC"))
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		add("Public key", fmt.Sprintf("RSA %d bits, exponent %d", k.N.BitLen(), k.E))
	case *ecdsa.PublicKey:
		add("Public key", "ECDSA "+k.Curve.Params().Name)
	case ed25519.PublicKey:
		add("Public key", "Ed25519")
	default:
		add("Public key", c.PublicKeyAlgorithm.String())
	}
	add("Signature algorithm", c.SignatureAlgorithm.String())
	sans := ca.SANs(c)
	kus := ca.KeyUsageNames(c.KeyUsage)
	var ekus []string
	for _, e := range c.ExtKeyUsage {
		if n, ok := ca.ExtKeyUsageName(e); ok {
			ekus = append(ekus, n)
		} else {
			ekus = append(ekus, fmt.Sprint(e))
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		ekus = append(ekus, o.String())
	}
	for _, e := range c.Extensions {
		oid := e.Id.String()
		x := extension{Name: extNames[oid], OID: oid, Critical: e.Critical}
		if x.Name == "" {
			x.Name = "Unrecognised extension"
		}
		switch oid {
		case "2.5.29.17":
			x.Value = strings.Join(sans, ", ")
		case "2.5.29.15":
			x.Value = strings.Join(kus, ", ")
		case "2.5.29.37":
			x.Value = strings.Join(ekus, ", ")
		case "2.5.29.19":
			x.Value = fmt.Sprintf("CA: %v", c.IsCA)
			if c.MaxPathLen > 0 || c.MaxPathLenZero {
				x.Value += fmt.Sprintf(", path length %d", c.MaxPathLen)
			}
		case "2.5.29.14":
			x.Value = colonHex(c.SubjectKeyId)
		case "2.5.29.35":
			x.Value = colonHex(c.AuthorityKeyId)
		case "2.5.29.31":
			x.Value = strings.Join(c.CRLDistributionPoints, ", ")
		case "1.3.6.1.5.5.7.1.1":
			var v []string
			for _, u := range c.IssuingCertificateURL {
				v = append(v, "caIssuers: "+u)
			}
			for _, u := range c.OCSPServer {
				v = append(v, "OCSP: "+u)
			}
			x.Value = strings.Join(v, ", ")
		case "2.5.29.32":
			var v []string
			for _, p := range c.Policies {
				v = append(v, p.String())
			}
			x.Value = strings.Join(v, ", ")
		default:
			x.Value = rawValue(e.Value)
		}
		d.Extensions = append(d.Extensions, x)
	}
	return d
}

// rawValue shows an unrecognised extension: a printable string when it
// is one, hex otherwise.
func rawValue(b []byte) string {
	var s string
	if rest, err := asn1.Unmarshal(b, &s); err == nil && len(rest) == 0 {
		return s
	}
	if len(b) > 64 {
		return colonHex(b[:64]) + "…"
	}
	return colonHex(b)
}
