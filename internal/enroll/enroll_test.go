package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

const password = "right-password"

func setup(t *testing.T) (*enroll.Service, *enroll.Profile, store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := ca.NewRoot(key, pkix.Name{CommonName: "test root"}, 24*time.Hour*365, testNow())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateCA(ctx, store.CA{ID: "ca", CertDER: root.Cert.Raw, KeyRef: "file:x", Created: testNow()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateProfile(ctx, store.Profile{ID: "p", CAID: "ca", RACertDER: []byte{1}, RAKeyRef: "file:y", ChallengeMode: store.ChallengeStatic, Created: testNow()}); err != nil {
		t.Fatal(err)
	}
	hash, _ := challenge.HashPassword(password)
	v, _ := challenge.NewStatic(hash)
	policy := ca.DefaultPolicy()
	svc := enroll.New(st, testNow, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return svc, &enroll.Profile{ID: "p", CA: root, Policy: &policy, Challenge: v}, st
}

func csr(t *testing.T, bits int, cn string) *x509.CertificateRequest {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, bits)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn + ".example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificateRequest(der)
	return c
}

func count(t *testing.T, st store.Store) int {
	t.Helper()
	certs, err := st.ListCertificates(context.Background(), store.CertificateFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}

func TestRejectionsStoreNothing(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		req  enroll.Request
		want scep.FailInfo
	}{
		{"wrong challenge", enroll.Request{TransactionID: "a", CSR: csr(t, 2048, "a"), Password: "wrong"}, scep.BadRequest},
		{"no challenge", enroll.Request{TransactionID: "b", CSR: csr(t, 2048, "b")}, scep.BadRequest},
		{"small key", enroll.Request{TransactionID: "c", CSR: csr(t, 1024, "c"), Password: password}, scep.BadRequest},
	} {
		_, err := svc.PKCSReq(ctx, p, tt.req)
		var rej *enroll.Rejection
		if !errors.As(err, &rej) || rej.FailInfo != tt.want {
			t.Errorf("%s: %v, want a %v rejection", tt.name, err, tt.want)
		}
		if _, err := st.GetTransaction(ctx, "p", tt.req.TransactionID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: a transaction was stored", tt.name)
		}
	}
	if n := count(t, st); n != 0 {
		t.Fatalf("%d certificates stored by rejected requests", n)
	}
	events, _ := st.ListAudit(ctx, 10)
	for _, e := range events {
		for _, v := range e.Details {
			if v == "wrong" {
				t.Fatal("the submitted password is in the audit log")
			}
		}
	}
}

func TestIssueAndRetransmit(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	req := enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password}
	req.SignerKey = req.CSR.PublicKey // self-signed with the CSR's key, as clients do
	first, err := svc.PKCSReq(ctx, p, req)
	if err != nil {
		t.Fatal(err)
	}
	if certOf(t, first).Subject.CommonName != "dev" || certOf(t, first).DNSNames[0] != "dev.example" || certOf(t, first).SerialNumber.BitLen() < 64 {
		t.Fatalf("issued %v %v serial bits %d", certOf(t, first).Subject, certOf(t, first).DNSNames, certOf(t, first).SerialNumber.BitLen())
	}
	again, err := svc.PKCSReq(ctx, p, req)
	if err != nil || !again.Replayed || !certOf(t, again).Equal(certOf(t, first)) {
		t.Fatalf("retransmission: %v, replayed %v", err, again.Replayed)
	}
	other := req
	other.CSR = csr(t, 2048, "dev")
	var rej *enroll.Rejection
	if _, err := svc.PKCSReq(ctx, p, other); !errors.As(err, &rej) {
		t.Fatalf("same transactionID, other key: %v, want a rejection", err)
	}
	// The CSR's key is public (it is in the certificate): a stranger who
	// copies it into a CSR of his own (whose signature does not hold) and
	// signs the message with his key hears nothing of the stored request.
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	copied := req
	copied.SignerKey = &stranger.PublicKey
	if res, err := svc.PKCSReq(ctx, p, copied); !errors.As(err, &rej) || res.DER != nil || !strings.Contains(rej.Reason, "another requester") {
		t.Fatalf("a stranger replaying the transactionID with the copied key: %+v %v, want a rejection", res, err)
	}
	if n := count(t, st); n != 1 {
		t.Fatalf("%d certificates, want 1", n)
	}
}

// TestConcurrentRetransmissions: many copies of one request at once yield
// one certificate, and every copy gets that certificate.
func TestConcurrentRetransmissions(t *testing.T) {
	svc, p, st := setup(t)
	req := enroll.Request{TransactionID: "burst", CSR: csr(t, 2048, "burst"), Password: password}
	req.SignerKey = req.CSR.PublicKey
	const n = 12
	results := make([]enroll.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); results[i], errs[i] = svc.PKCSReq(context.Background(), p, req) }()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !certOf(t, results[i]).Equal(certOf(t, results[0])) {
			t.Fatal("two different certificates for one transaction")
		}
	}
	if c := count(t, st); c != 1 {
		t.Fatalf("%d certificates stored, want 1", c)
	}
}

// second adds profile q (same CA as p) to the store of setup.
func second(t *testing.T, st store.Store, p *enroll.Profile) *enroll.Profile {
	t.Helper()
	if err := st.CreateProfile(context.Background(), store.Profile{ID: "q", CAID: "ca", RACertDER: []byte{1}, RAKeyRef: "file:z",
		ChallengeMode: store.ChallengeStatic, Created: testNow()}); err != nil {
		t.Fatal(err)
	}
	q := *p
	q.ID = "q"
	return &q
}

func keyCSR(t *testing.T, key *rsa.PrivateKey, cn string, dns ...string) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificateRequest(der)
	return c
}

func rejection(err error) *enroll.Rejection {
	var rej *enroll.Rejection
	if errors.As(err, &rej) {
		return rej
	}
	return nil
}

// TestRenewalBoundary: a certificate of profile p renews in p only, unless
// q names p in renewal.from_profiles; a PKCSReq signed with it is a first
// enrollment in q.
func TestRenewalBoundary(t *testing.T) {
	svc, p, st := setup(t)
	q := second(t, st, p)
	ctx := context.Background()
	oldKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	first, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "t1", CSR: keyCSR(t, oldKey, "dev"), Password: password})
	if err != nil {
		t.Fatal(err)
	}
	renewal := func(txid string, renewalReq bool, pw string) enroll.Request {
		return enroll.Request{TransactionID: txid, CSR: csr(t, 2048, "dev"), Password: pw, Renewal: renewalReq,
			Signer: certOf(t, first), SignerKey: &oldKey.PublicKey}
	}
	_, err = svc.PKCSReq(ctx, q, renewal("r1", true, ""))
	if rej := rejection(err); rej == nil || rej.FailInfo != scep.BadRequest || rej.Reason != "the signing certificate was issued by profile p; this profile renews only its own certificates" {
		t.Fatalf("RenewalReq in q with p's certificate: %v", err)
	}
	if _, err := svc.PKCSReq(ctx, q, renewal("r2", false, "")); rejection(err) == nil {
		t.Fatalf("signed PKCSReq in q without a challenge: %v, want a rejection", err)
	}
	res, err := svc.PKCSReq(ctx, q, renewal("r3", false, password))
	if err != nil || res.Renewed != "" {
		t.Fatalf("signed PKCSReq in q with q's challenge: %v, renewed %q; want a first enrollment", err, res.Renewed)
	}
	q.Renewal.FromProfiles = []string{"p"}
	res, err = svc.PKCSReq(ctx, q, renewal("r4", true, ""))
	if err != nil || res.Renewed != certOf(t, first).SerialNumber.Text(16) {
		t.Fatalf("RenewalReq in q with from_profiles [p]: %v, renewed %q", err, res.Renewed)
	}
	res, err = svc.PKCSReq(ctx, p, renewal("r5", true, ""))
	if err != nil || res.Renewed != certOf(t, first).SerialNumber.Text(16) {
		t.Fatalf("RenewalReq in p: %v", err)
	}
}

// TestHeldRenewal: renewal.approval manual holds a renewal; approval issues
// it as the renewal of the old certificate; CertPoll answers the key that
// signed it (the old certificate's) and the CSR's, nobody else.
func TestHeldRenewal(t *testing.T) {
	svc, p, _ := setup(t)
	ctx := context.Background()
	oldKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	first, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "t1", CSR: keyCSR(t, oldKey, "dev"), Password: password})
	if err != nil {
		t.Fatal(err)
	}
	p.Manual, p.Renewal.Approval = true, "manual"
	newKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	req := enroll.Request{TransactionID: "t1", CSR: keyCSR(t, newKey, "dev"), Renewal: true, Signer: certOf(t, first), SignerKey: &oldKey.PublicKey}
	res, err := svc.PKCSReq(ctx, p, req)
	if err != nil || !res.Pending {
		t.Fatalf("held renewal: %+v %v", res, err)
	}
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := svc.Poll(ctx, p, "t1", &stranger.PublicKey, ""); rejection(err) == nil || rejection(err).FailInfo != scep.BadCertID {
		t.Fatalf("poll by a stranger: %v", err)
	}
	for _, k := range []*rsa.PrivateKey{oldKey, newKey} {
		if res, err := svc.Poll(ctx, p, "t1", &k.PublicKey, ""); err != nil || !res.Pending {
			t.Fatalf("poll by the requester: %+v %v", res, err)
		}
	}
	id := "t1@" + certOf(t, first).SerialNumber.Text(16)
	cert, err := svc.Approve(ctx, p, id, "token:op")
	if err != nil {
		t.Fatal(err)
	}
	res, err = svc.Poll(ctx, p, "t1", &oldKey.PublicKey, "")
	if err != nil || !certOf(t, res).Equal(cert) {
		t.Fatalf("poll after approval: %v", err)
	}
}

// TestChangedCSRIsANewRequest: the same transactionID and key with a new
// CSR is issued its own certificate; retransmissions of each CSR get
// their own answer.
func TestChangedCSRIsANewRequest(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	one, two := keyCSR(t, key, "dev", "a.example"), keyCSR(t, key, "dev", "a.example", "b.example")
	send := func(c *x509.CertificateRequest) *x509.Certificate {
		t.Helper()
		res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "same", CSR: c, Password: password, SignerKey: &key.PublicKey})
		if err != nil {
			t.Fatal(err)
		}
		return certOf(t, res)
	}
	a, b := send(one), send(two)
	if a.Equal(b) || len(b.DNSNames) != 2 {
		t.Fatalf("the changed CSR got %v", b.DNSNames)
	}
	if !send(two).Equal(b) || !send(one).Equal(a) {
		t.Fatal("a retransmission got another certificate")
	}
	// certmonger regenerates the CSR of a resubmitted request with a fresh
	// subjectKeyIdentifier: the same request, the same answer.
	ski := make([]byte, 20)
	rand.Read(ski)
	skiExt, _ := asn1.Marshal(ski)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}, DNSNames: []string{"a.example", "b.example"},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 14}, Value: skiExt}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	regenerated, _ := x509.ParseCertificateRequest(der)
	if !send(regenerated).Equal(b) {
		t.Fatal("a regenerated CSR of the same request got another certificate")
	}
	if n := count(t, st); n != 2 {
		t.Fatalf("%d certificates, want 2", n)
	}
	res, err := svc.Poll(ctx, p, "same", &key.PublicKey, "")
	if err != nil || !certOf(t, res).Equal(b) {
		t.Fatalf("poll: %v; want the newest request's certificate", err)
	}
}

// TestClientIDCannotTakeAQualifiedID: a device that may enroll in the
// profile cannot take the ID a victim's renewal (txid@serial) or changed
// CSR (txid@csr-digest) will be stored under: a transactionID with '@'
// is refused, and the victim renews.
func TestClientIDCannotTakeAQualifiedID(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	victimKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	first, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "victim", CSR: keyCSR(t, victimKey, "dev"), Password: password})
	if err != nil {
		t.Fatal(err)
	}
	squat := "victim@" + certOf(t, first).SerialNumber.Text(16)
	_, err = svc.PKCSReq(ctx, p, enroll.Request{TransactionID: squat, CSR: csr(t, 2048, "attacker"), Password: password})
	if rej := rejection(err); rej == nil || rej.FailInfo != scep.BadRequest || rej.Reason != `transactionID "`+squat+`" contains '@', which is not a PrintableString character (RFC 8894 §3.2.1.1)` {
		t.Fatalf("enrolling under %q: %v, want a badRequest rejection", squat, err)
	}
	if _, err := st.GetTransaction(ctx, "p", squat); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the squatting request was stored: %v", err)
	}
	res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "victim", CSR: csr(t, 2048, "dev"), Renewal: true, Signer: certOf(t, first), SignerKey: &victimKey.PublicKey})
	if err != nil || res.Renewed != certOf(t, first).SerialNumber.Text(16) {
		t.Fatalf("the victim's renewal: %v", err)
	}
	if _, err := svc.Poll(ctx, p, squat, &victimKey.PublicKey, ""); rejection(err) == nil || rejection(err).FailInfo != scep.BadCertID {
		t.Fatalf("CertPoll for a qualified ID: %v, want the unknown-transaction answer", err)
	}
}

// TestPollBusyTransactionID: CertPoll answers the newest request of the
// polling key even when its transactionID has more requests than one
// listing holds (1000), and another key's newer request is not it.
func TestPollBusyTransactionID(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	c := keyCSR(t, key, "busy")
	keyHash := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	old := testNow().Add(-time.Hour)
	for i := range 1000 { // earlier requests of this key under "busy", still pending
		tx := store.Transaction{ProfileID: "p", TransactionID: fmt.Sprintf("busy@csr-%04d", i), ClientTransactionID: "busy", Status: store.StatusPending,
			PublicKeySHA256: keyHash[:], CSRDER: c.Raw, Expires: testNow().Add(time.Hour), Created: old, Updated: old}
		if err := st.RecordPending(ctx, tx, "", store.AuditEvent{Time: old, Actor: "device", Action: "enroll", Outcome: "pending"}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "busy", CSR: c, Password: password, SignerKey: &key.PublicKey})
	if err != nil || res.DER == nil {
		t.Fatalf("the newest request: %+v %v", res, err)
	}
	// A stranger's request under the same transactionID, newer still.
	if _, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "busy", CSR: csr(t, 2048, "other"), Password: password}); rejection(err) == nil {
		t.Fatalf("another key under a used transactionID: %v, want a rejection", err)
	}
	got, err := svc.Poll(ctx, p, "busy", &key.PublicKey, "")
	if err != nil || got.DER == nil || !certOf(t, got).Equal(certOf(t, res)) {
		t.Fatalf("poll: %+v %v; want the newest request's certificate", got, err)
	}
}

// TestApproveHeldRenewalRechecks: approving a held renewal checks the
// renewal policy again as it stands then: renewal disabled since, the old
// certificate expired meanwhile, or the profile no longer renewing the
// old certificate's profile (renewal.from_profiles) make it not
// approvable, and nothing is issued.
func TestApproveHeldRenewalRechecks(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(q *enroll.Profile, svc **enroll.Service, st store.Store, old *x509.Certificate)
		want   string
	}{
		{"renewal disabled", func(q *enroll.Profile, _ **enroll.Service, _ store.Store, _ *x509.Certificate) {
			q.Renewal.Disabled = true
		},
			"renewal with a certificate is disabled on this profile"},
		{"old certificate expired", func(_ *enroll.Profile, svc **enroll.Service, st store.Store, old *x509.Certificate) {
			*svc = enroll.New(st, func() time.Time { return old.NotAfter.Add(time.Minute) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}, "has expired"},
		{"from_profiles no longer names it", func(q *enroll.Profile, _ **enroll.Service, _ store.Store, _ *x509.Certificate) {
			q.Renewal.FromProfiles = nil
		}, "profile q no longer renews certificates of profile p"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc, p, st := setup(t)
			q := second(t, st, p)
			ctx := context.Background()
			oldKey, _ := rsa.GenerateKey(rand.Reader, 2048)
			first, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "t1", CSR: keyCSR(t, oldKey, "dev"), Password: password})
			if err != nil {
				t.Fatal(err)
			}
			q.Manual, q.Renewal.Approval, q.Renewal.FromProfiles = true, "manual", []string{"p"}
			res, err := svc.PKCSReq(ctx, q, enroll.Request{TransactionID: "t1", CSR: csr(t, 2048, "dev"), Renewal: true, Signer: certOf(t, first), SignerKey: &oldKey.PublicKey})
			if err != nil || !res.Pending {
				t.Fatalf("held renewal: %+v %v", res, err)
			}
			tt.change(q, &svc, st, certOf(t, first))
			cert, err := svc.Approve(ctx, q, "t1@"+certOf(t, first).SerialNumber.Text(16), "token:op")
			if !errors.Is(err, enroll.ErrNotApprovable) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("approve: issued %v, %v; want ErrNotApprovable (%s)", cert != nil, err, tt.want)
			}
			if n := count(t, st); n != 1 {
				t.Fatalf("%d certificates, want only the first", n)
			}
		})
	}
}

// barrier holds every RecordIssued until n have arrived: concurrent
// approvals that all passed their checks commit at once.
type barrier struct {
	enroll.Store
	mu      sync.Mutex
	arrived int
	all     chan struct{}
	n       int
}

func (b *barrier) RecordIssued(ctx context.Context, rec store.Issued) error {
	b.mu.Lock()
	if b.arrived++; b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	<-b.all
	return b.Store.RecordIssued(ctx, rec)
}

// TestConcurrentApprovalsOfOneRenewal: two held renewals of the same
// certificate on a revoke_old profile, approved at once (both past their
// checks before either commits): one issues and revokes the old
// certificate, the other is not approvable, as it would be approved
// second. Without revoke_old both issue, as two renewals of a valid
// certificate do on arrival.
func TestConcurrentApprovalsOfOneRenewal(t *testing.T) {
	for _, revokeOld := range []bool{true, false} {
		t.Run(map[bool]string{true: "revoke_old", false: "keep old"}[revokeOld], func(t *testing.T) {
			svc, p, st := setup(t)
			ctx := context.Background()
			oldKey, _ := rsa.GenerateKey(rand.Reader, 2048)
			first, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "t0", CSR: keyCSR(t, oldKey, "dev"), Password: password})
			if err != nil {
				t.Fatal(err)
			}
			p.Manual, p.Renewal.Approval, p.Renewal.RevokeOld = true, "manual", revokeOld
			serial := certOf(t, first).SerialNumber.Text(16)
			ids := []string{"t1@" + serial, "t2@" + serial}
			for _, txid := range []string{"t1", "t2"} {
				res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: txid, CSR: csr(t, 2048, "dev"), Renewal: true, Signer: certOf(t, first), SignerKey: &oldKey.PublicKey})
				if err != nil || !res.Pending {
					t.Fatalf("held renewal %s: %+v %v", txid, res, err)
				}
			}
			both := enroll.New(&barrier{Store: st, n: 2, all: make(chan struct{})}, testNow, slog.New(slog.NewTextHandler(io.Discard, nil)))
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Add(1)
				go func() { defer wg.Done(); _, errs[i] = both.Approve(ctx, p, id, "token:op") }()
			}
			wg.Wait()
			issued := 0
			for _, err := range errs {
				switch {
				case err == nil:
					issued++
				case !revokeOld || !errors.Is(err, enroll.ErrNotApprovable) || !strings.Contains(err.Error(), "revoked"):
					t.Fatalf("approval: %v", err)
				}
			}
			want := map[bool]int{true: 1, false: 2}[revokeOld]
			if issued != want || count(t, st) != 1+want {
				t.Fatalf("%d approvals issued, %d certificates; want %d renewals", issued, count(t, st), want)
			}
			old, _ := st.GetCertificate(ctx, serial)
			if (old.Status == store.CertRevoked) != revokeOld {
				t.Fatalf("old certificate %s", old.Status)
			}
			pending, _ := st.ListTransactions(ctx, store.TransactionFilter{ProfileID: "p", Status: store.StatusPending})
			if len(pending) != 2-want {
				t.Fatalf("%d requests still pending, want %d", len(pending), 2-want)
			}
		})
	}
}

// testNow is the enrollment tests' clock: fixed, so every time a
// certificate or request carries follows from it.
func testNow() time.Time { return time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC) }

// certOf parses the certificate of an enrollment result.
func certOf(t testing.TB, r enroll.Result) *x509.Certificate {
	t.Helper()
	c, err := r.Certificate()
	if err != nil || c == nil {
		t.Fatalf("result certificate: %v", err)
	}
	return c
}

// TestLapsedCertificateIsNoAnswer: clients derive the transactionID from
// the key and enroll again with the key they hold once their certificate
// lapsed (sscep, micromdm's scepclient, routers). A request repeating one
// whose certificate is revoked or expired is a new request: challenge and
// all, a new certificate, never the lapsed one back.
func TestLapsedCertificateIsNoAnswer(t *testing.T) {
	svc, p, st := setup(t)
	p.Policy.Validity = time.Hour
	ctx := context.Background()
	req := enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password}
	req.SignerKey = req.CSR.PublicKey
	first, err := svc.PKCSReq(ctx, p, req)
	if err != nil {
		t.Fatal(err)
	}
	serial := fmt.Sprintf("%x", certOf(t, first).SerialNumber)
	if err := st.RevokeCertificate(ctx, serial, ca.ReasonCessationOfOperation, testNow(), nil, store.AuditEvent{Time: testNow(), Actor: "t",
		Action: "certificate.revoke", Object: "certificate:" + serial, Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	wrong := req
	wrong.Password = "wrong"
	var rej *enroll.Rejection
	if res, err := svc.PKCSReq(ctx, p, wrong); !errors.As(err, &rej) || res.DER != nil {
		t.Fatalf("the same request with a wrong challenge after the revocation: %v, a certificate %v; want a rejection", err, res.DER != nil)
	}
	second, err := svc.PKCSReq(ctx, p, req)
	if err != nil || second.Replayed || certOf(t, second).SerialNumber.Cmp(certOf(t, first).SerialNumber) == 0 {
		t.Fatalf("the same request after the revocation: %v, replayed %v; want a new certificate", err, second.Replayed)
	}
	tx, err := st.GetTransaction(ctx, "p", "tx@after-"+serial)
	if err != nil || tx.ClientID() != "tx" || tx.CertSerial != fmt.Sprintf("%x", certOf(t, second).SerialNumber) {
		t.Fatalf("the new request stored as %+v, %v; want under tx@after-%s with the client's ID tx", tx, err, serial)
	}
	again, err := svc.PKCSReq(ctx, p, req)
	if err != nil || !again.Replayed || !certOf(t, again).Equal(certOf(t, second)) {
		t.Fatalf("its retransmission: %v, replayed %v; want the new certificate again", err, again.Replayed)
	}
	// Expired: an hour later the same request is a new one again.
	later := enroll.New(st, func() time.Time { return testNow().Add(2 * time.Hour) }, slog.New(slog.DiscardHandler))
	third, err := later.PKCSReq(ctx, p, req)
	if err != nil || third.Replayed || certOf(t, third).Equal(certOf(t, second)) || !certOf(t, third).NotBefore.After(testNow()) {
		t.Fatalf("the same request after the certificate expired: %v, replayed %v; want a new certificate", err, third.Replayed)
	}
	if n := count(t, st); n != 3 {
		t.Fatalf("%d certificates, want 3", n)
	}
}

// TestCompromisedKeyRefused: once a certificate is revoked for key
// compromise, no certificate is issued for its key again: not for the
// same request, another transactionID or subject, another profile, nor
// by approving a request held before.
func TestCompromisedKeyRefused(t *testing.T) {
	svc, p, st := setup(t)
	q := second(t, st, p)
	ctx := context.Background()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	req := func(txID, cn string) enroll.Request {
		return enroll.Request{TransactionID: txID, CSR: keyCSR(t, key, cn), Password: password, SignerKey: &key.PublicKey}
	}
	first, err := svc.PKCSReq(ctx, p, req("t1", "dev"))
	if err != nil {
		t.Fatal(err)
	}
	// Another certificate of the same key (a second request under
	// another transactionID), which stays valid.
	sibling, err := svc.PKCSReq(ctx, p, req("t0", "dev-sibling"))
	if err != nil {
		t.Fatal(err)
	}
	q.Manual = true
	if held, err := svc.PKCSReq(ctx, q, req("t2", "dev-q")); err != nil || !held.Pending {
		t.Fatalf("held request: %+v, %v", held, err)
	}
	serial := fmt.Sprintf("%x", certOf(t, first).SerialNumber)
	if err := st.RevokeCertificate(ctx, serial, ca.ReasonKeyCompromise, testNow(), ca.KeyDigest(&key.PublicKey), store.AuditEvent{Time: testNow(),
		Actor: "t", Action: "certificate.revoke", Object: "certificate:" + serial, Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	q.Manual = false
	for _, tt := range []struct {
		name    string
		profile *enroll.Profile
		req     enroll.Request
	}{
		{"the same request", p, req("t1", "dev")},
		{"another transactionID and subject", p, req("t3", "other")},
		{"another profile", q, req("t4", "dev")},
	} {
		res, err := svc.PKCSReq(ctx, tt.profile, tt.req)
		if rej := rejection(err); rej == nil || res.DER != nil || !strings.Contains(rej.Reason, "revoked for key compromise") || !strings.Contains(rej.Reason, serial) {
			t.Errorf("%s: %v, a certificate %v; want a rejection naming %s and key compromise", tt.name, err, res.DER != nil, serial)
		}
	}
	// A renewal to a new key, signed with the sibling: the signing key is
	// the compromised one.
	newKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "t6", CSR: keyCSR(t, newKey, "dev-sibling"), Renewal: true,
		Signer: certOf(t, sibling), SignerKey: &key.PublicKey})
	if rej := rejection(err); rej == nil || res.DER != nil || !strings.Contains(rej.Reason, "revoked for key compromise") {
		t.Errorf("a renewal signed with another certificate of the compromised key: %v, a certificate %v; want a rejection", err, res.DER != nil)
	}
	if cert, err := svc.Approve(ctx, q, "t2", "op"); !errors.Is(err, enroll.ErrNotApprovable) || !strings.Contains(err.Error(), "key compromise") {
		t.Errorf("approving the request held before: issued %v, %v; want ErrNotApprovable", cert != nil, err)
	}
	if _, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "t5", CSR: csr(t, 2048, "dev"), Password: password}); err != nil {
		t.Errorf("a new key: %v", err)
	}
	if n := count(t, st); n != 3 {
		t.Fatalf("%d certificates, want 3", n)
	}
}

// slowValidator answers when the request's context ends, as a webhook or
// Intune cut off by the server's answer deadline does: with a refusal
// (the validators turn a failed call into one).
type slowValidator struct{}

func (slowValidator) Validate(ctx context.Context, _ challenge.Request) (challenge.Grant, error) {
	<-ctx.Done()
	return challenge.Grant{}, &challenge.Rejected{Reason: "the validation service did not answer: " + ctx.Err().Error()}
}

// TestValidatorCutByDeadline: a request whose time runs out while its
// validator is asked gets no verdict: not a refusal (FAILURE is final
// for SCEP clients) and no failed attempt counted against its address;
// the server answers it "retry" (503).
func TestValidatorCutByDeadline(t *testing.T) {
	svc, p, _ := setup(t)
	p.Challenge = slowValidator{}
	request := csr(t, 2048, "dev")
	for i := range enroll.DefaultMaxFailures + 1 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: fmt.Sprint("slow-", i), CSR: request, Password: "x", RemoteAddr: "192.0.2.7:1000"})
		cancel()
		if rejection(err) != nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("attempt %d: %v; want the deadline, not a refusal", i, err)
		}
	}
	// Not locked out: a check that answers is asked.
	p.Challenge = challenge.None{}
	if _, err := svc.PKCSReq(context.Background(), p, enroll.Request{TransactionID: "after", CSR: csr(t, 2048, "dev"), RemoteAddr: "192.0.2.7:1000"}); err != nil {
		t.Fatalf("after the deadlines: %v; want issued (no failures counted)", err)
	}
}

// slowUpstream answers when the request's context ends, as an upstream
// CA cut off by the server's answer deadline does.
type slowUpstream struct{}

func (slowUpstream) Name() string { return "scep:https://ca.example/slow" }
func (slowUpstream) Issue(ctx context.Context, _ enroll.IssueRequest) (enroll.Issuance, error) {
	<-ctx.Done()
	return enroll.Issuance{}, &enroll.UpstreamError{Upstream: "scep:https://ca.example/slow", Reason: "no answer within 20s", Err: ctx.Err()}
}
func (slowUpstream) Poll(ctx context.Context, req enroll.IssueRequest, _ []byte) (enroll.Issuance, error) {
	return slowUpstream{}.Issue(ctx, req)
}

// TestUpstreamCutByDeadline: a request whose time runs out while the
// upstream CA is asked is not refused (FAILURE is final for SCEP
// clients): the server answers it "retry".
func TestUpstreamCutByDeadline(t *testing.T) {
	svc, p, _ := setup(t)
	p.Challenge, p.Issuer = challenge.None{}, slowUpstream{}
	request := csr(t, 2048, "dev")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "slow-upstream", CSR: request})
	if rejection(err) != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v; want the deadline, not a refusal", err)
	}
}
