package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
	"github.com/scepd/scepd/internal/upstream"
)

// TestRAModeUpstreamPending: the upstream (a second scepd whose profile
// needs manual approval) holds the request; the device hears PENDING, its
// polls reach the upstream through the front, and once the upstream's
// operator approves, the device's next poll gets the certificate, also
// when the front restarted meanwhile.
func TestRAModeUpstreamPending(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { raPending(t) })
	t.Run("postgres", func(t *testing.T) { raPending(t, "--database", pgtest.Schema(t)) })
}

// raChain is a front scepd in RA mode (profile legacy) before an upstream
// scepd (profile corp, static challenge shared), both on SQLite unless
// frontArgs say otherwise.
type raChain struct {
	up, front *sceptest.Server
	upCA, ra  *x509.Certificate
	url       string // the front's SCEP URL
}

const shared = "shared-static-challenge" // the upstream's and the front's static challenge

// startRAChain starts the pair: upProfile adds settings to the upstream's
// profile, frontSCEP to the front's upstream.scep (YAML flow-map entries
// after ", "); upAddr fixes the upstream's address (for a restart).
func startRAChain(t *testing.T, upProfile, frontSCEP string, upAddr string, frontArgs ...string) raChain {
	t.Helper()
	dir := t.TempDir()
	env := []string{"E2E_SHARED=" + shared}
	var c raChain
	c.up, c.upCA = startCorp(t, dir, "Corp Upstream CA", "{password_env: E2E_SHARED}", upProfile, upAddr, env...)
	frontCfg := filepath.Join(dir, "front.yaml")
	os.WriteFile(frontCfg, []byte(`
profiles:
  - id: legacy
    upstream:
      scep: {url: "`+c.up.URL("corp")+`", ca_fingerprint: "`+upstream.Fingerprint(c.upCA.Raw)+`"`+frontSCEP+`}
    challenge: {password_env: E2E_SHARED}
`), 0o600)
	c.front = sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "front"), Args: append([]string{"--config", frontCfg}, frontArgs...), Env: env})
	c.url = c.front.URL("legacy")
	c.ra = getCACertOf(t, c.url)[0]
	return c
}

// startCorp starts an upstream scepd in dir/up (at addr, when set) with
// CA corp (CN=subject) and profile corp under it: challenge is the
// profile's challenge (a YAML flow map), extra more of its settings (YAML
// lines indented as its keys). It returns the server and corp's CA
// certificate (the pinned one of a front).
func startCorp(t *testing.T, dir, subject, challenge, extra, addr string, env ...string) (*sceptest.Server, *x509.Certificate) {
	t.Helper()
	cfg := filepath.Join(dir, "upstream.yaml")
	if err := os.WriteFile(cfg, []byte(`
cas:
  - id: corp
    create: {subject: "CN=`+subject+`"}
profiles:
  - id: corp
    ca: corp
    challenge: `+challenge+`
`+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	up := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "up"), Addr: addr, Args: []string{"--config", cfg}, Env: env})
	certs := getCACertOf(t, up.URL("corp"))
	return up, certs[len(certs)-1]
}

// enrollHeld enrolls a device (CN cn) through the front under txID,
// expects PENDING, and returns how that device polls (at the front's
// current address).
func (c raChain) enrollHeld(t *testing.T, cn, txID string) (poll func() ([]*x509.Certificate, error)) {
	t.Helper()
	ctx := context.Background()
	key := newKey(t)
	subject := subjectCN(cn)
	_, err := client.New(c.url).Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Challenge: shared, Cipher: cms.AES128, Digest: crypto.SHA256,
		TransactionID: txID, Recipient: c.ra})
	if !errors.Is(err, client.ErrPending) {
		t.Fatalf("enroll: %v, want PENDING\n%s", err, c.front.Log())
	}
	self, err := client.SelfSigned(key, subject)
	if err != nil {
		t.Fatal(err)
	}
	who := client.Requester{Cert: self, Key: key}
	return func() ([]*x509.Certificate, error) {
		return client.New(c.front.URL("legacy")).Poll(ctx, who, c.upCA, subject, txID, c.ra, cms.AES128)
	}
}

// raPending runs the test with the front's store named by frontArgs.
func raPending(t *testing.T, frontArgs ...string) {
	chain := startRAChain(t, "    approval: manual\n", "", "", frontArgs...)
	up, front, upCA := chain.up, chain.front, chain.upCA
	const txID = "RA-PENDING-1"
	poll := chain.enrollHeld(t, "ra-pending-device", txID)
	if _, err := poll(); !errors.Is(err, client.ErrPending) {
		t.Fatalf("poll before the upstream approved: %v, want PENDING", err)
	}
	// The front restarts while the upstream holds the request: its polls
	// upstream are signed as the PKCSReq was (the requester certificate
	// over the profile's persisted RA key), which the upstream checks.
	front.Restart() // on a new port: poll asks it there
	approve(t, up, "corp", upstream.UpstreamTransactionID(txID))
	got, err := poll()
	if err != nil {
		t.Fatalf("poll after the upstream approved: %v\n%s", err, front.Log())
	}
	if err := got[0].CheckSignatureFrom(upCA); err != nil {
		t.Fatalf("the certificate is not the upstream's: %v", err)
	}
	stored := certsOf(front, "legacy")
	if len(stored) != 1 || stored[0].Upstream != "scep:"+up.URL("corp") {
		t.Fatalf("front inventory: %+v", stored)
	}
}

// TestRAModeUpstreamDownPending: with when_unavailable: pending, a request
// arriving while the upstream is down is held PENDING instead of failing;
// the device's polls submit it again, and once the upstream is back the
// next poll gets its certificate.
func TestRAModeUpstreamDownPending(t *testing.T) {
	chain := startRAChain(t, "", ", timeout: 2s, when_unavailable: pending", sceptest.FreeAddr(t))
	up, front, upCA := chain.up, chain.front, chain.upCA
	up.Stop()
	poll := chain.enrollHeld(t, "ra-down-device", "RA-DOWN-1")
	if _, err := poll(); !errors.Is(err, client.ErrPending) {
		t.Fatalf("poll while the upstream is still down: %v, want PENDING\n%s", err, front.Log())
	}
	if n := len(certsOf(front, "legacy")); n != 0 {
		t.Fatalf("%d certificates stored while the upstream was down", n)
	}
	// The operator sees what it waits for, and cannot approve it here.
	out, err := cli(t, front, nil, append([]string{"request", "list", "--profile", "legacy", "-o", "json"}, dbArgs(front)...)...)
	if err != nil || !strings.Contains(out, `"waits_for": "upstream"`) {
		t.Fatalf("request list while the upstream is down: %v\n%s", err, out)
	}
	out, err = cli(t, front, nil, append([]string{"request", "approve", "--profile", "legacy", "RA-DOWN-1"}, dbArgs(front)...)...)
	if err == nil || !strings.Contains(out, "waits for the upstream CA") || strings.Contains(out, "policy") {
		t.Fatalf("approving a request held for the upstream: %v\n%s", err, out)
	}
	// The console says so too, and offers only Reject.
	web := consoleSignIn(t, front.BaseURL(), newToken(t, front, "operator"))
	for _, path := range []string{"/console/requests", "/console/requests/legacy/RA-DOWN-1"} {
		code, page := web.get(path)
		if code != 200 || !strings.Contains(page, "the device's next poll asks it") || strings.Contains(page, "/RA-DOWN-1/approve") ||
			!strings.Contains(page, "/RA-DOWN-1/reject") {
			t.Fatalf("%s while the upstream is down: HTTP %d\n%s", path, code, page)
		}
	}

	up.Restart()
	got, err := poll()
	if err != nil {
		t.Fatalf("poll after the upstream came back: %v\n%s", err, front.Log())
	}
	if err := got[0].CheckSignatureFrom(upCA); err != nil {
		t.Fatalf("the certificate is not the upstream's: %v", err)
	}
	stored := certsOf(front, "legacy")
	if len(stored) != 1 || stored[0].Serial != got[0].SerialNumber.Text(16) || stored[0].Upstream != "scep:"+up.URL("corp") {
		t.Fatalf("front inventory: %+v", stored)
	}
	// The upstream saw the request once it was back, and issued it once.
	if n := len(up.Certificates()); n != 1 {
		t.Fatalf("the upstream stored %d certificates, want 1", n)
	}
}
