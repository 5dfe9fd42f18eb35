// Package e2e starts the real scepd binary and enrolls with real clients:
// micromdm's scepclient, certmonger, openssl, and scepd's own client for
// the full cipher x digest x method matrix.
package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

const challenge = "e2e-static-challenge"

func startServer(t *testing.T, env ...string) *sceptest.Server {
	return sceptest.Start(t, sceptest.Options{Env: append([]string{"SCEPD_CHALLENGE=" + challenge}, env...)})
}

func getCACert(t *testing.T, s *sceptest.Server) []*x509.Certificate {
	t.Helper()
	certs, err := client.New(s.URL("default")).GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// opensslVerify checks certPEM chains to the CA with openssl and returns
// openssl's text dump of the certificate.
func opensslVerify(t *testing.T, caPEM, certPEM string) string {
	t.Helper()
	openssl := sceptest.RequireTool(t, "openssl", "openssl")
	out, err := sceptest.Run(t, 30*time.Second, nil, "", openssl, "verify", "-CAfile", caPEM, "-purpose", "sslclient", certPEM)
	if err != nil || !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	text, err := sceptest.Run(t, 30*time.Second, nil, "", openssl, "x509", "-in", certPEM, "-noout", "-text")
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, text)
	}
	return text
}

func writePEM(t *testing.T, dir, name string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestZeroConfigGeneratesChallengeAndServes(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{})
	if len(s.Challenge) < 16 {
		t.Fatalf("no generated challenge printed on first start; log:\n%s", s.Log())
	}
	if strings.Contains(s.Log(), s.Challenge) {
		t.Fatal("the generated challenge appears in the log")
	}
	if !s.LogContains(s.URL("default")) {
		t.Errorf("the log does not show the SCEP URL %s:\n%s", s.URL("default"), s.Log())
	}
	key := newKey(t)
	certs, err := client.New(s.URL("default")).Enroll(context.Background(), client.Enrollment{
		Key: key, Subject: pkix.Name{CommonName: "zero-config"}, Challenge: s.Challenge, Cipher: cms.AES256, Digest: sha256Hash,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The database holds the hash, never the challenge.
	db, err := os.ReadFile(filepath.Join(s.DataDir, "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(db), s.Challenge) {
		t.Fatal("the challenge is stored in clear in the database")
	}
	if len(s.Certificates()) != 1 || s.Certificates()[0].Serial != certs[0].SerialNumber.Text(16) {
		t.Fatal("the issued certificate is not the one stored")
	}
	// Key files are private.
	for _, pattern := range []string{"ca/default-*.key", "profiles/default/ra-*.key"} {
		files, _ := filepath.Glob(filepath.Join(s.DataDir, pattern))
		if len(files) != 1 {
			t.Fatalf("%s: %d files, want 1", pattern, len(files))
		}
		if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", files[0], err, fi.Mode())
		}
	}
}

func TestHTTPSurface(t *testing.T) {
	s := startServer(t)
	for _, tt := range []struct {
		path, query string
		status      int
		ctype, body string
	}{
		{"/healthz", "", 200, "text/plain", "ok"},
		{"/scep/default/pkiclient.exe", "operation=GetCACaps", 200, "text/plain", "SCEPStandard"},
		{"/crl/default.crl", "", 200, "application/pkix-crl", ""},
		{"/crl/nope.crl", "", 404, "text/plain", "no such CRL"},
		{"/scep/default", "operation=GetCACaps&message=MobileIronSCEP", 200, "text/plain", "POSTPKIOperation"},
		{"/scep/default/", "operation=GetCACaps", 200, "text/plain", "AES"},
		{"/cgi-bin/pkiclient.exe", "operation=GetCACaps", 200, "text/plain", "SHA-256"},
		{"/certsrv/mscep/mscep.dll", "operation=GetCACaps", 200, "text/plain", "DES3"},
		{"/scep/default/pkiclient.exe", "operation=GetCACert&message=default", 200, "application/x-x509-ca-ra-cert", ""},
		{"/scep/nope/pkiclient.exe", "operation=GetCACaps", 404, "text/plain", `no SCEP profile "nope"`},
		{"/scep/default/pkiclient.exe", "operation=Frobnicate", 400, "text/plain", "not supported"},
		{"/scep/default/pkiclient.exe", "", 400, "text/plain", "missing operation"},
		{"/scep/default/pkiclient.exe", "operation=PKIOperation&message=%%%", 400, "text/plain", ""},
		{"/scep/default/pkiclient.exe", "operation=PKIOperation&message=bm90IGNtcw==", 400, "text/plain", "malformed SCEP message"},
	} {
		resp, err := http.Get(s.BaseURL() + tt.path + "?" + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) || !strings.Contains(string(body), tt.body) {
			t.Errorf("GET %s?%s = %d %q %q; want %d %q containing %q", tt.path, tt.query, resp.StatusCode, resp.Header.Get("Content-Type"), truncate(body), tt.status, tt.ctype, tt.body)
		}
	}
	caps, err := client.New(s.URL("default")).GetCACaps(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"AES", "DES3", "POSTPKIOperation", "Renewal", "SCEPStandard", "SHA-1", "SHA-256", "SHA-512"}
	if strings.Join(caps, ",") != strings.Join(want, ",") {
		t.Errorf("GetCACaps = %v, want %v (and nothing not implemented: no GetNextCACert yet)", caps, want)
	}
	certs := getCACert(t, s)
	if len(certs) != 2 || certs[0].IsCA || !certs[1].IsCA {
		t.Fatalf("GetCACert: want [RA, CA], got %d certificates", len(certs))
	}
	ra, root := certs[0], certs[1]
	if err := ra.CheckSignatureFrom(root); err != nil {
		t.Errorf("RA is not issued by the CA: %v", err)
	}
	if ra.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("RA keyUsage = %v", ra.KeyUsage)
	}
	if _, ok := ra.PublicKey.(*rsa.PublicKey); !ok || ra.PublicKey.(*rsa.PublicKey).N.BitLen() != 2048 {
		t.Errorf("RA key is not RSA-2048")
	}
	if years := ra.NotAfter.Sub(ra.NotBefore).Hours() / 24 / 365; years < 9.9 {
		t.Errorf("RA validity %.1f years, want 10", years)
	}
	// RSA-2048: every SCEP client can use the chain (micromdm's scepclient
	// panics on an ECDSA certificate in it).
	if k, ok := root.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Errorf("default CA key is %v, want RSA-2048", root.PublicKeyAlgorithm)
	}
}

func TestSubjectAltNameTypes(t *testing.T) {
	s := startServer(t)
	u, _ := url.Parse("urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100")
	c := enrollOK(t, s, client.Enrollment{
		Subject:  pkix.Name{CommonName: "all-sans", Organization: []string{"Example"}},
		DNSNames: []string{"a.example", "b.example"}, IPs: []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::1")},
		Emails: []string{"device@example.com"}, URIs: []*url.URL{u},
		Cipher: cms.AES256, Digest: sha256Hash,
	})
	if c.Subject.String() != "CN=all-sans,O=Example" || len(c.DNSNames) != 2 || len(c.IPAddresses) != 2 ||
		!c.IPAddresses[1].Equal(net.ParseIP("2001:db8::1")) || c.EmailAddresses[0] != "device@example.com" || c.URIs[0].String() != u.String() {
		t.Fatalf("certificate subject %q SANs %v %v %v %v", c.Subject, c.DNSNames, c.IPAddresses, c.EmailAddresses, c.URIs)
	}
}

func TestCAKeyTypeFlag(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--ca-key-type", "rsa-3072"}})
	certs := getCACert(t, s)
	root := certs[len(certs)-1]
	if k, ok := root.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 3072 {
		t.Fatalf("CA key: %T, want RSA-3072", root.PublicKey)
	}
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "rsa-ca"}, Cipher: cms.AES128, Digest: sha256Hash})
}

func TestRefusesShortChallenge(t *testing.T) {
	out, err := sceptest.Run(t, 30*time.Second, []string{"SCEPD_CHALLENGE=short"}, "", sceptest.Binary(t),
		"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "d"))
	if err == nil || !strings.Contains(out, "at least 8 characters") {
		t.Fatalf("a 5-character SCEPD_CHALLENGE was accepted: %v\n%s", err, out)
	}
}

// TestCipherDigestMatrix drives every content cipher x digest x HTTP method
// through `scepd client enroll` (a separate process) against the binary,
// and checks each certificate with openssl.
func TestCipherDigestMatrix(t *testing.T) {
	s := startServer(t)
	caPEM := s.CACertPEM(t, getCACert(t, s))
	dir := t.TempDir()
	n := 0
	for _, cipher := range []string{"aes128", "aes256", "3des"} {
		for _, digest := range []string{"sha1", "sha256", "sha384", "sha512"} {
			for _, method := range []string{"post", "get"} {
				name := fmt.Sprintf("%s-%s-%s", cipher, digest, method)
				t.Run(name, func(t *testing.T) {
					out := filepath.Join(dir, name+".pem")
					args := []string{"client", "enroll", "-url", s.URL("default"), "-challenge", challenge, "-cn", name,
						"-dns", name + ".devices.example", "-cipher", cipher, "-digest", digest, "-out", out}
					if method == "get" {
						args = append(args, "-get")
					}
					if o, err := sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), args...); err != nil {
						t.Fatalf("scepd client enroll: %v\n%s", err, o)
					}
					text := opensslVerify(t, caPEM, out)
					for _, want := range []string{"Subject: CN = " + name, "DNS:" + name + ".devices.example", "TLS Web Client Authentication", "Digital Signature, Key Encipherment"} {
						if !strings.Contains(text, want) {
							t.Errorf("certificate lacks %q", want)
						}
					}
				})
				n++
			}
		}
	}
	if got := len(s.Certificates()); got != n {
		t.Errorf("%d certificates stored, want %d", got, n)
	}
	// Every one of the 24 wire combinations is in the server's log.
	for _, c := range []string{"AES-128-CBC", "AES-256-CBC", "DES-EDE3-CBC"} {
		if !s.LogCount("cipher="+c, 8) || strings.Count(s.Log(), "cipher="+c) != 8 {
			t.Errorf("expected 8 PKIOperations with %s in the log", c)
		}
	}
}

func TestSingleDESRefusedByDefault(t *testing.T) {
	s := startServer(t)
	_, err := client.New(s.URL("default")).Enroll(context.Background(), client.Enrollment{
		Key: newKey(t), Subject: pkix.Name{CommonName: "legacy"}, Challenge: challenge, Cipher: cms.DES, Digest: sha256Hash,
	})
	var f *client.Failure
	if !errors.As(err, &f) || f.FailInfo != scep.BadAlg || !strings.Contains(f.Text, "single DES") {
		t.Fatalf("single DES: %v, want FAILURE badAlg", err)
	}
	if !s.LogContains("cipher=DES-CBC") {
		t.Error("the log does not name the refused cipher")
	}
	if n := len(s.Certificates()); n != 0 {
		t.Fatalf("%d certificates stored after a refused request", n)
	}
}

func TestSingleDESAllowedBySwitch(t *testing.T) {
	s := startServer(t, "SCEPD_ALLOW_DES=1")
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "legacy"}, Cipher: cms.DES, Digest: sha1Hash})
}

// TestMicromdmScepclient enrolls with micromdm's scepclient 2.1 (Debian
// package scep): single DES + SHA-1, POST, Go's pkcs7.
func TestMicromdmScepclient(t *testing.T) {
	bin := sceptest.RequireTool(t, "scepclient", "scep")
	s := startServer(t, "SCEPD_ALLOW_DES=1")
	certs := getCACert(t, s)
	caPEM := s.CACertPEM(t, certs)
	// scepclient encrypts to every certificate of GetCACert unless told
	// which; here it is given the RA's SHA-256 fingerprint, what a chain
	// holding an ECDSA CA needs (TestZeroConfigScepclient goes without).
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}
	fp := sha256.Sum256(ra.Raw)
	run := func(t *testing.T, dir, pw, cn string) (string, error) {
		return sceptest.Run(t, time.Minute, nil, dir, bin, "-server-url", s.URL("default"), "-private-key", filepath.Join(dir, "key.pem"),
			"-challenge", pw, "-cn", cn, "-ca-fingerprint", hex.EncodeToString(fp[:]))
	}
	t.Run("right challenge", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := run(t, dir, challenge, "mm-device"); err != nil {
			t.Fatalf("scepclient: %v\n%s", err, out)
		}
		text := opensslVerify(t, caPEM, filepath.Join(dir, "client.pem"))
		if !strings.Contains(text, "Subject: C = US, O = scep-client, OU = MDM, CN = mm-device") {
			t.Errorf("certificate does not carry the CSR subject:\n%s", text)
		}
	})
	t.Run("wrong challenge", func(t *testing.T) {
		before := len(s.Certificates())
		out, err := run(t, t.TempDir(), "not-the-challenge", "mm-intruder")
		if err == nil || !strings.Contains(out, "badRequest") {
			t.Fatalf("scepclient with a wrong challenge: %v\n%s", err, out)
		}
		if len(s.Certificates()) != before {
			t.Fatal("a certificate was stored for a wrong challenge")
		}
		if strings.Contains(s.Log(), "not-the-challenge") {
			t.Fatal("the submitted password appears in the log")
		}
	})
	// scepclient derives the transactionID from the key: a device whose
	// certificate was revoked enrolls again with its key and the same
	// request. It gets a new certificate, never the revoked one back, and
	// only with the challenge.
	t.Run("same key after revocation", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := run(t, dir, challenge, "mm-revoked"); err != nil {
			t.Fatalf("scepclient: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "client.pem"))
		first := parsePEM(t, b)
		if out, err := cli(t, s, nil, "cert", "revoke", first.SerialNumber.Text(16), "--reason", "cessationOfOperation", "--data", s.DataDir); err != nil {
			t.Fatalf("cert revoke: %v\n%s", err, out)
		}
		// Without client.pem scepclient sends a PKCSReq again, signed
		// with a self-signed certificate of the same key; without
		// csr.pem it makes a new CSR (else it sends the one it kept,
		// challenge included).
		fresh := func() {
			os.Remove(filepath.Join(dir, "client.pem"))
			os.Remove(filepath.Join(dir, "csr.pem"))
		}
		fresh()
		if out, err := run(t, dir, "not-the-challenge", "mm-revoked"); err == nil || !strings.Contains(out, "badRequest") {
			t.Fatalf("scepclient with the key of a revoked certificate and a wrong challenge: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "client.pem")); err == nil {
			t.Fatal("scepclient wrote a certificate for a wrong challenge")
		}
		fresh()
		if out, err := run(t, dir, challenge, "mm-revoked"); err != nil {
			t.Fatalf("scepclient again with the key of a revoked certificate: %v\n%s", err, out)
		}
		b, _ = os.ReadFile(filepath.Join(dir, "client.pem"))
		second := parsePEM(t, b)
		if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Fatalf("scepclient got the revoked certificate %x back", first.SerialNumber)
		}
		opensslVerify(t, caPEM, filepath.Join(dir, "client.pem"))
		// Revoked for key compromise: the key gets no certificate again.
		if out, err := cli(t, s, nil, "cert", "revoke", second.SerialNumber.Text(16), "--reason", "keyCompromise", "--data", s.DataDir); err != nil {
			t.Fatalf("cert revoke: %v\n%s", err, out)
		}
		fresh()
		if out, err := run(t, dir, challenge, "mm-revoked-again"); err == nil || !strings.Contains(out, "badRequest") {
			t.Fatalf("scepclient with a key revoked for compromise: %v\n%s", err, out)
		}
		if !s.LogContains("was revoked for key compromise: make a new key") {
			t.Error("the refusal of a compromised key is not in the log")
		}
	})
	if !s.LogContains("cipher=DES-CBC") || !strings.Contains(s.Log(), "digest=SHA-1") {
		t.Errorf("expected scepclient to use DES-CBC with SHA-1")
	}
}

// TestCertmonger drives certmonger: scep-submit for GetCACaps and
// GetCACert, and its daemon with getcert for enrollment (GET PKIOperation).
func TestCertmonger(t *testing.T) {
	submit := sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
	s := startServer(t)
	url := s.URL("default")

	out, err := sceptest.Run(t, 30*time.Second, nil, "", submit, "-u", url, "-c")
	if err != nil || !strings.Contains(out, "POSTPKIOperation") || !strings.Contains(out, "SHA-256") {
		t.Fatalf("scep-submit -c: %v\n%s", err, out)
	}
	out, err = sceptest.Run(t, 30*time.Second, nil, "", submit, "-u", url, "-C")
	if err != nil || strings.Count(out, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("scep-submit -C: %v\n%s", err, out)
	}
	caPEM := s.CACertPEM(t, getCACert(t, s))

	cm := sceptest.StartCertmonger(t)
	if out, err := cm.Getcert("add-scep-ca", "-c", "scepd", "-u", url, "-N", caPEM); err != nil {
		t.Fatalf("getcert add-scep-ca: %v\n%s", err, out)
	}
	t.Run("right challenge", func(t *testing.T) {
		key, cert := cm.KeyAndCertPaths(t, "good")
		out, err := cm.Getcert("request", "-c", "scepd", "-k", key, "-f", cert, "-N", "CN=cm-device", "-D", "cm-device.example", "-L", challenge, "-w", "-v")
		if err != nil {
			t.Fatalf("getcert request: %v\n%s\n%s", err, out, s.Log())
		}
		text := opensslVerify(t, caPEM, cert)
		if !strings.Contains(text, "Subject: CN = cm-device") || !strings.Contains(text, "DNS:cm-device.example") {
			t.Errorf("certificate lacks the requested subject or SAN:\n%s", text)
		}
	})
	t.Run("wrong challenge", func(t *testing.T) {
		before := len(s.Certificates())
		key, cert := cm.KeyAndCertPaths(t, "bad")
		out, _ := cm.Getcert("request", "-c", "scepd", "-k", key, "-f", cert, "-N", "CN=cm-intruder", "-L", "wrong-challenge", "-w", "-v")
		if !strings.Contains(out, "CA_REJECTED") {
			t.Fatalf("getcert with a wrong challenge did not end CA_REJECTED:\n%s", out)
		}
		if _, err := os.Stat(cert); err == nil {
			t.Error("certmonger wrote a certificate for a wrong challenge")
		}
		if len(s.Certificates()) != before {
			t.Fatal("a certificate was stored for a wrong challenge")
		}
	})
	if !s.LogContains("method=GET") {
		t.Errorf("expected certmonger to use GET PKIOperation")
	}
}

func TestRestartKeepsCAProfileAndCertificates(t *testing.T) {
	s := startServer(t)
	before := getCACert(t, s)
	first := enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "before-restart"}, Cipher: cms.AES128, Digest: sha256Hash})
	s.Restart()
	after := getCACert(t, s)
	if len(after) != len(before) || !after[0].Equal(before[0]) || !after[1].Equal(before[1]) {
		t.Fatal("GetCACert changed across a restart: the CA or RA was recreated")
	}
	if strings.Contains(s.Log(), "created root CA") {
		t.Error("the second start created a CA again")
	}
	second := enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "after-restart"}, Cipher: cms.AES256, Digest: sha512Hash})
	stored := map[string]bool{}
	for _, c := range s.Certificates() {
		stored[c.Serial] = true
	}
	if !stored[first.SerialNumber.Text(16)] || !stored[second.SerialNumber.Text(16)] || len(stored) != 2 {
		t.Fatalf("stored serials %v, want both enrollments", stored)
	}
}

func truncate(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "..."
	}
	return string(b)
}

func newKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// enrollOK enrolls with the Go client and checks the certificate chains to
// the CA from GetCACert and is stored.
func enrollOK(t *testing.T, s *sceptest.Server, e client.Enrollment) *x509.Certificate {
	t.Helper()
	if e.Key == nil {
		e.Key = newKey(t)
	}
	if e.Challenge == "" {
		e.Challenge = challenge
	}
	certs, err := client.New(s.URL("default")).Enroll(context.Background(), e)
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, s.Log())
	}
	ca := getCACert(t, s)
	roots := x509.NewCertPool()
	roots.AddCert(ca[len(ca)-1])
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not chain to the CA: %v", err)
	}
	if _, err := s.Store().GetCertificate(context.Background(), certs[0].SerialNumber.Text(16)); err != nil {
		t.Fatalf("issued certificate not stored: %v", err)
	}
	c := certs[0]
	if c.SerialNumber.BitLen() < 64 || len(c.SubjectKeyId) == 0 || len(c.AuthorityKeyId) == 0 || c.IsCA {
		t.Errorf("serial %d bits, SKI %x, AKI %x, CA %v", c.SerialNumber.BitLen(), c.SubjectKeyId, c.AuthorityKeyId, c.IsCA)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d < 365*24*time.Hour || d > 365*24*time.Hour+time.Hour {
		t.Errorf("validity %v, want one year (plus a few minutes of backdating)", d)
	}
	return c
}

const (
	sha1Hash   = crypto.SHA1
	sha256Hash = crypto.SHA256
	sha512Hash = crypto.SHA512
)
