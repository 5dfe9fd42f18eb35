package pkiop_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
)

// renewal builds a request of type typ for key (subject cn, the
// fixture's SAN, challengePassword pw if any), signed by signer and
// encrypted to the profile's RA, and parses it as the server does.
func (f *fixture) renewal(t *testing.T, signer device, typ scep.MessageType, tx string, key *rsa.PrivateKey, cn, pw string) *scep.Message {
	t.Helper()
	csr, err := scep.NewCSR(key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"dev.example"}}, pw)
	if err != nil {
		t.Fatal(err)
	}
	return f.message(t, signer, typ, tx, csr)
}

// TestUpdateReqRenews: UpdateReq (18, older drafts) is a renewal as
// RenewalReq (17) is: signed with a certificate the profile issued, and
// without a challenge, it is issued a new certificate for the new key,
// recorded as renewing the old one.
func TestUpdateReqRenews(t *testing.T) {
	for _, typ := range []scep.MessageType{scep.RenewalReq, scep.UpdateReq} {
		t.Run(typ.String(), func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			holder, old := f.enroll(t, "dev")
			key, _ := rsa.GenerateKey(rand.Reader, 2048)
			msg := f.renewal(t, holder, typ, "tx-dev", key, "dev", "")
			reply, err := f.decider.Decide(ctx, f.profile, msg, "192.0.2.11:1")
			if err != nil {
				t.Fatal(err)
			}
			if reply.Status != scep.StatusSuccess {
				t.Fatalf("%s signed with the issued certificate: %s %s %q, want SUCCESS", typ, reply.Status, reply.FailInfo, reply.FailText)
			}
			cert, err := x509.ParseCertificate(reply.Certificates[0])
			if err != nil {
				t.Fatal(err)
			}
			if cert.SerialNumber.Cmp(old.SerialNumber) == 0 || !key.PublicKey.Equal(cert.PublicKey) || cert.CheckSignatureFrom(f.root.Cert) != nil {
				t.Fatalf("renewal answered serial %s (old %s), certifying the new key: %v; want a new certificate of the CA for the new key",
					cert.SerialNumber.Text(16), old.SerialNumber.Text(16), key.PublicKey.Equal(cert.PublicKey))
			}
			row, err := f.st.GetCertificate(ctx, cert.SerialNumber.Text(16))
			if err != nil || row.RenewedSerial != old.SerialNumber.Text(16) {
				t.Fatalf("stored %+v (%v): want it recorded as renewing %s", row, err, old.SerialNumber.Text(16))
			}
		})
	}
}

// TestUpdateReqFromSelfSigned: an UpdateReq signed by a self-signed
// certificate is refused as a RenewalReq is (badRequest, nothing issued),
// even with the profile's challenge, and so is one signed by a certificate
// naming the profile's CA as its issuer that the CA did not sign; the same request as a PKCSReq enrolls.
func TestUpdateReqFromSelfSigned(t *testing.T) {
	for _, tc := range []struct {
		typ       scep.MessageType
		caIssuer  bool // signed by a certificate naming the CA as issuer, made by the device
		wantIssue bool
	}{
		{typ: scep.RenewalReq},
		{typ: scep.UpdateReq},
		{typ: scep.RenewalReq, caIssuer: true},
		{typ: scep.UpdateReq, caIssuer: true},
		{typ: scep.PKCSReq, wantIssue: true},
	} {
		name := tc.typ.String()
		if tc.caIssuer {
			name += " naming the CA as issuer"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			d := newDevice(t, "stranger")
			if tc.caIssuer {
				d.self = sceptest.Forged(t, d.key, f.root.Cert.RawSubject, pkix.Name{CommonName: "stranger"})
			}
			msg := f.renewal(t, d, tc.typ, "tx-stranger", d.key, "stranger", password)
			reply, err := f.decider.Decide(ctx, f.profile, msg, "192.0.2.12:1")
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := f.st.ListCertificates(ctx, store.CertificateFilter{})
			if tc.wantIssue {
				if reply.Status != scep.StatusSuccess || len(stored) != 1 {
					t.Fatalf("%s %s %q, %d stored; want SUCCESS", reply.Status, reply.FailInfo, reply.FailText, len(stored))
				}
				return
			}
			if reply.Status != scep.StatusFailure || reply.FailInfo != scep.BadRequest || !strings.Contains(reply.FailText, "must be signed with a valid certificate") {
				t.Fatalf("%s %s %q, want FAILURE badRequest: a renewal must be signed with a certificate of the profile", reply.Status, reply.FailInfo, reply.FailText)
			}
			if len(stored) != 0 {
				t.Fatalf("%d certificates stored after a refused %s", len(stored), tc.typ)
			}
		})
	}
}
