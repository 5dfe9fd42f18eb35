package e2e

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
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
