package pkiop_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/store"
)

// raSigned builds a PKCSReq whose CSR the device signed (without a
// challengePassword) and whose message the RA signed, as scepd's RA mode
// forwards it with upstream.scep.ra.
func (f *fixture) raSigned(t *testing.T, ra device, d device, tx string) *scep.Message {
	t.Helper()
	csr, err := scep.NewCSR(d.key, &x509.CertificateRequest{Subject: d.self.Subject, DNSNames: []string{"dev.example"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return f.message(t, ra, scep.PKCSReq, tx, csr)
}

// raIssuedBy is an RA: a key and a certificate of issuer for it, with
// the RA extended key usage (id-kp-cmcRA) besides eku.
func raIssuedBy(t *testing.T, issuer *ca.CA, cn string, eku []x509.ExtKeyUsage, notBefore, notAfter time.Time) device {
	return issuedBy(t, issuer, cn, eku, []asn1.ObjectIdentifier{ca.OIDCMCRA()}, notBefore, notAfter)
}

// issuedBy is a key and a certificate of issuer for it.
func issuedBy(t *testing.T, issuer *ca.CA, cn string, eku []x509.ExtKeyUsage, other []asn1.ObjectIdentifier, notBefore, notAfter time.Time) device {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: eku, UnknownExtKeyUsage: other}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, key.Public(), issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return device{key: key, self: c}
}

// Challenge mode ra: a request signed by an RA certificate of the
// trusted CA is issued without a challengePassword, and the audit names
// the RA; one signed by anyone else is refused and nothing is stored.
func TestTrustedRAAuthorises(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	raCA, err := ca.NewRoot(raKey, pkix.Name{CommonName: "RA CA"}, 24*time.Hour*365, f.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherCA, _ := ca.NewRoot(otherKey, pkix.Name{CommonName: "RA CA"}, 24*time.Hour*365, f.now.Add(-time.Hour)) // same name, other key
	v, err := challenge.NewTrustedRA([][]byte{raCA.Cert.Raw}, func() time.Time { return f.now })
	if err != nil {
		t.Fatal(err)
	}
	v.Revoked = func(_ context.Context, c *x509.Certificate) (bool, error) {
		return c.Subject.CommonName == "revoked RA", nil
	}
	f.profile.Enroll.Challenge = v
	valid := [2]time.Time{f.now.Add(-time.Hour), f.now.Add(time.Hour)}
	good := raIssuedBy(t, raCA, "front RA", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, valid[0], valid[1])

	for i, tc := range []struct {
		name string
		ra   device
		want string
	}{
		{"self-signed", newDevice(t, "self"), "not a registration authority this profile trusts"},
		{"another CA of the same name", raIssuedBy(t, otherCA, "front RA", nil, valid[0], valid[1]), "not a registration authority this profile trusts"},
		{"expired", raIssuedBy(t, raCA, "old RA", nil, f.now.Add(-2*time.Hour), f.now.Add(-time.Hour)), "expired"},
		{"a device certificate of the same CA", issuedBy(t, raCA, "device", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, valid[0], valid[1]),
			"lacks the RA extended key usage"},
		{"anyExtendedKeyUsage", issuedBy(t, raCA, "any", []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, nil, valid[0], valid[1]), "lacks the RA extended key usage"},
		{"revoked", raIssuedBy(t, raCA, "revoked RA", nil, valid[0], valid[1]), "is revoked"},
	} {
		msg := f.raSigned(t, tc.ra, newDevice(t, "dev-refused"), "tx-bad-"+string(rune('a'+i)))
		reply, err := f.decider.Decide(ctx, f.profile, msg, "192.0.2.9:1")
		if err != nil {
			t.Fatal(err)
		}
		if reply.Status != scep.StatusFailure || reply.FailInfo != scep.BadRequest || !strings.Contains(reply.FailText, tc.want) {
			t.Errorf("%s: %s %s %q, want FAILURE badRequest naming %q", tc.name, reply.Status, reply.FailInfo, reply.FailText, tc.want)
		}
	}
	if got, _ := f.st.ListCertificates(ctx, store.CertificateFilter{}); len(got) != 0 {
		t.Fatalf("%d certificates stored for refused requests", len(got))
	}

	msg := f.raSigned(t, good, newDevice(t, "dev-ra"), "tx-ra")
	reply, err := f.decider.Decide(ctx, f.profile, msg, "192.0.2.9:1")
	if err != nil {
		t.Fatal(err)
	}
	if reply.Status != scep.StatusSuccess {
		t.Fatalf("%s %s %q, want SUCCESS", reply.Status, reply.FailInfo, reply.FailText)
	}
	events, err := f.st.ListAudit(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range events {
		if e.Action == "enroll" && e.Outcome == "issued" {
			found = true
			if e.Details["ra_subject"] != "CN=front RA" || e.Details["ra_serial"] != "1092" || !strings.HasPrefix(e.Details["ra_fingerprint"], "sha256:") {
				t.Errorf("enroll audit details %v, want the RA named", e.Details)
			}
		}
	}
	if !found {
		t.Fatal("no enroll audit event")
	}
}

// upstreamIssuer stands for an upstream CA (RA mode).
type upstreamIssuer struct{ enroll.LocalCA }

func (upstreamIssuer) Name() string { return "scep:http://ca.example/scep" }

// GetCRL on a profile in RA mode is refused: the RA issuer's CRL would
// list none of its certificates.
func TestGetCRLInRAMode(t *testing.T) {
	f := newFixture(t)
	f.profile.Enroll.Issuer = upstreamIssuer{}
	msg := f.getCRL(t, newDevice(t, "crl"), f.root.Cert.RawSubject, big.NewInt(2))
	reply, err := f.decider.Decide(context.Background(), f.profile, msg, "192.0.2.9:1")
	if err != nil {
		t.Fatal(err)
	}
	if reply.Status != scep.StatusFailure || reply.FailInfo != scep.BadRequest || reply.CRL != nil ||
		!strings.Contains(reply.FailText, "CRLs of the upstream CA scep:http://ca.example/scep are published by it") {
		t.Fatalf("%s %s %q, want FAILURE badRequest pointing at the upstream's CRL", reply.Status, reply.FailInfo, reply.FailText)
	}
}
