package e2e

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"io/fs"
	"net/http"
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

// TestMalformedSANRefused: a CSR whose DNS SAN is not a host name gets a
// CertRep FAILURE badRequest from the real binary, under a pattern that
// "*" used to stretch over it; nothing is issued, and a well-formed name
// under the same pattern still is.
func TestMalformedSANRefused(t *testing.T) {
	s := startConfigured(t)
	for _, bad := range [][]string{
		{"<svg onload=alert(3)>.laptops.e2e.test"},
		{"a b.laptops.e2e.test"},
		{"*.laptops.e2e.test"},
	} {
		_, err := client.New(s.URL("laptops")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "lap-x"},
			DNSNames: bad, Challenge: laptopChallenge, Cipher: cms.AES128, Digest: crypto.SHA256})
		if fi := failInfo(err); fi != scep.BadRequest {
			t.Errorf("DNS SAN %q: %v (failInfo %s), want FAILURE badRequest", bad[0], err, fi)
		}
	}
	if certs := s.Certificates(); len(certs) != 0 {
		t.Fatalf("%d certificates issued for malformed SANs: %v", len(certs), certs[0].SANs)
	}
	events, _ := s.Store().ListAudit(context.Background(), 100)
	rejected := 0
	for _, e := range events {
		if e.Action == "enroll" && e.Outcome == "rejected" && strings.Contains(e.Details["reason"], "not a valid host name") {
			rejected++
		}
	}
	if rejected != 2 {
		t.Errorf("%d rejections audited as invalid host names, want 2", rejected)
	}
	certs, err := client.New(s.URL("laptops")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "lap-ok"},
		DNSNames: []string{"lap-ok.laptops.e2e.test"}, Challenge: laptopChallenge, Cipher: cms.AES128, Digest: crypto.SHA256})
	if err != nil || len(certs[0].DNSNames) != 1 {
		t.Fatalf("a well-formed name: %v", err)
	}
}

// TestLockoutSparesTokens: ten wrong NDES passwords from an address (a NAT
// an MDM shares) lock the password path out of the profile's challenge
// endpoints, but a request with a valid API token from the same address
// is still served, on the NDES page (Basic, token as password) and on the
// Jamf webhook (Bearer); an invalid token is not.
func TestLockoutSparesTokens(t *testing.T) {
	s := startMDM(t, "http://127.0.0.1:1", "http://127.0.0.1:1")
	tok, err := cli(t, s, nil, "token", "create", "--role", "mdm", "--profile", "ndes", "--name", "jamf", "--data", s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	page := s.BaseURL() + "/certsrv/mscep_admin/"
	for i := range 10 {
		if code, _, _ := fetchNDES(t, page, "mdmadmin", fmt.Sprintf("guess-%d", i)); code != 401 {
			t.Fatalf("wrong password %d: %d", i+1, code)
		}
	}
	if code, _, _ := fetchNDES(t, page, "mdmadmin", ndesPassword); code != http.StatusTooManyRequests {
		t.Fatalf("the right password after the lockout: %d, want 429", code)
	}
	if code, body, _ := fetchNDES(t, page, "okta", tok); code != 200 || ndesPasswordRE.FindStringSubmatch(body) == nil {
		t.Errorf("NDES page with a valid token from the locked-out address: %d, want 200 with a password", code)
	}
	jamf := func(auth string) int {
		req, _ := http.NewRequest("POST", s.BaseURL()+"/scep/ndes/jamf-challenge", strings.NewReader(`{"webhook": {"webhookEvent": "SCEPChallenge"}, "event": {"device": {"serialNumber": "C02NAT"}}}`))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := jamf("Bearer " + tok); code != 200 {
		t.Errorf("Jamf webhook with a valid token from the locked-out address: %d, want 200", code)
	}
	// Auth schemes are case-insensitive: a token sent as "bearer" is the
	// token, not a wrong password.
	if code := jamf("bearer " + tok); code != 200 {
		t.Errorf("Jamf webhook with a valid token sent as bearer: %d, want 200", code)
	}
	if code := jamf("Bearer " + tok[:len(tok)-4] + "AAAA"); code != http.StatusTooManyRequests {
		t.Errorf("Jamf webhook with an invalid token from the locked-out address: %d, want 429", code)
	}
	// A valid token of another profile is refused, and the refusal is
	// audited as the REST API audits one, naming the token.
	other, err := cli(t, s, nil, "token", "create", "--role", "mdm", "--profile", "entity", "--name", "elsewhere", "--data", s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := fetchNDES(t, page, "okta", strings.TrimSpace(other)); code != http.StatusForbidden {
		t.Errorf("NDES page with another profile's token: %d, want 403", code)
	}
	events, err := s.Store().ListAudit(context.Background(), 20)
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range events {
		audited = audited || (e.Action == "authz" && e.Outcome == "denied" && e.Object == "profile:ndes" && strings.Contains(e.Details["token"], "elsewhere"))
	}
	if !audited {
		t.Errorf("the refused token is not audited among the %d newest events", len(events))
	}
}

// TestDataDirModes: after a zero-config start, the data directory (and
// any directory in it) is 0700 and every file in it, the SQLite database
// with its -wal and -shm files and the CA and RA keys, is 0600; a data
// directory open to other users is refused with the command that fixes it.
func TestDataDirModes(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{})
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "modes"}, Challenge: s.Challenge, Cipher: cms.AES128, Digest: crypto.SHA256})
	seen := map[string]bool{}
	err := filepath.WalkDir(s.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil // a -shm file went away
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %#o, want %#o", path, fi.Mode().Perm(), want)
		}
		seen[filepath.Base(path)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"scepd.db", "scepd.db-wal", "scepd.db-shm"} {
		if !seen[f] {
			t.Errorf("no %s in the data directory while the server runs", f)
		}
	}
	keysSeen := 0
	for name := range seen {
		if strings.HasSuffix(name, ".pem") || strings.HasSuffix(name, ".key") {
			keysSeen++
		}
	}
	if keysSeen == 0 {
		t.Errorf("no key files found among %v", seen)
	}

	open := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o755) // whatever the umask
	out, err := sceptest.Run(t, 30*time.Second, nil, "", sceptest.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", open)
	if err == nil || !strings.Contains(out, "chmod 700 "+open) {
		t.Errorf("serve on a 0755 data directory: %v\n%s\nwant a refusal naming `chmod 700 %s`", err, out, open)
	}
	if entries, _ := os.ReadDir(open); len(entries) != 0 {
		t.Errorf("the refused data directory was written to: %v", entries)
	}
	if err := os.Chmod(open, 0o700); err != nil {
		t.Fatal(err)
	}
	sceptest.Start(t, sceptest.Options{DataDir: open}) // fixed as told, it starts

	// A data directory another user owns is refused too: its owner could
	// open it up again or replace the keys. (Only root can hand a
	// directory to another user.)
	if os.Geteuid() == 0 {
		foreign := filepath.Join(t.TempDir(), "foreign")
		if err := os.Mkdir(foreign, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		out, err := sceptest.Run(t, 30*time.Second, nil, "", sceptest.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", foreign)
		if err == nil || !strings.Contains(out, "owned by uid 65534") {
			t.Errorf("serve on a data directory owned by another user: %v\n%s\nwant a refusal naming the owner", err, out)
		}
		if entries, _ := os.ReadDir(foreign); len(entries) != 0 {
			t.Errorf("the refused data directory was written to: %v", entries)
		}
	}
}

// scrape GETs a /metrics URL, with a token when given.
func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsOnAdminListener: with --admin-addr, /metrics is served on the
// admin listener and 404 on the SCEP one; with --metrics-token-required it
// needs an API token of a role that reads (admin, operator, auditor; not
// mdm, the vendors' role) not limited to profiles. Without either,
// it stays open next to SCEP (TestMetrics).
func TestMetricsOnAdminListener(t *testing.T) {
	adminAddr := sceptest.FreeAddr(t)
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--admin-addr", adminAddr, "--metrics-token-required"}})
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "metered"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	auditor := newToken(t, s, "auditor")
	scoped := newToken(t, s, "operator", "default")
	mdm := newToken(t, s, "mdm")
	operator := newToken(t, s, "operator")
	admin := "http://" + adminAddr + "/metrics"
	for _, tt := range []struct {
		url, token string
		want       int
	}{
		{s.BaseURL() + "/metrics", "", 404},
		{s.BaseURL() + "/metrics", auditor, 404},
		{admin, "", 401},
		{admin, "scepd_0000000000000000_nope", 401},
		{admin, scoped, 403},
		{admin, mdm, 403},
		{admin, auditor, 200},
		{admin, operator, 200},
	} {
		code, body := scrape(t, tt.url, tt.token)
		if code != tt.want {
			t.Errorf("GET %s (token %v): %d, want %d", tt.url, tt.token != "", code, tt.want)
		}
		if code == 200 && !strings.Contains(body, `scepd_pkioperations_total{message_type="PKCSReq",outcome="success",profile="default"} 1`) {
			t.Errorf("the admin listener's /metrics lacks the enrollment:\n%.500s", body)
		}
		if code != 200 && strings.Contains(body, "scepd_") {
			t.Errorf("GET %s (token %v) answered %d with metrics", tt.url, tt.token != "", code)
		}
	}

	// Without --metrics-token-required the admin listener's /metrics is open.
	open := sceptest.FreeAddr(t)
	s2 := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--admin-addr", open}})
	if code, _ := scrape(t, s2.BaseURL()+"/metrics", ""); code != 404 {
		t.Errorf("SCEP listener /metrics with --admin-addr: %d, want 404", code)
	}
	if code, body := scrape(t, "http://"+open+"/metrics", ""); code != 200 || !strings.Contains(body, "scepd_build_info") {
		t.Errorf("admin listener /metrics without a token required: %d", code)
	}
}
