package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/upstream"
)

func subjectsOf(cs []store.Certificate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Subject+" upstream="+c.Upstream)
	}
	return out
}

// raCredential makes a CA and an RA certificate it issues (clientAuth),
// and writes the CA (PEM), the RA certificate (PEM) and its key (PEM,
// 0600) under dir/name-*.
func raCredential(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " RA CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	raKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	raTmpl := &x509.Certificate{SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: name + " front RA", Organization: []string{"Corp"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{ca.OIDCMCRA()}}
	raDER, err := x509.CreateCertificate(rand.Reader, raTmpl, caCert, &raKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(raKey)
	caFile = writePEM(t, dir, name+"-ca.pem", caDER)
	certFile = writePEM(t, dir, name+"-ra.pem", raDER)
	keyFile = filepath.Join(dir, name+"-ra.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, certFile, keyFile
}

// TestRAModeRACertificateUpstream puts one scepd behind another with an
// RA certificate (EJBCA's RA mode, as scepd builds it): the upstream's
// profile (challenge mode ra) trusts RA certificates of a CA; the front
// signs what it forwards with its RA certificate (upstream.scep.ra). A
// device enrolls at the front with a one-time challenge of the front,
// which the upstream never saw. A front whose RA certificate the upstream
// does not trust gets nothing.
func TestRAModeRACertificateUpstream(t *testing.T) {
	bin := sceptest.RequireTool(t, "scepclient", "scep")
	dir := t.TempDir()
	trustedCA, raCert, raKey := raCredential(t, dir, "trusted")
	_, rogueCert, rogueKey := raCredential(t, dir, "rogue")

	up, upCA := startCorp(t, dir, "Corp RA-mode CA", `{mode: ra, trusted_ra: {ca_file: "`+trustedCA+`"}}`, "", "")
	upCAPEM := writePEM(t, dir, "up-ca.pem", upCA.Raw)
	upName := "scep:" + up.URL("corp")

	front := func(name, cert, key string) *sceptest.Server {
		cfg := filepath.Join(dir, name+".yaml")
		os.WriteFile(cfg, []byte(`
profiles:
  - id: legacy
    allow_des: true  # micromdm's scepclient encrypts in DES
    upstream:
      scep:
        url: "`+up.URL("corp")+`"
        ca_fingerprint: "`+upstream.Fingerprint(upCA.Raw)+`"
        ra: {cert: "`+cert+`", key: "`+key+`"}
    challenge: {mode: dynamic}
`), 0o600)
		return sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, name), Args: []string{"--config", cfg}})
	}
	enroll := func(s *sceptest.Server, cn string) (string, string, error) {
		certs := getCACertOf(t, s.URL("legacy"))
		fp := sha256.Sum256(certs[0].Raw)
		d := t.TempDir()
		out, err := sceptest.Run(t, time.Minute, nil, d, bin, "-server-url", s.URL("legacy"), "-private-key", filepath.Join(d, "key.pem"),
			"-challenge", mintChallenge(t, s, "legacy"), "-cn", cn, "-ca-fingerprint", hex.EncodeToString(fp[:]))
		return filepath.Join(d, "client.pem"), out, err
	}

	good := front("front", raCert, raKey)
	certPEM, out, err := enroll(good, "ra-cert-device")
	if err != nil {
		t.Fatalf("scepclient: %v\n%s\nfront:\n%s\nupstream:\n%s", err, out, good.Log(), up.Log())
	}
	if text := opensslVerify(t, upCAPEM, certPEM); !strings.Contains(text, "CN = ra-cert-device") {
		t.Errorf("certificate lacks the CSR's subject:\n%s", text)
	}
	stored := certsOf(good, "legacy")
	if len(stored) != 1 || stored[0].Upstream != upName || !strings.HasPrefix(stored[0].Subject, "CN=ra-cert-device,") {
		t.Fatalf("front inventory: %d certificates (%v), want CN=ra-cert-device marked %q", len(stored), subjectsOf(stored), upName)
	}
	if n := len(certsOf(up, "corp")); n != 1 {
		t.Fatalf("the upstream stored %d certificates, want 1", n)
	}
	// The upstream's audit names the RA that authorised the request.
	events, err := up.Store().ListAudit(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var named bool
	for _, e := range events {
		if e.Action == "enroll" && e.Outcome == "issued" {
			named = e.Details["ra_subject"] == "CN=trusted front RA,O=Corp" && e.Details["ra_serial"] == "4d" && strings.HasPrefix(e.Details["ra_fingerprint"], "sha256:")
			if !named {
				t.Errorf("upstream enroll audit details %v, want the RA named", e.Details)
			}
		}
	}
	if !named {
		t.Fatal("no enroll event at the upstream")
	}
	// Renewal: authorised at the front by the upstream's certificate,
	// forwarded as a PKCSReq signed by the RA certificate.
	key := newKey(t)
	first, err := client.New(good.URL("legacy")).Enroll(context.Background(), client.Enrollment{Key: key, Subject: subjectCN("ra-cert-renew"),
		Challenge: mintChallenge(t, good, "legacy"), Cipher: cms.AES256, Digest: crypto.SHA256})
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, good.Log())
	}
	renewed, err := client.New(good.URL("legacy")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: subjectCN("ra-cert-renew"),
		Cipher: cms.AES256, Digest: crypto.SHA256, SignWith: first[0], SignKey: key, Renewal: true})
	if err != nil {
		t.Fatalf("renewal: %v\n%s", err, good.Log())
	}
	if err := renewed[0].CheckSignatureFrom(upCA); err != nil {
		t.Fatal("the renewed certificate is not the upstream's")
	}
	if n := len(certsOf(up, "corp")); n != 3 {
		t.Fatalf("the upstream stored %d certificates, want 3", n)
	}
	good.Stop()

	// An RA certificate of a CA the upstream does not trust: the device
	// hears FAILURE, the upstream stores nothing.
	rogue := front("rogue", rogueCert, rogueKey)
	if _, out, err := enroll(rogue, "rogue-device"); err == nil {
		t.Fatalf("scepclient through an untrusted RA succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "fail") {
		t.Errorf("scepclient output does not say FAILURE:\n%s", out)
	}
	if n := len(certsOf(up, "corp")); n != 3 {
		t.Fatalf("the upstream stored %d certificates, want still 3", n)
	}
	if len(certsOf(rogue, "legacy")) != 0 {
		t.Fatal("the rogue front stored a certificate")
	}
	if !rogue.LogContains("not a registration authority this profile trusts") {
		t.Errorf("the front's log does not pass on the upstream's reason:\n%s", rogue.Log())
	}
}

// TestRAModeRevokedRA: an RA certificate the upstream scepd issued itself
// (a profile whose policy adds id-kp-cmcRA, under a CA its mode-ra profile
// trusts) authorises requests until it is revoked there; after `scepd
// cert revoke` at the upstream, the front's requests are refused.
func TestRAModeRevokedRA(t *testing.T) {
	dir := t.TempDir()
	upCfg := filepath.Join(dir, "upstream.yaml")
	os.WriteFile(upCfg, []byte(`
cas:
  - id: corp
    create: {subject: "CN=Corp RA-mode CA"}
  - id: ras
    create: {subject: "CN=Corp RA issuing CA"}
profiles:
  - id: ras
    ca: ras
    challenge: {password_env: E2E_RAS}
    policy: {key_usage: [digitalSignature, keyEncipherment], ext_key_usage: [clientAuth, "1.3.6.1.5.5.7.3.28"]}
`), 0o600)
	env := []string{"E2E_RAS=" + challenge}
	up := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "up"), Args: []string{"--config", upCfg}, Env: env})
	rasChain := getCACertOf(t, up.URL("ras"))
	raCA := writePEM(t, dir, "ras-ca.pem", rasChain[len(rasChain)-1].Raw)
	// The RA's certificate, from the upstream's own profile.
	raKey := newKey(t)
	issued, err := client.New(up.URL("ras")).Enroll(context.Background(), client.Enrollment{Key: raKey, Subject: subjectCN("front RA"),
		Challenge: challenge, Cipher: cms.AES256, Digest: crypto.SHA256})
	if err != nil {
		t.Fatalf("the RA's certificate: %v\n%s", err, up.Log())
	}
	raCert := writePEM(t, dir, "ra.pem", issued[0].Raw)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(raKey)
	raKeyFile := filepath.Join(dir, "ra.key")
	os.WriteFile(raKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	// The upstream's devices profile trusts that CA's RAs.
	cfg, _ := os.ReadFile(upCfg)
	os.WriteFile(upCfg, append(cfg, []byte(`  - id: corp
    ca: corp
    challenge: {mode: ra, trusted_ra: {ca_file: "`+raCA+`"}}
`)...), 0o600)
	up.Restart()
	upCerts := getCACertOf(t, up.URL("corp"))
	frontCfg := filepath.Join(dir, "front.yaml")
	os.WriteFile(frontCfg, []byte(`
profiles:
  - id: legacy
    upstream:
      scep:
        url: "`+up.URL("corp")+`"
        ca_fingerprint: "`+upstream.Fingerprint(upCerts[len(upCerts)-1].Raw)+`"
        ra: {cert: "`+raCert+`", key: "`+raKeyFile+`"}
    challenge: {mode: dynamic}
`), 0o600)
	front := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "front"), Args: []string{"--config", frontCfg}})
	enroll := func(cn string) error {
		_, err := client.New(front.URL("legacy")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: subjectCN(cn),
			Challenge: mintChallenge(t, front, "legacy"), Cipher: cms.AES256, Digest: crypto.SHA256})
		return err
	}
	if err := enroll("before-revocation"); err != nil {
		t.Fatalf("through the RA before its revocation: %v\nfront:\n%s\nupstream:\n%s", err, front.Log(), up.Log())
	}
	if out, err := cli(t, up, env, append([]string{"cert", "revoke", issued[0].SerialNumber.Text(16)}, dbArgs(up)...)...); err != nil {
		t.Fatalf("revoking the RA's certificate: %v\n%s", err, out)
	}
	err = enroll("after-revocation")
	var f *client.Failure
	if !errors.As(err, &f) || !strings.Contains(f.Text, "is revoked") {
		t.Fatalf("through the revoked RA: %v, want a FAILURE saying it is revoked\n%s", err, front.Log())
	}
	if n := len(certsOf(up, "corp")); n != 1 {
		t.Fatalf("the upstream stored %d device certificates, want 1", n)
	}
}
