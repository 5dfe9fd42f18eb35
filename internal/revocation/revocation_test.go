package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

// fixture is a CA with two issued certificates in a real SQLite store,
// and two Services on it (two replicas), clocks stopped.
type fixture struct {
	st   store.Store
	ca   *ca.CA
	a, b *Service
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key, err := ca.GenerateKey(ca.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.NewRoot(key, pkix.Name{CommonName: "Revocation Test Root"}, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateCA(ctx, store.CA{ID: "root", CertDER: root.Cert.Raw, KeyRef: "file:k", Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateProfile(ctx, store.Profile{ID: "p", CAID: "root", RACertDER: root.Cert.Raw, RAKeyRef: "file:k",
		ChallengeMode: store.ChallengeNone, Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	for _, serial := range []string{"a1", "b2"} {
		n, _ := new(big.Int).SetString(serial, 16)
		leafKey, _ := ca.GenerateKey(ca.ECDSAP256)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: n, Subject: pkix.Name{CommonName: serial},
			NotBefore: now, NotAfter: now.Add(time.Hour)}, root.Cert, leafKey.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.RecordIssued(ctx, store.Issued{
			Certificate: store.Certificate{Serial: serial, ProfileID: "p", TransactionID: serial, Subject: "CN=" + serial, NotBefore: now,
				NotAfter: now.Add(time.Hour), DER: der, Status: store.CertValid, CAID: "root", Created: now},
			Transaction: store.Transaction{ProfileID: "p", TransactionID: serial, Status: store.StatusIssued, PublicKeySHA256: []byte(serial),
				CSRDER: []byte{1}, CertSerial: serial, Created: now, Updated: now},
			Audit: store.AuditEvent{Time: now, Actor: "t", Action: "enroll", Object: "certificate:" + serial, Outcome: "issued"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{st: st, ca: root, now: now}
	replica := func() *Service {
		return &Service{Store: st, CAs: func() map[string]*ca.CA { return map[string]*ca.CA{"root": root} },
			Now: func() time.Time { return f.now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	f.a, f.b = replica(), replica()
	return f
}

// crl fetches the CA's CRL from s and checks its signature.
func (f *fixture) crl(t *testing.T, s *Service) (store.CRL, map[string]int) {
	t.Helper()
	c, err := s.CRL(context.Background(), "root")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseRevocationList(c.DER)
	if err != nil || parsed.CheckSignatureFrom(f.ca.Cert) != nil || parsed.Number.Int64() != c.Number {
		t.Fatalf("CRL %d does not parse or verify: %v", c.Number, err)
	}
	entries := map[string]int{}
	for _, e := range parsed.RevokedCertificateEntries {
		entries[e.SerialNumber.Text(16)] = e.ReasonCode
	}
	return c, entries
}

// TestCRLFollowsStoreRevocations: a revocation written to the store by
// any path (here straight through the store, as renewal's revoke_old
// does, and through another replica's Service) is on the CRL the next
// request gets from every replica, while an unchanged CRL is served as
// it is, not signed again.
func TestCRLFollowsStoreRevocations(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, entries := f.crl(t, f.a)
	if len(entries) != 0 {
		t.Fatalf("first CRL lists %v", entries)
	}
	if again, _ := f.crl(t, f.b); again.Number != first.Number {
		t.Fatalf("an unchanged CRL was signed again: number %d after %d", again.Number, first.Number)
	}

	// Revoked in the store only, as enrollment's revoke_old does.
	if err := f.st.RevokeCertificate(ctx, "a1", 4, f.now, nil, store.AuditEvent{Time: f.now, Actor: "scepd", Action: "certificate.revoke",
		Object: "certificate:a1", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Service{"a": f.a, "b": f.b} {
		c, entries := f.crl(t, s)
		if entries["a1"] != 4 || c.Number <= first.Number {
			t.Fatalf("replica %s after a store revocation: CRL %d lists %v, want a1 (superseded) in a CRL after %d", name, c.Number, entries, first.Number)
		}
	}
	second, _ := f.crl(t, f.a)

	// Revoked through replica b's Service: replica a serves it next.
	if _, err := f.b.Revoke(ctx, "b2", 1, "op"); err != nil {
		t.Fatal(err)
	}
	c, entries := f.crl(t, f.a)
	if entries["b2"] != 1 || entries["a1"] != 4 || c.Number <= second.Number {
		t.Fatalf("after revoking through replica b, replica a serves CRL %d with %v", c.Number, entries)
	}
	// Revoking again changes nothing: no new CRL.
	if _, err := f.b.Revoke(ctx, "b2", 1, "op"); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.crl(t, f.b); again.Number != c.Number {
		t.Fatalf("a repeated revocation signed a new CRL: %d after %d", again.Number, c.Number)
	}
	// Half the lifetime later a new one is signed anyway.
	f.now = f.now.Add(13 * time.Hour)
	// (thisUpdate a minute back, for relying parties whose clock is behind)
	if later, _ := f.crl(t, f.a); later.Number <= c.Number || !later.ThisUpdate.Equal(f.now.Add(-time.Minute)) {
		t.Fatalf("after half the lifetime: CRL %d of %v", later.Number, later.ThisUpdate)
	}
}

// TestCRLServedWhenSigningFails: a stale CRL is still served until its
// nextUpdate when a new one cannot be signed; after it, the error shows.
func TestCRLServedWhenSigningFails(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, _ := f.crl(t, f.a)
	if _, err := f.a.Revoke(ctx, "a1", 1, "op"); err != nil {
		t.Fatal(err)
	}
	f.b.CAs = func() map[string]*ca.CA { return nil } // the key is gone
	c, err := f.b.CRL(ctx, "root")
	if err != nil || c.Number != first.Number {
		t.Fatalf("stale CRL while signing fails: %d, %v; want %d", c.Number, err, first.Number)
	}
	f.now = first.NextUpdate
	if _, err := f.b.CRL(ctx, "root"); !errors.Is(err, ErrUnknownCA) {
		t.Fatalf("after nextUpdate: %v, want the signing error", err)
	}
}

// TestOCSPFindsTheCA: without a CA named (the bare /ocsp responder) the
// request's issuer hashes pick the CA, which signs the answer; a request
// for an issuer we do not hold is unauthorized (RFC 6960 §2.3).
func TestOCSPFindsTheCA(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key, _ := ca.GenerateKey(ca.ECDSAP256)
	leaf, err := f.ca.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: "leaf"}, NotBefore: f.now, NotAfter: f.now.Add(time.Hour)}, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ask := func(issuer *x509.Certificate) []byte {
		t.Helper()
		req, err := ocsp.CreateRequest(leaf, issuer, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := f.a.OCSP(ctx, "", req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.DER
	}
	resp, err := ocsp.ParseResponseForCert(ask(f.ca.Cert), leaf, f.ca.Cert)
	if err != nil || resp.Status != ocsp.Unknown { // not in the store: unknown, but answered and signed by the CA
		t.Fatalf("OCSP for our CA: %+v, %v", resp, err)
	}
	otherKey, _ := ca.GenerateKey(ca.ECDSAP256)
	other, err := ca.NewRoot(otherKey, pkix.Name{CommonName: "Someone Else"}, time.Hour, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if got := ask(other.Cert); string(got) != string(ocsp.UnauthorizedErrorResponse) {
		t.Fatalf("OCSP for a foreign issuer: %x, want unauthorized", got)
	}
}

// TestOCSPAnswersTheCertIDAsked: a request with a SHA-256 (or SHA-384,
// SHA-512) CertID gets a response for that CertID, not a SHA-1 one the
// relying party would not match; and a certificate an upstream CA issued
// (stored under the local CA of the RA-mode profile) is unknown, never
// good, from a CA that did not issue it.
func TestOCSPAnswersTheCertIDAsked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ask := func(serial int64, h crypto.Hash) *ocsp.Response {
		t.Helper()
		req, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: big.NewInt(serial)}, f.ca.Cert, &ocsp.RequestOptions{Hash: h})
		if err != nil {
			t.Fatal(err)
		}
		answer, err := f.a.OCSP(ctx, "root", req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocsp.ParseResponse(answer.DER, f.ca.Cert)
		if err != nil {
			t.Fatal(err)
		}
		// The validity returned is the one signed (the HTTP caching headers say it).
		if !resp.ThisUpdate.Equal(answer.ThisUpdate) || !resp.NextUpdate.Equal(answer.NextUpdate) {
			t.Fatalf("returned validity %v to %v, signed %v to %v", answer.ThisUpdate, answer.NextUpdate, resp.ThisUpdate, resp.NextUpdate)
		}
		return resp
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		if resp := ask(0xa1, h); resp.Status != ocsp.Good || resp.IssuerHash != h || resp.SerialNumber.Int64() != 0xa1 {
			t.Errorf("%v CertID: status %d, answered with a %v CertID for %x; want good for the CertID asked", h, resp.Status, resp.IssuerHash, resp.SerialNumber)
		}
	}
	if err := f.st.RecordIssued(ctx, store.Issued{
		Certificate: store.Certificate{Serial: "c3", ProfileID: "p", TransactionID: "c3", Subject: "CN=c3", NotBefore: f.now,
			NotAfter: f.now.Add(time.Hour), DER: []byte("c3"), Status: store.CertValid, CAID: "root", Created: f.now, Upstream: "scep:http://ca.example/scep"},
		Transaction: store.Transaction{ProfileID: "p", TransactionID: "c3", Status: store.StatusIssued, PublicKeySHA256: []byte("c3"),
			CSRDER: []byte{1}, CertSerial: "c3", Created: f.now, Updated: f.now},
		Audit: store.AuditEvent{Time: f.now, Actor: "t", Action: "enroll", Object: "certificate:c3", Outcome: "issued"},
	}); err != nil {
		t.Fatal(err)
	}
	if resp := ask(0xc3, crypto.SHA256); resp.Status != ocsp.Unknown {
		t.Errorf("an upstream's certificate: status %d, want unknown", resp.Status)
	}
}

// revokingBetween is a store on which a revocation commits right after
// the first read of the revoked list, before the CRL's number is taken
// (another replica revoking while this one signs).
type revokingBetween struct {
	Store
	revoke func()
	done   bool
}

func (r *revokingBetween) ListRevoked(ctx context.Context, caID string) ([]store.Revoked, error) {
	list, err := r.Store.ListRevoked(ctx, caID)
	if !r.done {
		r.done = true
		r.revoke()
	}
	return list, err
}

// TestCRLNumberFollowsItsList: a revocation committing between a CRL's
// list and its number makes the list be read again, so no CRL gets a
// number above one that lists more: the CRL signed lists it.
func TestCRLNumberFollowsItsList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, _ := f.crl(t, f.a)
	racy := &revokingBetween{Store: f.st, revoke: func() {
		if _, err := f.b.Revoke(ctx, "b2", 1, "op"); err != nil {
			t.Error(err)
		}
	}}
	f.a.Store = racy
	c, err := f.a.Refresh(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed.RevokedCertificateEntries) != 1 || c.Number <= first.Number {
		t.Fatalf("CRL %d lists %d certificates; want the one revoked while it was signed", c.Number, len(parsed.RevokedCertificateEntries))
	}
}

// TestOCSPOneCAUnderTwoIDs: the bare responder answers from the CA that
// issued the certificate when one CA (subject and key) is loaded under
// two IDs (imported twice, or certified again with its key); it picked
// either, and the other answered unknown for a revoked certificate.
func TestOCSPOneCAUnderTwoIDs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.a.Revoke(ctx, "a1", 1, "op"); err != nil {
		t.Fatal(err)
	}
	// "root" holds the certificate; the others sort before it.
	f.a.CAs = func() map[string]*ca.CA { return map[string]*ca.CA{"a-root": f.ca, "root": f.ca, "old-root": f.ca} }
	serial, _ := new(big.Int).SetString("a1", 16)
	req, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: serial}, f.ca.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // map order varies
		answer, err := f.a.OCSP(ctx, "", req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocsp.ParseResponse(answer.DER, f.ca.Cert)
		if err != nil || resp.Status != ocsp.Revoked {
			t.Fatalf("status %d, %v; want revoked", resp.Status, err)
		}
	}
}

// TestCRLNumberAfterRestore: a database restored from a backup has its CRL
// counter as it was then; the CRLs published since must not see their
// numbers handed out again for other contents (RFC 5280 §5.2.3: unique and
// increasing). The number is at least the signing time in milliseconds.
func TestCRLNumberAfterRestore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, _ := f.crl(t, f.a)
	if first.Number < f.now.UnixMilli() {
		t.Fatalf("CRL number %d below the signing time %d", first.Number, f.now.UnixMilli())
	}
	if _, err := f.a.Revoke(ctx, "a1", 1, "op"); err != nil {
		t.Fatal(err)
	}
	published, _ := f.crl(t, f.a)
	// The restore: the counter and the CRLs back to before the first.
	db := f.st.(interface{ DB() *sql.DB }).DB()
	if _, err := db.Exec(`UPDATE cas SET crl_number = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM crls`); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Minute)
	after, _ := f.crl(t, f.a)
	if after.Number <= published.Number {
		t.Fatalf("CRL number %d after the restore; %d was published before it", after.Number, published.Number)
	}
}

// TestOCSPAnswerReused: an answer is the same for a few minutes (its
// thisUpdate the start of the period): signed once per replica and given
// again, with the same thisUpdate and ETag on every replica (an HTTP
// cache's conditional GET holds whichever it reaches); but never past a
// change of status: a revocation another replica records is answered at
// once.
func TestOCSPAnswerReused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.now = time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC) // the period from 12:00 (thisUpdate) to 12:06
	leaf := &x509.Certificate{SerialNumber: big.NewInt(0xa1)}
	ask := func(s *Service, h crypto.Hash) (*ocsp.Response, OCSPResponse) {
		t.Helper()
		req, err := ocsp.CreateRequest(leaf, f.ca.Cert, &ocsp.RequestOptions{Hash: h})
		if err != nil {
			t.Fatal(err)
		}
		answer, err := s.OCSP(ctx, "root", req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocsp.ParseResponse(answer.DER, f.ca.Cert)
		if err != nil {
			t.Fatal(err)
		}
		return resp, answer
	}
	first, a := ask(f.a, crypto.SHA1)
	if first.Status != ocsp.Good || !first.ThisUpdate.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) || !strings.HasPrefix(a.ETag, `W/"`) {
		t.Fatalf("status %d, thisUpdate %v, ETag %q; want good, 12:00, a weak ETag", first.Status, first.ThisUpdate, a.ETag)
	}
	f.now = f.now.Add(4 * time.Minute)
	if _, again := ask(f.a, crypto.SHA1); !bytes.Equal(again.DER, a.DER) {
		t.Error("asked again within the period: a new answer, want the same")
	}
	if other, b := ask(f.b, crypto.SHA1); !other.ThisUpdate.Equal(first.ThisUpdate) || b.ETag != a.ETag {
		t.Errorf("the other replica: thisUpdate %v, ETag %q; want %v, %q", other.ThisUpdate, b.ETag, first.ThisUpdate, a.ETag)
	}
	if resp, other := ask(f.a, crypto.SHA256); bytes.Equal(other.DER, a.DER) || other.ETag == a.ETag || resp.IssuerHash != crypto.SHA256 {
		t.Error("a SHA-256 CertID got the SHA-1 CertID's answer")
	}
	if _, err := f.b.Revoke(ctx, "a1", 1, "op"); err != nil {
		t.Fatal(err)
	}
	revoked, r := ask(f.a, crypto.SHA1)
	if revoked.Status != ocsp.Revoked || r.ETag == a.ETag || !revoked.ThisUpdate.Equal(f.now.Truncate(time.Second)) || revoked.ThisUpdate.Before(revoked.RevokedAt) {
		t.Fatalf("after the other replica revoked it: status %d, thisUpdate %v (revoked at %v), ETag %q (before %q); want revoked as of the revocation, another ETag",
			revoked.Status, revoked.ThisUpdate, revoked.RevokedAt, r.ETag, a.ETag)
	}
	if other, b := ask(f.b, crypto.SHA1); !other.ThisUpdate.Equal(revoked.ThisUpdate) || b.ETag != r.ETag {
		t.Errorf("the other replica's revoked answer: thisUpdate %v, ETag %q; want %v, %q", other.ThisUpdate, b.ETag, revoked.ThisUpdate, r.ETag)
	}
	f.now = f.now.Add(2 * answerPeriod)
	if resp, again := ask(f.a, crypto.SHA1); bytes.Equal(again.DER, r.DER) || !resp.ThisUpdate.After(revoked.ThisUpdate) || resp.Status != ocsp.Revoked {
		t.Errorf("asked in the next period: thisUpdate %v (before %v), status %d; want a newer revoked answer", resp.ThisUpdate, revoked.ThisUpdate, resp.Status)
	}
}

// TestRevokeForKeyCompromise: a revocation for key compromise records the
// certificate's key (as ca.KeyDigest encodes it), also for a certificate
// revoked before for another reason, and says so in its audit event;
// another reason records nothing.
func TestRevokeForKeyCompromise(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	keyOf := func(serial string) []byte {
		c, err := f.st.GetCertificate(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			t.Fatal(err)
		}
		return ca.KeyDigest(cert.PublicKey)
	}
	if _, err := f.a.Revoke(ctx, "a1", ca.ReasonSuperseded, "op"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.KeyCompromised(ctx, keyOf("a1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a revocation as superseded recorded the key: %v", err)
	}
	for _, serial := range []string{"a1", "b2"} { // a1 revoked already
		if _, err := f.b.Revoke(ctx, serial, ca.ReasonKeyCompromise, "op"); err != nil {
			t.Fatal(err)
		}
		if got, err := f.st.KeyCompromised(ctx, keyOf(serial)); err != nil || got != serial {
			t.Errorf("KeyCompromised(key of %s) = %q, %v", serial, got, err)
		}
	}
	events, err := f.st.ListAudit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		if e.Object == "certificate:b2" && e.Details["reason"] == "keyCompromise" && e.Details["key_sha256"] == hex.EncodeToString(keyOf("b2")) {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit event of b2's revocation naming its key: %+v", events)
	}
}

// down is a store that can be made unavailable.
type down struct {
	Store
	off bool
}

func (d *down) RevocationGeneration(ctx context.Context, caID string) (int64, error) {
	if d.off {
		return 0, fmt.Errorf("connection refused: %w", store.ErrUnavailable)
	}
	return d.Store.RevocationGeneration(ctx, caID)
}

// TestCRLWhileDatabaseDown: while the database is unavailable a replica
// serves the last CRL it served, until its nextUpdate; a CRL it never
// served, or one past its nextUpdate, is the error.
func TestCRLWhileDatabaseDown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	db := &down{Store: f.st}
	s := &Service{Store: db, CAs: f.a.CAs, Now: func() time.Time { return f.now }, Log: f.a.Log}
	served, err := s.CRL(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	db.off = true
	got, err := s.CRL(ctx, "root")
	if err != nil || got.Number != served.Number || !bytes.Equal(got.DER, served.DER) {
		t.Fatalf("with the database down: CRL %d, %v; want the one served before (%d)", got.Number, err, served.Number)
	}
	other := &Service{Store: db, CAs: f.a.CAs, Now: func() time.Time { return f.now }, Log: f.a.Log}
	if _, err := other.CRL(ctx, "root"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a replica that served none: %v, want ErrUnavailable", err)
	}
	f.now = served.NextUpdate
	if _, err := s.CRL(ctx, "root"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("at its nextUpdate: %v, want ErrUnavailable", err)
	}
}
