//go:build pkcs11

package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestPKCS11: with a SoftHSM2 token configured, the zero-config start
// generates the CA (ECDSA) and RA (RSA) keys in the token; enrollment
// (RA unwrap and CertRep signature, CA certificate signature), revocation by
// the CLI and CRL signing all use the token; no key file is written; a
// restart finds the keys again; without the token the server refuses to
// start and says why.
func TestPKCS11(t *testing.T) {
	h := sceptest.NewSoftHSM(t)
	env := append(h.Env(), "SCEPD_CHALLENGE="+challenge)
	s := sceptest.Start(t, sceptest.Options{Env: env})
	cas, err := s.Store().ListCAs(context.Background())
	if err != nil || len(cas) != 1 || !strings.HasPrefix(cas[0].KeyRef, "pkcs11:object=") {
		t.Fatalf("CA rows %+v %v; want one key in the token", cas, err)
	}
	profiles, err := s.Store().ListProfiles(context.Background())
	if err != nil || len(profiles) != 1 || !strings.HasPrefix(profiles[0].RAKeyRef, "pkcs11:object=") {
		t.Fatalf("profile rows %v; want the RA key in the token", err)
	}
	if files, _ := filepath.Glob(filepath.Join(s.DataDir, "*", "*.key")); len(files) > 0 {
		t.Fatalf("key files written although a token is configured: %v", files)
	}
	if more, _ := filepath.Glob(filepath.Join(s.DataDir, "*", "*", "*.key")); len(more) > 0 {
		t.Fatalf("key files written although a token is configured: %v", more)
	}

	chain := getCACert(t, s)
	root := chain[len(chain)-1]
	cert := enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "hsm-device"}, Cipher: cms.AES256, Digest: crypto.SHA256})
	checkChain(t, cert, root, nil)

	serial := cert.SerialNumber.Text(16)
	if out, err := cli(t, s, env, "cert", "revoke", serial, "--reason", "keyCompromise", "--data", s.DataDir); err != nil {
		t.Fatalf("scepd cert revoke with the token: %v\n%s", err, out)
	}
	s.Restart()
	crl, err := x509.ParseRevocationList(httpGet(t, s.BaseURL()+"/crl/default.crl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		t.Fatalf("the CRL is not signed by the token's CA key: %v", err)
	}
	found := false
	for _, e := range crl.RevokedCertificateEntries {
		found = found || e.SerialNumber.Cmp(cert.SerialNumber) == 0
	}
	if !found {
		t.Fatal("the revoked certificate is not on the CRL")
	}
	// After the restart the keys are found in the token by reference.
	again := enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "hsm-device-2"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	checkChain(t, again, root, nil)
	s.Stop()

	out, err := sceptest.Run(t, 30*time.Second, []string{"SCEPD_CHALLENGE=" + challenge}, "", sceptest.Binary(t),
		"serve", "--addr", "127.0.0.1:0", "--data", s.DataDir)
	if err == nil || !strings.Contains(out, "SCEPD_PKCS11_MODULE") {
		t.Fatalf("serving token keys without the token: %v\n%s", err, out)
	}
}
