package e2e

import (
	"context"
	"crypto"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/upstream"
)

// TestRAModeNDESUpstream: the upstream (a second scepd) authorises with
// one-time challenges from its NDES page. Each one-time challenge of the
// front is fetched from that page, so the device's CSR carries a
// challenge both accept; scepd's own client and certmonger enroll.
func TestRAModeNDESUpstream(t *testing.T) {
	const ndesPass = "upstream-ndes-password"
	dir := t.TempDir()
	up, upCA := startCorp(t, dir, "Corp NDES CA", "{mode: dynamic, ndes: {username: frontra, password_env: E2E_NDES_PASSWORD}}", "", "",
		"E2E_NDES_PASSWORD="+ndesPass)
	page := up.URL("corp")[:strings.LastIndex(up.URL("corp"), "/")] + "/mscep_admin/"

	frontCfg := filepath.Join(dir, "front.yaml")
	os.WriteFile(frontCfg, []byte(`
profiles:
  - id: legacy
    upstream:
      scep:
        url: "`+up.URL("corp")+`"
        ca_fingerprint: "`+upstream.Fingerprint(upCA.Raw)+`"
        ndes: {url: "`+page+`", username: frontra, password_env: E2E_UP_NDES}
    challenge:
      mode: dynamic
      ndes: {username: mdm, password_env: E2E_FRONT_NDES}
`), 0o600)
	env := []string{"E2E_UP_NDES=" + ndesPass, "E2E_FRONT_NDES=front-ndes-password"}
	front := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "front"), Args: []string{"--config", frontCfg}, Env: env})
	url := front.URL("legacy")
	mint := func(t *testing.T) string {
		t.Helper()
		out, err := cli(t, front, env, append([]string{"challenge", "create", "--profile", "legacy"}, dbArgs(front)...)...)
		if err != nil {
			t.Fatalf("challenge create: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	upCAPEM := writePEM(t, dir, "up-ca.pem", upCA.Raw)

	t.Run("scepd client", func(t *testing.T) {
		got, err := client.New(url).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: subjectCN("ndes-go-device"),
			Challenge: mint(t), Cipher: cms.AES256, Digest: crypto.SHA256})
		if err != nil {
			t.Fatalf("%v\n%s", err, front.Log())
		}
		opensslVerify(t, upCAPEM, writePEM(t, t.TempDir(), "c.pem", got[0].Raw))
	})
	t.Run("certmonger", func(t *testing.T) {
		sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
		raIssuer, err := sceptest.HTTPGet(front.BaseURL() + "/ca/legacy-ra.pem")
		if err != nil {
			t.Fatal(err)
		}
		upPEM, _ := os.ReadFile(upCAPEM)
		trust := filepath.Join(t.TempDir(), "trust.pem")
		os.WriteFile(trust, append(upPEM, raIssuer...), 0o644)
		cm := sceptest.StartCertmonger(t)
		if out, err := cm.Getcert("add-scep-ca", "-c", "scepd-ndes", "-u", url, "-N", trust); err != nil {
			t.Fatalf("getcert add-scep-ca: %v\n%s", err, out)
		}
		key, cert := cm.KeyAndCertPaths(t, "ndes")
		if out, err := cm.Getcert("request", "-c", "scepd-ndes", "-k", key, "-f", cert, "-N", "CN=ndes-cm-device", "-L", mint(t), "-w", "-v"); err != nil {
			t.Fatalf("getcert request: %v\n%s\n%s", err, out, front.Log())
		}
		opensslVerify(t, upCAPEM, cert)
	})
	if n, m := len(certsOf(front, "legacy")), len(certsOf(up, "corp")); n != 2 || m != 2 {
		t.Fatalf("front stored %d, upstream issued %d; want 2 and 2", n, m)
	}

	// The front's own NDES page names the CA that issues the devices'
	// certificates (the upstream's), whose thumbprint MDMs pin, not the
	// local issuer of the front's RA certificate.
	code, body, _ := fetchNDES(t, front.URL("legacy")[:strings.LastIndex(front.URL("legacy"), "/")]+"/mscep_admin/", "mdm", "front-ndes-password")
	thumb := sha1.Sum(upCA.Raw)
	if code != 200 || !strings.Contains(body, strings.ToUpper(hex.EncodeToString(thumb[:]))) {
		t.Fatalf("the front's NDES page: %d, want the upstream CA's thumbprint\n%s", code, body)
	}

	// A wrong front challenge never reaches the upstream.
	before := strings.Count(up.Log(), "msg=PKIOperation")
	_, err := client.New(url).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: subjectCN("ndes-intruder"),
		Challenge: "0123456789abcdef", Cipher: cms.AES256, Digest: crypto.SHA256})
	var f *client.Failure
	if !errors.As(err, &f) {
		t.Fatalf("wrong challenge: %v", err)
	}
	if strings.Count(up.Log(), "msg=PKIOperation") != before || len(certsOf(up, "corp")) != 2 {
		t.Fatal("a request with a wrong front challenge reached the upstream")
	}

	// The upstream's page down: minting fails, saying why.
	up.Stop()
	out, err := cli(t, front, env, append([]string{"challenge", "create", "--profile", "legacy"}, dbArgs(front)...)...)
	if err == nil || !strings.Contains(out, "NDES page") {
		t.Fatalf("minting with the upstream down: %v\n%s", err, out)
	}
}
