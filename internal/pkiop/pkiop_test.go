package pkiop_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/pkiop"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
	"github.com/scepd/scepd/internal/store/storetest"
)

const password = "pkiop-challenge"

// fixture is one profile with its CA and RA, enrollment on SQLite, and a
// fake clock: the test controls every time a certificate carries.
type fixture struct {
	now     time.Time
	st      store.Store
	root    *ca.CA
	raCert  *x509.Certificate
	raKey   *rsa.PrivateKey
	profile *pkiop.Profile
	decider pkiop.Decider
	expects *storetest.Announcing
}

// settledAll fails t unless enrollment announced at least min writes and
// settled every announcement it made.
func settledAll(t *testing.T, e *storetest.Announcing, min int64) {
	t.Helper()
	if made, settled := e.Made.Load(), e.Settled.Load(); made < min || settled != made {
		t.Errorf("%d writes announced, %d settled; want at least %d, all settled", made, settled, min)
	}
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{now: time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)}
	clock := func() time.Time { return f.now }
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if f.root, err = ca.NewRoot(caKey, pkix.Name{CommonName: "pkiop root"}, 10*365*24*time.Hour, f.now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.raKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	if f.raCert, err = f.root.IssueRA(f.raKey.Public(), pkix.Name{CommonName: "pkiop RA"}, 365*24*time.Hour, f.now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateCA(ctx, store.CA{ID: "ca", CertDER: f.root.Cert.Raw, KeyRef: "file:ca", Created: f.now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateProfile(ctx, store.Profile{ID: "p", CAID: "ca", RACertDER: f.raCert.Raw, RAKeyRef: "file:ra", ChallengeMode: store.ChallengeStatic, Created: f.now}); err != nil {
		t.Fatal(err)
	}
	hash, _ := challenge.HashPassword(password)
	v, _ := challenge.NewStatic(hash)
	policy := ca.DefaultPolicy()
	f.profile = &pkiop.Profile{
		Enroll:    &enroll.Profile{ID: "p", CAID: "ca", CA: f.root, Policy: &policy, Challenge: v, RASubject: f.raCert.RawSubject},
		Decrypter: f.raKey,
		RA:        cms.FromX509(f.raCert),
		Chain:     f.root.ChainDER(),
	}
	f.expects = &storetest.Announcing{Store: st}
	svc := enroll.New(f.expects, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { svc.Close(context.Background()) })
	f.decider = pkiop.Decider{Enroller: svc}
	return f
}

// device is a client: its key and the self-signed certificate that signs
// its first request (RFC 8894 §2.3).
type device struct {
	key  *rsa.PrivateKey
	self *x509.Certificate
}

func newDevice(t testing.TB, cn string) device {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: bigOne(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := x509.ParseCertificate(der)
	return device{key: key, self: self}
}

// request builds a PKCSReq PKIMessage as a client sends it, and parses
// it as the server does; it returns the client's senderNonce too.
func (f *fixture) request(t testing.TB, d device, tx, challengePassword string, cipher cms.Cipher, digest crypto.Hash) (*scep.Message, []byte) {
	t.Helper()
	nonce, raw := f.requestBytes(t, d, tx, challengePassword, cipher, digest)
	msg, err := scep.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return msg, nonce
}

// requestBytes builds a PKCSReq PKIMessage: its senderNonce and its bytes.
func (f *fixture) requestBytes(t testing.TB, d device, tx, challengePassword string, cipher cms.Cipher, digest crypto.Hash) ([]byte, []byte) {
	t.Helper()
	csr, err := scep.NewCSR(d.key, &x509.CertificateRequest{Subject: d.self.Subject, DNSNames: []string{"dev.example"}}, challengePassword)
	if err != nil {
		t.Fatal(err)
	}
	return f.messageBytes(t, d, scep.PKCSReq, tx, csr, cipher, digest)
}

// messageBytes builds a PKIMessage of type typ carrying body, signed by d
// and encrypted to f.raCert: its senderNonce and its bytes.
func (f *fixture) messageBytes(t testing.TB, d device, typ scep.MessageType, tx string, body []byte, cipher cms.Cipher, digest crypto.Hash) ([]byte, []byte) {
	t.Helper()
	raw, nonce, err := scep.Builder{Cert: d.self, Key: d.key}.NewRequest(scep.Request{
		Type: typ, TransactionID: tx, Body: body, Recipient: f.raCert, Cipher: cipher, Digest: digest,
	})
	if err != nil {
		t.Fatal(err)
	}
	return nonce, raw
}

// certRep signs the reply as the server does, and parses it as the client does.
func (f *fixture) certRep(t *testing.T, msg *scep.Message, reply scep.Reply) *scep.Message {
	t.Helper()
	out, err := scep.Builder{Cert: f.raCert, CMSCert: f.profile.RA, Key: f.raKey}.CertRep(msg, reply)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := scep.Parse(out, cms.FromX509(f.raCert))
	if err != nil {
		t.Fatalf("the CertRep does not parse: %v", err)
	}
	return rep
}

// TestEnrollmentWithoutHTTP drives a whole PKCSReq: the message a client
// builds is decided, signed as CertRep, decrypted by the client, and the
// certificate in it is checked against the CA, the CSR and the clock.
func TestEnrollmentWithoutHTTP(t *testing.T) {
	f := newFixture(t)
	d := newDevice(t, "dev-1")
	msg, nonce := f.request(t, d, "tx-1", password, cms.AES256, crypto.SHA256)
	reply, err := f.decider.Decide(context.Background(), f.profile, msg, "192.0.2.7:4242")
	if err != nil {
		t.Fatal(err)
	}
	if reply.Status != scep.StatusSuccess {
		t.Fatalf("status %s (%s: %s), want SUCCESS", reply.Status, reply.FailInfo, reply.FailText)
	}
	rep := f.certRep(t, msg, reply)
	if rep.Type != scep.CertRep || rep.Status != scep.StatusSuccess || rep.TransactionID != "tx-1" || !bytes.Equal(rep.RecipientNonce, nonce) {
		t.Fatalf("CertRep: type %v status %v transaction %q, recipientNonce matches: %v", rep.Type, rep.Status, rep.TransactionID, bytes.Equal(rep.RecipientNonce, nonce))
	}
	env, err := rep.OpenEnvelope()
	if err != nil || env.Cipher != cms.AES256 {
		t.Fatalf("reply envelope: %v, cipher %v; want the request's AES-256", err, env.Cipher)
	}
	ders, err := rep.CertificatesOf(d.key, d.self)
	if err != nil {
		t.Fatalf("the client cannot decrypt the CertRep: %v", err)
	}
	if len(ders) != 2 || !bytes.Equal(ders[1], f.root.Cert.Raw) {
		t.Fatalf("%d certificates in the reply, want the issued one and the CA", len(ders))
	}
	cert, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.root.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: f.now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the issued certificate does not verify under the CA: %v", err)
	}
	if cert.Subject.CommonName != "dev-1" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "dev.example" {
		t.Errorf("issued subject %s SANs %v, want the CSR's", cert.Subject, cert.DNSNames)
	}
	if !d.key.PublicKey.Equal(cert.PublicKey) {
		t.Error("the issued certificate does not certify the device's key")
	}
	if want := f.now.Add(-5 * time.Minute); !cert.NotBefore.Equal(want) {
		t.Errorf("notBefore %s, want the fake clock's time less the default backdate, %s", cert.NotBefore, want)
	}
	stored, err := f.st.ListCertificates(context.Background(), store.CertificateFilter{})
	if err != nil || len(stored) != 1 || !bytes.Equal(stored[0].DER, cert.Raw) {
		t.Fatalf("stored certificates: %d (%v), want the issued one", len(stored), err)
	}
}

// TestRefusals: what the decision refuses is a FAILURE reply with the
// failInfo RFC 8894 names, and nothing is issued.
func TestRefusals(t *testing.T) {
	for _, tt := range []struct {
		name      string
		password  string
		cipher    cms.Cipher
		digest    crypto.Hash
		allowDES  bool
		wantFail  scep.FailInfo
		wantIssue bool
	}{
		{name: "wrong challenge", password: "not-the-challenge", cipher: cms.AES128, digest: crypto.SHA256, wantFail: scep.BadRequest},
		{name: "single DES refused", password: password, cipher: cms.DES, digest: crypto.SHA256, wantFail: scep.BadAlg},
		{name: "single DES allowed", password: password, cipher: cms.DES, digest: crypto.SHA256, allowDES: true, wantIssue: true},
		{name: "3DES and SHA-1", password: password, cipher: cms.TripleDES, digest: crypto.SHA1, wantIssue: true},
		{name: "MD5 refused", password: password, cipher: cms.AES128, digest: crypto.MD5, wantFail: scep.BadAlg},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.profile.AllowDES = tt.allowDES
			msg, _ := f.request(t, newDevice(t, "dev-2"), "tx-2", tt.password, tt.cipher, tt.digest)
			reply, err := f.decider.Decide(context.Background(), f.profile, msg, "192.0.2.8:1")
			if err != nil {
				t.Fatal(err)
			}
			announced := int64(1) // an enrollment from its decryption on
			if tt.digest == crypto.MD5 {
				announced = 0 // refused before
			}
			settledAll(t, f.expects, announced)
			if tt.wantIssue {
				if reply.Status != scep.StatusSuccess || reply.Cipher != tt.cipher {
					t.Fatalf("status %s cipher %v (%s), want SUCCESS in the request's cipher", reply.Status, reply.Cipher, reply.FailText)
				}
				return
			}
			if reply.Status != scep.StatusFailure || reply.FailInfo != tt.wantFail {
				t.Fatalf("status %s failInfo %s (%s), want FAILURE %s", reply.Status, reply.FailInfo, reply.FailText, tt.wantFail)
			}
			if stored, _ := f.st.ListCertificates(context.Background(), store.CertificateFilter{}); len(stored) != 0 {
				t.Fatal("a refused request stored a certificate")
			}
		})
	}
}

func bigOne() *big.Int { return big.NewInt(1) }

// TestAlternateRA: while a rollover is scheduled the profile's other RA
// answers requests encrypted to it, and every answer to them, refusals
// decided before decryption included, is marked for that RA to sign: the
// client can check only a reply signed by the RA it encrypted to.
func TestAlternateRA(t *testing.T) {
	f := newFixture(t)
	altKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	altCert, err := f.root.IssueRA(altKey.Public(), pkix.Name{CommonName: "pkiop other RA"}, 365*24*time.Hour, f.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.profile.AltDecrypter, f.profile.AltRA = altKey, cms.FromX509(altCert)
	mainCert := f.raCert
	for _, tc := range []struct {
		name   string
		to     *x509.Certificate
		cipher cms.Cipher
		status scep.PKIStatus
		alt    bool
	}{
		{"to the other RA", altCert, cms.AES128, scep.StatusSuccess, true},
		{"refused before decryption, to the other RA", altCert, cms.DES, scep.StatusFailure, true},
		{"to the RA", mainCert, cms.AES128, scep.StatusSuccess, false},
		{"refused before decryption, to the RA", mainCert, cms.DES, scep.StatusFailure, false},
	} {
		f.raCert = tc.to // the recipient requestBytes encrypts to
		msg, _ := f.request(t, newDevice(t, "dev-"+tc.name), "tx-"+tc.name, password, tc.cipher, crypto.SHA256)
		reply, err := f.decider.Decide(context.Background(), f.profile, msg, "192.0.2.1")
		if err != nil || reply.Status != tc.status || reply.ToAlternateRA != tc.alt {
			t.Errorf("%s: %v, status %s (%s), to the other RA %v; want %s, %v", tc.name, err, reply.Status, reply.FailText, reply.ToAlternateRA, tc.status, tc.alt)
		}
	}
}
