// Package mobileconfig writes Apple configuration profiles (.mobileconfig,
// an XML property list) that enroll a device with scepd: a SCEP payload
// (com.apple.security.scep) and the CA certificates it chains to, so the
// device trusts the certificate it gets.
package mobileconfig

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Apple's SCEP payload key usage bits: 1 signing, 4 encryption.
const (
	UsageSigning    = 1
	UsageEncryption = 4
)

// Profile is what goes into a configuration profile.
type Profile struct {
	// ID is the scepd profile; it names the payloads and is the SCEP
	// payload's Name (the CA instance name).
	ID string
	// URL is the SCEP URL, e.g. https://pki.example.com/scep/default/pkiclient.exe.
	URL string
	// Subject is the requested subject, attribute (CN, O, ... or a dotted
	// OID) and value pairs in order.
	Subject [][2]string
	// KeySize of the RSA key the device generates: 1024, 2048 or 4096.
	KeySize int
	// KeyUsage is the bitmask UsageSigning|UsageEncryption.
	KeyUsage int
	// Challenge is the challenge password the device sends.
	Challenge string
	// Retries and RetryDelay (seconds) bound polling while a request is
	// pending (manual approval); 0 leaves them out.
	Retries, RetryDelay int
	// CAChain is the issuing CA and its issuers, DER, the issuing CA
	// first. The last one is installed as a root, the others as
	// intermediates.
	CAChain [][]byte
	// IdentifierPrefix is the reverse-DNS prefix of every PayloadIdentifier,
	// e.g. com.example.scepd.
	IdentifierPrefix string
	// Organization is shown as PayloadOrganization when set.
	Organization string
}

// ParseSubject reads "/CN=device/O=Example" or "CN=device,O=Example" into
// attribute-value pairs. A value may hold Apple's device variables such
// as %ComputerName% (substituted by the device or the MDM).
func ParseSubject(s string) ([][2]string, error) {
	s = strings.TrimSpace(s)
	sep := ","
	if strings.HasPrefix(s, "/") {
		sep, s = "/", s[1:]
	}
	var out [][2]string
	for _, part := range strings.Split(s, sep) {
		attr, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		attr = strings.TrimSpace(attr)
		if !ok || attr == "" || val == "" {
			return nil, fmt.Errorf("subject %q: want ATTR=value entries such as CN=device,O=Example", s)
		}
		out = append(out, [2]string{attr, val})
	}
	return out, nil
}

// Render returns the configuration profile as an XML property list. It
// checks the profile first: a device given a broken profile says little.
func Render(p Profile) ([]byte, error) {
	switch {
	case p.ID == "":
		return nil, errors.New("no profile id")
	case !strings.HasPrefix(p.URL, "http://") && !strings.HasPrefix(p.URL, "https://"):
		return nil, fmt.Errorf("SCEP URL %q: want http:// or https://", p.URL)
	case p.KeySize != 1024 && p.KeySize != 2048 && p.KeySize != 4096:
		return nil, fmt.Errorf("key size %d: Apple's SCEP payload takes 1024, 2048 or 4096", p.KeySize)
	case p.KeyUsage&^(UsageSigning|UsageEncryption) != 0:
		return nil, fmt.Errorf("key usage %d: want a sum of 1 (signing) and 4 (encryption)", p.KeyUsage)
	case len(p.Subject) == 0:
		return nil, errors.New("no subject")
	case len(p.CAChain) == 0:
		return nil, errors.New("no CA certificate")
	}
	prefix := p.IdentifierPrefix
	if prefix == "" {
		prefix = "scepd"
	}
	subject := array{}
	for _, a := range p.Subject {
		subject = append(subject, array{array{a[0], a[1]}})
	}
	scep := dict{
		{"URL", p.URL},
		{"Name", p.ID},
		{"Subject", subject},
		{"Keysize", p.KeySize},
		{"Key Type", "RSA"},
		{"Key Usage", p.KeyUsage},
	}
	if p.Challenge != "" {
		scep = append(scep, kv{"Challenge", p.Challenge})
	}
	if p.Retries > 0 {
		scep = append(scep, kv{"Retries", p.Retries})
	}
	if p.RetryDelay > 0 {
		scep = append(scep, kv{"RetryDelay", p.RetryDelay})
	}
	payloads := array{}
	for i := len(p.CAChain) - 1; i >= 0; i-- {
		der := p.CAChain[i]
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("CA certificate %d: %w", i, err)
		}
		typ, kind := "com.apple.security.pkcs1", "intermediate"
		if i == len(p.CAChain)-1 {
			typ, kind = "com.apple.security.root", "root"
		}
		id, err := uuid()
		if err != nil {
			return nil, err
		}
		payloads = append(payloads, payload(typ, fmt.Sprintf("%s.%s.ca.%d", prefix, p.ID, len(p.CAChain)-1-i), id,
			"CA "+c.Subject.CommonName, dict{
				{"PayloadCertificateFileName", fmt.Sprintf("%s-%s-ca-%d.cer", p.ID, kind, len(p.CAChain)-1-i)},
				{"PayloadContent", data(der)},
			}))
	}
	id, err := uuid()
	if err != nil {
		return nil, err
	}
	payloads = append(payloads, payload("com.apple.security.scep", prefix+"."+p.ID+".scep", id,
		"SCEP "+p.ID, dict{{"PayloadContent", scep}}))

	top, err := uuid()
	if err != nil {
		return nil, err
	}
	root := dict{
		{"PayloadType", "Configuration"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", prefix + "." + p.ID},
		{"PayloadUUID", top},
		{"PayloadDisplayName", "scepd certificate (" + p.ID + ")"},
		{"PayloadDescription", "Requests a device certificate from " + p.URL + " and trusts its CA."},
	}
	if p.Organization != "" {
		root = append(root, kv{"PayloadOrganization", p.Organization})
	}
	root = append(root, kv{"PayloadContent", payloads})

	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	write(&b, root, 0)
	b.WriteString("</plist>\n")
	return b.Bytes(), nil
}

// payload is one entry of the top-level PayloadContent.
func payload(typ, ident, id, name string, content dict) dict {
	return append(dict{
		{"PayloadType", typ},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", ident},
		{"PayloadUUID", id},
		{"PayloadDisplayName", name},
	}, content...)
}

// Property list values: string, int, data, array, dict (keys in order).
type (
	kv struct {
		k string
		v any
	}
	dict  []kv
	array []any
	data  []byte
)

func write(b *bytes.Buffer, v any, depth int) {
	ind := strings.Repeat("\t", depth)
	switch v := v.(type) {
	case string:
		b.WriteString(ind + "<string>")
		xml.EscapeText(b, []byte(v))
		b.WriteString("</string>\n")
	case int:
		b.WriteString(ind + "<integer>" + strconv.Itoa(v) + "</integer>\n")
	case data:
		b.WriteString(ind + "<data>" + base64.StdEncoding.EncodeToString(v) + "</data>\n")
	case array:
		b.WriteString(ind + "<array>\n")
		for _, e := range v {
			write(b, e, depth+1)
		}
		b.WriteString(ind + "</array>\n")
	case dict:
		b.WriteString(ind + "<dict>\n")
		for _, e := range v {
			b.WriteString(ind + "\t<key>")
			xml.EscapeText(b, []byte(e.k))
			b.WriteString("</key>\n")
			write(b, e.v, depth+1)
		}
		b.WriteString(ind + "</dict>\n")
	default:
		panic(fmt.Sprintf("mobileconfig: no plist form for %T", v))
	}
}

// uuid is a random (version 4) UUID in upper case, as Apple's tools write them.
func uuid() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", err
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])), nil
}
