package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
)

// TestPolicyDryRunIsIssuance: the dry run answers what enrollment issues,
// field for field, on a server with a public URL (whose CRL, OCSP and AIA
// URLs the stored policy does not hold) and a custom policy.
func TestPolicyDryRunIsIssuance(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s.Now = clock
	if _, err := provision.CreateCA(ctx, s.Store, s.Keys, config.CA{ID: "root", Create: &config.CACreate{Subject: "CN=Dry Root"}}, provision.Inline(), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	spec := config.Profile{ID: "p", CA: "root", Challenge: config.Challenge{Mode: "static", Password: "dry-run-secret"}}
	spec.Policy.ExtKeyUsage = []string{"clientAuth", "serverAuth"}
	spec.Policy.Validity = ca.Duration(90 * 24 * time.Hour)
	if _, _, err := provision.UpsertProfile(ctx, s.Store, s.Keys, spec, store.SourceAPI, provision.Inline(), now); err != nil {
		t.Fatal(err)
	}
	loaded, err := server.Load(ctx, s.Store, s.Keys, server.Overrides{PublicURL: "https://pki.example.test/", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	served := loaded.Profiles[0].Enroll()
	s.Profile = func(id string) *enroll.Profile {
		if id == served.ID {
			return served
		}
		return nil
	}
	s.Enroll = enroll.New(s.Store, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))

	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}, DNSNames: []string{"dev-1.example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	dry, err := s.As(LocalAdmin).PolicyTest(ctx, "p", csrDER)
	if err != nil || !dry.Allowed {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	block, _ := pem.Decode([]byte(dry.Certificate))
	if block == nil {
		t.Fatal("the dry run returned no certificate")
	}
	would, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	res, err := s.Enroll.PKCSReq(ctx, served, enroll.Request{TransactionID: "tx-dry", CSR: csr, Password: "dry-run-secret", SignerKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := res.Certificate()
	if err != nil {
		t.Fatal(err)
	}

	if want := []string{"https://pki.example.test/crl/root.crl"}; !slices.Equal(issued.CRLDistributionPoints, want) {
		t.Fatalf("issued CRL distribution points %v, want %v (the profile is not served with the public URL)", issued.CRLDistributionPoints, want)
	}
	if !bytes.Equal(would.RawSubject, issued.RawSubject) || !bytes.Equal(would.RawIssuer, issued.RawIssuer) {
		t.Errorf("subject/issuer: dry run %s / %s, issued %s / %s", would.Subject, would.Issuer, issued.Subject, issued.Issuer)
	}
	if !would.NotBefore.Equal(issued.NotBefore) || !would.NotAfter.Equal(issued.NotAfter) {
		t.Errorf("validity: dry run %s..%s, issued %s..%s", would.NotBefore, would.NotAfter, issued.NotBefore, issued.NotAfter)
	}
	if would.KeyUsage != issued.KeyUsage || !slices.Equal(would.ExtKeyUsage, issued.ExtKeyUsage) {
		t.Errorf("usages: dry run %v %v, issued %v %v", would.KeyUsage, would.ExtKeyUsage, issued.KeyUsage, issued.ExtKeyUsage)
	}
	for name, pair := range map[string][2][]string{
		"CRL distribution points": {would.CRLDistributionPoints, issued.CRLDistributionPoints},
		"OCSP servers":            {would.OCSPServer, issued.OCSPServer},
		"issuing certificate URL": {would.IssuingCertificateURL, issued.IssuingCertificateURL},
		"DNS names":               {would.DNSNames, issued.DNSNames},
	} {
		if !slices.Equal(pair[0], pair[1]) {
			t.Errorf("%s: dry run %v, issued %v", name, pair[0], pair[1])
		}
	}
	// Every extension but the authority key identifier (the dry run's stand-in CA
	// key differs) is the same, in the same order.
	ids := func(c *x509.Certificate) (out []string) {
		for _, e := range c.Extensions {
			if id := e.Id.String(); id != "2.5.29.35" {
				out = append(out, id+":"+string(e.Value))
			}
		}
		return out
	}
	if !slices.Equal(ids(would), ids(issued)) {
		t.Errorf("extensions differ:\ndry run %q\nissued  %q", ids(would), ids(issued))
	}
}
