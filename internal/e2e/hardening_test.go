package e2e

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
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
	if code := jamf("Bearer " + tok[:len(tok)-4] + "AAAA"); code != http.StatusTooManyRequests {
		t.Errorf("Jamf webhook with an invalid token from the locked-out address: %d, want 429", code)
	}
}
