package pkiop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/store"
)

// getCRL builds a GetCRL whose IssuerAndSerialNumber names issuer (a DER
// Name) and serial, signed by d and encrypted to the profile's RA, and
// parses it as the server does.
func (f *fixture) getCRL(t *testing.T, d device, issuer []byte, serial *big.Int) *scep.Message {
	t.Helper()
	body, err := asn1.Marshal(struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}{asn1.RawValue{FullBytes: issuer}, serial})
	if err != nil {
		t.Fatal(err)
	}
	return f.message(t, d, scep.GetCRL, "crl-"+serial.Text(16), body)
}

// message builds a PKIMessage of type typ carrying body, signed by d and
// encrypted to the profile's RA, and parses it as the server does.
func (f *fixture) message(t *testing.T, d device, typ scep.MessageType, tx string, body []byte) *scep.Message {
	t.Helper()
	_, raw := f.messageBytes(t, d, typ, tx, body, cms.AES256, crypto.SHA256)
	msg, err := scep.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// enroll issues a certificate to a new device through the decision, under
// whatever CA the profile issues under now.
func (f *fixture) enroll(t *testing.T, cn string) (device, *x509.Certificate) {
	t.Helper()
	d := newDevice(t, cn)
	msg, _ := f.request(t, d, "tx-"+cn, password, cms.AES256, crypto.SHA256)
	reply, err := f.decider.Decide(context.Background(), f.profile, msg, "192.0.2.10:1")
	if err != nil || reply.Status != scep.StatusSuccess {
		t.Fatalf("enrolling %s: %v %s %s %q", cn, err, reply.Status, reply.FailInfo, reply.FailText)
	}
	c, err := x509.ParseCertificate(reply.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	return device{key: d.key, self: c}, c
}

// newCA is a root CA stored under id.
func (f *fixture) newCA(t *testing.T, id string, subject pkix.Name) *ca.CA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := ca.NewRoot(key, subject, 10*365*24*time.Hour, f.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateCA(context.Background(), store.CA{ID: id, CertDER: c.Cert.Raw, KeyRef: "file:" + id, Created: f.now}); err != nil {
		t.Fatal(err)
	}
	return c
}

// switchTo makes the profile issue under next (id nextID), with an RA of
// next, the fixture's CA becoming its predecessor: the profile as
// server.Load builds it once a rollover's time has passed.
func (f *fixture) switchTo(t *testing.T, next *ca.CA, nextID string) {
	t.Helper()
	p := f.profile.Enroll
	p.Predecessor, p.PredecessorID = p.CA, p.CAID
	p.CA, p.CAID = next, nextID
	raKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ra, err := next.IssueRA(raKey.Public(), pkix.Name{CommonName: "pkiop RA"}, 365*24*time.Hour, f.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.raKey, f.raCert = raKey, ra
	f.profile.Decrypter, f.profile.RA, f.profile.Chain = raKey, cms.FromX509(ra), next.ChainDER()
	p.RASubject = ra.RawSubject
}

// publishing gives the decision a revocation service that signs the CRLs
// of cas, and returns it.
func (f *fixture) publishing(cas map[string]*ca.CA) *revocation.Service {
	rev := &revocation.Service{Store: f.st, CAs: func() map[string]*ca.CA { return cas }, Now: func() time.Time { return f.now },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.decider.CRLs = rev
	return rev
}

// wantCRL fails t unless reply is a SUCCESS carrying a CRL signed by
// issuer, and reports whether that CRL lists serial.
func wantCRL(t *testing.T, reply scep.Reply, issuer *ca.CA, serial *big.Int) bool {
	t.Helper()
	if reply.Status != scep.StatusSuccess || reply.CRL == nil {
		t.Fatalf("%s %s %q, want SUCCESS with a CRL", reply.Status, reply.FailInfo, reply.FailText)
	}
	crl, err := x509.ParseRevocationList(reply.CRL)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(issuer.Cert); err != nil || string(crl.RawIssuer) != string(issuer.Cert.RawSubject) {
		t.Fatalf("the CRL (issuer %s) is not %s's: %v", crl.Issuer, issuer.Cert.Subject, err)
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// TestGetCRLAfterRollover: once a profile has rolled over to its next CA,
// GetCRL for a certificate of the previous CA answers that CA's CRL (which
// lists its revocation), not the new CA's, which cannot cover it; the new
// CA's certificates get the new CA's CRL. RFC 8894 §3.3.5: the CRL of the
// certificate's issuer.
func TestGetCRLAfterRollover(t *testing.T) {
	for _, tc := range []struct {
		name string
		// sameName: the next CA keeps the old one's subject (a re-key), so
		// only the serial's stored certificate tells the two apart.
		sameName bool
	}{{"next CA of another name", false}, {"next CA of the same name", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			subject := pkix.Name{CommonName: "pkiop root 2"}
			if tc.sameName {
				subject = f.root.Cert.Subject
			}
			next := f.newCA(t, "ca2", subject)
			rev := f.publishing(map[string]*ca.CA{"ca": f.root, "ca2": next})

			oldDev, old := f.enroll(t, "old-dev")
			if _, err := rev.Revoke(ctx, old.SerialNumber.Text(16), 1, "test"); err != nil {
				t.Fatal(err)
			}
			f.switchTo(t, next, "ca2")
			_, fresh := f.enroll(t, "new-dev")
			if string(fresh.RawIssuer) != string(next.Cert.RawSubject) || fresh.CheckSignatureFrom(next.Cert) != nil {
				t.Fatalf("after the switch issued by %s", fresh.Issuer)
			}

			// The old certificate's holder asks about it.
			reply, err := f.decider.Decide(ctx, f.profile, f.getCRL(t, oldDev, old.RawIssuer, old.SerialNumber), "192.0.2.10:2")
			if err != nil {
				t.Fatal(err)
			}
			if !wantCRL(t, reply, f.root, old.SerialNumber) {
				t.Error("the previous CA's CRL does not list its revoked certificate")
			}
			// The new CA's certificate.
			reply, err = f.decider.Decide(ctx, f.profile, f.getCRL(t, oldDev, fresh.RawIssuer, fresh.SerialNumber), "192.0.2.10:3")
			if err != nil {
				t.Fatal(err)
			}
			if wantCRL(t, reply, next, old.SerialNumber) {
				t.Error("the new CA's CRL lists a certificate of the old CA")
			}
			// sscep, still holding the old CA certificate, names it by its
			// subject and serial.
			reply, err = f.decider.Decide(ctx, f.profile, f.getCRL(t, oldDev, f.root.Cert.RawSubject, f.root.Cert.SerialNumber), "192.0.2.10:3")
			if err != nil {
				t.Fatal(err)
			}
			wantCRL(t, reply, f.root, old.SerialNumber)
		})
	}
}

// TestGetCRLBeforeRollover: while a rollover is scheduled, GetCRL naming
// the next CA answers the next CA's CRL, and one naming the current CA or
// (as sscep does after getca) the profile's RA answers the current CA's.
func TestGetCRLBeforeRollover(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	next := f.newCA(t, "ca2", pkix.Name{CommonName: "pkiop root 2"})
	f.profile.Enroll.Successor, f.profile.Enroll.SuccessorID = next, "ca2"
	f.publishing(map[string]*ca.CA{"ca": f.root, "ca2": next})
	d, cert := f.enroll(t, "dev")

	for _, tc := range []struct {
		name   string
		issuer []byte
		serial *big.Int
		want   *ca.CA
	}{
		{"the certificate's issuer", cert.RawIssuer, cert.SerialNumber, f.root},
		{"the RA's subject and serial (sscep)", f.raCert.RawSubject, f.raCert.SerialNumber, f.root},
		{"the next CA", next.Cert.RawSubject, next.Cert.SerialNumber, next},
	} {
		reply, err := f.decider.Decide(ctx, f.profile, f.getCRL(t, d, tc.issuer, tc.serial), "192.0.2.10:4")
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tc.name, func(t *testing.T) { wantCRL(t, reply, tc.want, cert.SerialNumber) })
	}
}

// TestGetCRLOfAnotherCA: a GetCRL naming an issuer that is none of the
// profile's CAs (here another profile's CA, loaded and publishing) is
// FAILURE badCertID, as GetCert answers it, with no CRL and without naming
// that CA; even when the serial is one of the profile's own certificates.
func TestGetCRLOfAnotherCA(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other := f.newCA(t, "other", pkix.Name{CommonName: "other profile's root"})
	f.publishing(map[string]*ca.CA{"ca": f.root, "other": other})
	d, cert := f.enroll(t, "dev")
	for _, serial := range []*big.Int{big.NewInt(7), cert.SerialNumber} {
		reply, err := f.decider.Decide(ctx, f.profile, f.getCRL(t, d, other.Cert.RawSubject, serial), "192.0.2.10:5")
		if err != nil {
			t.Fatal(err)
		}
		if reply.Status != scep.StatusFailure || reply.FailInfo != scep.BadCertID || reply.CRL != nil || strings.Contains(reply.FailText, "other profile's root") {
			t.Errorf("serial %s: %s %s %q (CRL %d bytes), want FAILURE badCertID naming no other CA", serial.Text(16), reply.Status, reply.FailInfo, reply.FailText, len(reply.CRL))
		}
	}
}
