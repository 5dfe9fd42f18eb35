package mobileconfig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/sceptest"
)

func selfSigned(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func TestRenderParsesWithApplesKeys(t *testing.T) {
	root, rootKey := selfSigned(t, "Root & <Co>", nil, nil)
	inter, _ := selfSigned(t, "Issuing", root, rootKey)
	p := Profile{
		ID: "macs", URL: "https://pki.example.com/scep/macs/pkiclient.exe",
		Subject: [][2]string{{"O", "Example & Co"}, {"CN", "%ComputerName%"}}, KeySize: 2048,
		KeyUsage: UsageSigning | UsageEncryption, Challenge: "s3cret<&>", Retries: 3, RetryDelay: 10,
		CAChain: [][]byte{inter.Raw, root.Raw}, IdentifierPrefix: "com.example.scepd", Organization: "Example",
	}
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	m := sceptest.PlistJSON(t, b)
	if m["PayloadType"] != "Configuration" || m["PayloadVersion"] != float64(1) || m["PayloadIdentifier"] != "com.example.scepd.macs" {
		t.Fatalf("top level: %v", m)
	}
	uuidRE := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	uuids := map[any]bool{m["PayloadUUID"]: true}
	if !uuidRE.MatchString(m["PayloadUUID"].(string)) {
		t.Fatalf("PayloadUUID %v", m["PayloadUUID"])
	}
	content := m["PayloadContent"].([]any)
	if len(content) != 3 {
		t.Fatalf("want root, intermediate, SCEP payloads; got %d", len(content))
	}
	types := []string{}
	for _, c := range content {
		c := c.(map[string]any)
		types = append(types, c["PayloadType"].(string))
		for _, k := range []string{"PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"} {
			if s, _ := c[k].(string); s == "" {
				t.Errorf("%s payload has no %s", c["PayloadType"], k)
			}
		}
		if c["PayloadVersion"] != float64(1) || !uuidRE.MatchString(c["PayloadUUID"].(string)) || uuids[c["PayloadUUID"]] {
			t.Errorf("payload %v: version 1 and a fresh UUID", c)
		}
		uuids[c["PayloadUUID"]] = true
	}
	if want := []string{"com.apple.security.root", "com.apple.security.pkcs1", "com.apple.security.scep"}; !reflect.DeepEqual(types, want) {
		t.Fatalf("payload types %v, want %v", types, want)
	}
	for i, want := range [][]byte{root.Raw, inter.Raw} {
		got := content[i].(map[string]any)["PayloadContent"].(map[string]any)["$data"]
		if got != b64(want) {
			t.Errorf("certificate payload %d does not hold the certificate's DER", i)
		}
	}
	scep := content[2].(map[string]any)["PayloadContent"].(map[string]any)
	want := map[string]any{
		"URL": p.URL, "Name": "macs", "Keysize": float64(2048), "Key Type": "RSA", "Key Usage": float64(5),
		"Challenge": "s3cret<&>", "Retries": float64(3), "RetryDelay": float64(10),
		"Subject": []any{[]any{[]any{"O", "Example & Co"}}, []any{[]any{"CN", "%ComputerName%"}}},
	}
	if !reflect.DeepEqual(scep, want) {
		t.Fatalf("SCEP payload\n got %v\nwant %v", scep, want)
	}
	// Every profile gets new UUIDs.
	b2, _ := Render(p)
	if sceptest.PlistJSON(t, b2)["PayloadUUID"] == m["PayloadUUID"] {
		t.Fatal("two renders share a PayloadUUID")
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestRenderRefusesBrokenProfiles(t *testing.T) {
	root, _ := selfSigned(t, "Root", nil, nil)
	good := Profile{ID: "p", URL: "http://h/scep/p/pkiclient.exe", Subject: [][2]string{{"CN", "d"}}, KeySize: 2048, KeyUsage: 5, CAChain: [][]byte{root.Raw}}
	if _, err := Render(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(p *Profile){
		"no URL scheme": func(p *Profile) { p.URL = "h/scep" },
		"key size":      func(p *Profile) { p.KeySize = 3072 },
		"key usage":     func(p *Profile) { p.KeyUsage = 2 },
		"no subject":    func(p *Profile) { p.Subject = nil },
		"no CA":         func(p *Profile) { p.CAChain = nil },
		"bad CA":        func(p *Profile) { p.CAChain = [][]byte{[]byte("x")} },
	} {
		p := good
		mod(&p)
		if _, err := Render(p); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}

func TestParseSubject(t *testing.T) {
	for in, want := range map[string][][2]string{
		"/C=US/O=Example, Inc./CN=%ComputerName%": {{"C", "US"}, {"O", "Example, Inc."}, {"CN", "%ComputerName%"}},
		"CN=device, O=Example":                    {{"CN", "device"}, {"O", "Example"}},
		"2.5.4.5=123":                             {{"2.5.4.5", "123"}},
	} {
		got, err := ParseSubject(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseSubject(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "CN", "/CN=", "=x"} {
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
}

// TestSignVerifiesWithOpenSSL: a signed profile is a CMS SignedData that
// openssl verifies against the signer's CA, and its content is the
// profile unchanged.
func TestSignVerifiesWithOpenSSL(t *testing.T) {
	openssl := sceptest.RequireTool(t, "openssl", "openssl")
	root, rootKey := selfSigned(t, "Signing Root", nil, nil)
	signer, signerKey := leaf(t, "Profile Signer", root, rootKey)
	profile, err := Render(Profile{ID: "p", URL: "https://h/scep/p/pkiclient.exe", Subject: [][2]string{{"CN", "d"}}, KeySize: 2048, KeyUsage: 5, CAChain: [][]byte{root.Raw}})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(profile, []*x509.Certificate{signer}, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, ca, out := filepath.Join(dir, "p.mobileconfig"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "content")
	os.WriteFile(in, signed, 0o600)
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o600)
	if o, err := sceptest.Run(t, 30*time.Second, nil, "", openssl, "cms", "-verify", "-inform", "DER", "-in", in,
		"-CAfile", ca, "-purpose", "any", "-out", out); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, o)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, profile) {
		t.Fatal("the signed content is not the profile")
	}
	sceptest.PlistJSON(t, got)

	_, otherKey := selfSigned(t, "Other", nil, nil)
	if _, err := Sign(profile, []*x509.Certificate{signer}, otherKey); err == nil {
		t.Fatal("signed with a key that is not the certificate's")
	}
}

func leaf(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}
