package e2e

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/upstream"
)

// TestRAModeScepserverUpstream puts scepd in front of micromdm's
// scepserver (RA mode): devices enroll at scepd with one-time challenges
// of scepd's; the certificates come from scepserver's CA.
func TestRAModeScepserverUpstream(t *testing.T) {
	// -allowrenew 0: scepserver otherwise refuses a second certificate for
	// a subject until 14 days before the first expires (renewal below).
	up := sceptest.StartScepserver(t, "-allowrenew", "0")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	os.WriteFile(cfg, []byte(`
default_profile: legacy
profiles:
  - id: legacy
    allow_des: true
    upstream:
      scep: {url: "`+up.URL+`", ca_fingerprint: "`+upstream.Fingerprint(up.CACert.Raw)+`", timeout: 5s}
    challenge: {mode: dynamic}
`), 0o600)
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", cfg}})
	url := s.URL("legacy")
	upName := "scep:" + up.URL
	upCA := writePEM(t, dir, "upstream-ca.pem", up.CACert.Raw)

	// GetCACert: scepd's RA, then the upstream's CA.
	certs := getCACertOf(t, url)
	if len(certs) != 2 || certs[0].IsCA || !certs[1].Equal(up.CACert) {
		t.Fatalf("GetCACert: %d certificates, want scepd's RA and the upstream CA", len(certs))
	}
	ra := certs[0]

	t.Run("scepd client", func(t *testing.T) {
		key := newKey(t)
		got, err := client.New(url).Enroll(context.Background(), client.Enrollment{Key: key, Subject: subjectCN("ra-go-device"),
			Challenge: mintChallenge(t, s, "legacy"), Cipher: cms.AES256, Digest: crypto.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		opensslVerify(t, upCA, writePEM(t, t.TempDir(), "c.pem", got[0].Raw))
		// Renewal: authorised by the upstream's certificate, no challenge;
		// forwarded upstream as a PKCSReq of scepd's.
		renewed, err := client.New(url).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: subjectCN("ra-go-device"),
			Cipher: cms.AES256, Digest: crypto.SHA256, SignWith: got[0], SignKey: key, Renewal: true})
		if err != nil {
			t.Fatalf("renewal: %v\n%s", err, s.Log())
		}
		if err := renewed[0].CheckSignatureFrom(up.CACert); err != nil {
			t.Fatal("the renewed certificate is not the upstream's")
		}
		var found bool
		for _, c := range certsOf(s, "legacy") {
			found = found || (c.Serial == renewed[0].SerialNumber.Text(16) && c.RenewedSerial == got[0].SerialNumber.Text(16))
		}
		if !found {
			t.Fatal("the renewal is not stored as renewing the first certificate")
		}
	})
	t.Run("micromdm scepclient", func(t *testing.T) {
		bin := sceptest.RequireTool(t, "scepclient", "scep")
		fp := sha256.Sum256(ra.Raw)
		d := t.TempDir()
		out, err := sceptest.Run(t, time.Minute, nil, d, bin, "-server-url", url, "-private-key", filepath.Join(d, "key.pem"),
			"-challenge", mintChallenge(t, s, "legacy"), "-cn", "ra-mm-device", "-ca-fingerprint", hex.EncodeToString(fp[:]))
		if err != nil {
			t.Fatalf("scepclient: %v\n%s\n%s", err, out, s.Log())
		}
		text := opensslVerify(t, upCA, filepath.Join(d, "client.pem"))
		if !strings.Contains(text, "CN = ra-mm-device") {
			t.Errorf("certificate lacks the CSR's subject:\n%s", text)
		}
	})
	t.Run("certmonger", func(t *testing.T) {
		sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
		// certmonger verifies the CertRep's signer: it trusts the upstream
		// CA and scepd's RA issuer (served at /ca/<profile>-ra.pem).
		resp, err := http.Get(s.BaseURL() + "/ca/legacy-ra.pem")
		if err != nil {
			t.Fatal(err)
		}
		raIssuer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		upPEM, _ := os.ReadFile(upCA)
		trust := filepath.Join(t.TempDir(), "trust.pem")
		os.WriteFile(trust, append(upPEM, raIssuer...), 0o644)
		cm := sceptest.StartCertmonger(t)
		if out, err := cm.Getcert("add-scep-ca", "-c", "scepd-ra", "-u", url, "-N", trust); err != nil {
			t.Fatalf("getcert add-scep-ca: %v\n%s", err, out)
		}
		key, cert := cm.KeyAndCertPaths(t, "ra")
		out, err := cm.Getcert("request", "-c", "scepd-ra", "-k", key, "-f", cert, "-N", "CN=ra-cm-device", "-L", mintChallenge(t, s, "legacy"), "-w", "-v")
		if err != nil {
			t.Fatalf("getcert request: %v\n%s\n%s", err, out, s.Log())
		}
		opensslVerify(t, upCA, cert)
	})

	// Inventory, audit: marked with the upstream.
	stored := certsOf(s, "legacy")
	if len(stored) == 0 {
		t.Fatal("no certificate in the inventory")
	}
	for _, c := range stored {
		if c.Upstream != upName {
			t.Errorf("certificate %s (%s) is marked %q, want %q", c.Serial, c.Subject, c.Upstream, upName)
		}
	}
	out, err := cli(t, s, nil, append([]string{"cert", "list", "--all", "-o", "json"}, dbArgs(s)...)...)
	if err != nil || !strings.Contains(out, `"upstream":"`+upName+`"`) && !strings.Contains(out, `"upstream": "`+upName+`"`) {
		t.Fatalf("cert list does not name the upstream: %v\n%s", err, out)
	}
	events, _ := s.Store().ListAudit(context.Background(), 100)
	issued := 0
	for _, e := range events {
		if e.Action == "enroll" && e.Outcome == "issued" && e.Details["upstream"] == upName {
			issued++
		}
	}
	if issued != len(stored) {
		t.Errorf("%d issued audit events name the upstream, want %d", issued, len(stored))
	}

	// Revocation is the upstream's business: refused, saying so.
	out, err = cli(t, s, nil, append([]string{"cert", "revoke", stored[0].Serial}, dbArgs(s)...)...)
	if err == nil || !strings.Contains(out, "cannot revoke") {
		t.Fatalf("revoking an upstream certificate: %v\n%s", err, out)
	}

	// A wrong front challenge never reaches the upstream.
	serial, logLen := up.Serial(), len(up.Log())
	_, err = client.New(url).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: subjectCN("ra-intruder"),
		Challenge: "not-a-minted-challenge", Cipher: cms.AES256, Digest: crypto.SHA256})
	var f *client.Failure
	if !errors.As(err, &f) {
		t.Fatalf("wrong challenge: %v, want a SCEP FAILURE", err)
	}
	if up.Serial() != serial || strings.Contains(up.Log()[logLen:], "PKIOperation") {
		t.Fatal("a request with a wrong front challenge reached the upstream")
	}

	metrics, err := sceptest.HTTPGet(s.BaseURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`scepd_upstream_requests_total{outcome="issued",upstream="%s"} %d`, upName, len(stored))
	if !strings.Contains(string(metrics), want) {
		var got []string
		for _, l := range strings.Split(string(metrics), "\n") {
			if strings.HasPrefix(l, "scepd_upstream_requests_total") {
				got = append(got, l)
			}
		}
		t.Errorf("/metrics lacks %s; it has %q", want, got)
	}

	// The upstream stopped: FAILURE naming it, and /readyz says why.
	up.Stop()
	_, err = client.New(url).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: subjectCN("ra-late"),
		Challenge: mintChallenge(t, s, "legacy"), Cipher: cms.AES256, Digest: crypto.SHA256})
	if !errors.As(err, &f) || !strings.Contains(f.Text, "upstream CA did not issue") {
		t.Fatalf("enrollment with the upstream stopped: %v, want a SCEP FAILURE naming the upstream", err)
	}
	resp, err := http.Get(s.BaseURL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Anyone may ask /readyz: the answer names the profile, the log why
	// (the upstream's address is the operator's).
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "profile legacy") || strings.Contains(string(body), "127.0.0.1") {
		t.Fatalf("/readyz with the upstream stopped: %d %s", resp.StatusCode, body)
	}
	if !s.LogContains("unreachable") {
		t.Fatalf("the log does not say why /readyz failed:\n%s", s.Log())
	}
}

func getCACertOf(t *testing.T, url string) []*x509.Certificate {
	t.Helper()
	certs, err := client.New(url).GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func subjectCN(cn string) pkix.Name { return pkix.Name{CommonName: cn} }
