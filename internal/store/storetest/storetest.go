// Package storetest is the conformance suite every store.Store backend
// runs with its own constructor.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// Run runs the suite. newStore returns an empty store; the suite closes it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CA", testCA},
		{"Profile", testProfile},
		{"RecordIssued", testRecordIssued},
		{"DuplicateTransactionWritesNothing", testDuplicateTransaction},
		{"ConcurrentIssue", testConcurrentIssue},
		{"ConcurrentIssueOneFails", testConcurrentIssueOneFails},
		{"SenderNonceReuse", testSenderNonceReuse},
		{"RequestsUnderOneTransactionID", testClientTransactionID},
		{"LatestRequestOfAKey", testLatestRequest},
		{"SupersedeOnce", testSupersedeOnce},
		{"SerialCollision", testSerialCollision},
		{"AuditChain", testAuditChain},
		{"ChallengeCapAndLookup", testChallengeCap},
		{"ChallengeConsumedOnce", testChallengeConsumedOnce},
		{"SpentChallengeRollsBack", testSpentChallengeRollsBack},
		{"Integrity", testIntegrity},
		{"Tokens", testTokens},
		{"CertificateFilters", testCertificateFilters},
		{"KeysetPaging", testKeysetPaging},
		{"PendingLifecycle", testPendingLifecycle},
		{"ExpiredRequestsAudited", testExpireAudited},
		{"ExpiryRacesApproval", testExpireRacesApproval},
		{"RevocationAndCRLs", testRevocationAndCRLs},
		{"CompromisedKeys", testCompromisedKeys},
		{"Entities", testEntities},
		{"SinkLease", testSinkLease},
		{"ExpiryNotices", testExpiryNotices},
		{"Sessions", testSessions},
		{"DashboardCounts", testDashboardCounts},
		{"ScopedReads", testScopedReads},
		{"SealedKeys", testSealedKeys}, {"MoveKeys", testMoveKeys},
		{"ConsoleQueries", testConsoleQueries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

var ctx = context.Background()

// a time outside UTC with sub-microsecond noise: backends must return the
// same instant, in UTC, to microsecond precision.
var when = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("X", 5*3600+1800))

func sameInstant(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want.Truncate(time.Microsecond)) {
		t.Errorf("%s = %v, want %v", what, got, want.Truncate(time.Microsecond))
	}
}

func seed(t testing.TB, s store.Store) {
	t.Helper()
	if err := s.CreateCA(ctx, store.CA{ID: "ca1", CertDER: []byte{1, 2}, ChainDER: [][]byte{{3}, {4, 5}}, KeyRef: "file:k", Created: when}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateProfile(ctx, store.Profile{ID: "p1", CAID: "ca1", RACertDER: []byte{9}, RAKeyRef: "file:ra",
		ChallengeMode: store.ChallengeStatic, ChallengeHash: "$argon2id$x", AllowDES: true, IncludeCACert: true, Created: when,
		ChallengeTTL: 90 * time.Minute, ChallengeMaxPending: 7, CAMode: true, ChallengeConfig: []byte(`{"mode":"webhook"}`),
		ChallengePrevHash: "$argon2id$old", ChallengePrevUntil: when.Add(time.Hour), FullChain: true, Policy: []byte(`{"validity":"720h"}`),
		ChallengeEnvHash: "$argon2id$env", Source: store.SourceConfig, NextRACertDER: []byte{5}, NextRAKeyRef: "file:next"}); err != nil {
		t.Fatal(err)
	}
}

func testCA(t *testing.T, s store.Store) {
	if _, err := s.GetCA(ctx, "ca1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetCA of a missing CA: %v, want ErrNotFound", err)
	}
	seed(t, s)
	ca, err := s.GetCA(ctx, "ca1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca.CertDER, []byte{1, 2}) || len(ca.ChainDER) != 2 || !bytes.Equal(ca.ChainDER[1], []byte{4, 5}) || ca.KeyRef != "file:k" {
		t.Errorf("GetCA = %+v", ca)
	}
	sameInstant(t, "Created", ca.Created, when)
	if err := s.CreateCA(ctx, store.CA{ID: "ca0", CertDER: []byte{7}, KeyRef: "file:k0", Created: when}); err != nil {
		t.Fatal(err)
	}
	if cas, err := s.ListCAs(ctx); err != nil || len(cas) != 2 || cas[0].ID != "ca0" || len(cas[1].ChainDER) != 2 {
		t.Errorf("ListCAs = %+v, %v", cas, err)
	}
	if err := s.CreateCA(ctx, store.CA{ID: "ca1", CertDER: []byte{1}, KeyRef: "x", Created: when}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateCA: %v, want ErrConflict", err)
	}
}

func testProfile(t *testing.T, s store.Store) {
	if _, err := s.GetProfile(ctx, "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetProfile of a missing profile: %v, want ErrNotFound", err)
	}
	seed(t, s)
	p, err := s.GetProfile(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if p.CAID != "ca1" || !p.AllowDES || !p.IncludeCACert || p.ChallengeHash != "$argon2id$x" || p.ChallengeMode != store.ChallengeStatic ||
		p.ChallengeTTL != 90*time.Minute || p.ChallengeMaxPending != 7 || !p.CAMode || !p.FullChain ||
		string(p.Policy) != `{"validity":"720h"}` || p.Source != store.SourceConfig || !bytes.Equal(p.NextRACertDER, []byte{5}) || p.NextRAKeyRef != "file:next" ||
		string(p.ChallengeConfig) != `{"mode":"webhook"}` || p.ChallengePrevHash != "$argon2id$old" || !p.ChallengePrevUntil.Equal(when.Add(time.Hour).Truncate(time.Microsecond)) ||
		p.ChallengeEnvHash != "$argon2id$env" {
		t.Errorf("GetProfile = %+v", p)
	}
	if err := s.CreateProfile(ctx, store.Profile{ID: "p1", CAID: "ca1", RACertDER: []byte{1}, RAKeyRef: "x", ChallengeMode: "none", Created: when}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateProfile: %v, want ErrConflict", err)
	}
	if err := s.CreateProfile(ctx, store.Profile{ID: "p0", CAID: "ca1", RACertDER: []byte{1}, RAKeyRef: "x", ChallengeMode: "none", Created: when}); err != nil {
		t.Fatal(err)
	}
	if p0, err := s.GetProfile(ctx, "p0"); err != nil || p0.ChallengeEnvHash != "" {
		t.Errorf("a profile without an environment hash reads %q, %v; want none", p0.ChallengeEnvHash, err)
	}
	sameInstant(t, "Updated", p.Updated, when)
	p.ChallengeHash, p.AllowDES, p.Policy, p.Updated = "$argon2id$y", false, []byte(`{}`), when.Add(time.Hour)
	if err := s.UpdateProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetProfile(ctx, "p1")
	if err != nil || got.ChallengeHash != "$argon2id$y" || got.AllowDES || string(got.Policy) != `{}` || got.ChallengeEnvHash != "$argon2id$env" {
		t.Errorf("after UpdateProfile: %+v, %v", got, err)
	}
	for _, env := range []string{"$argon2id$env2", ""} { // replaced, then cleared
		got.ChallengeEnvHash = env
		if err := s.UpdateProfile(ctx, got); err != nil {
			t.Fatal(err)
		}
		if again, err := s.GetProfile(ctx, "p1"); err != nil || again.ChallengeEnvHash != env {
			t.Errorf("after UpdateProfile with ChallengeEnvHash %q: %q, %v", env, again.ChallengeEnvHash, err)
		}
	}
	sameInstant(t, "Updated after update", got.Updated, when.Add(time.Hour))
	if err := s.UpdateProfile(ctx, store.Profile{ID: "nope"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateProfile of a missing profile: %v, want ErrNotFound", err)
	}
	ps, err := s.ListProfiles(ctx)
	if err != nil || len(ps) != 2 || ps[0].ID != "p0" || ps[1].ID != "p1" {
		t.Errorf("ListProfiles = %v, %v", ps, err)
	}
}

func issued(serial, txid string) store.Issued {
	return store.Issued{
		Certificate: store.Certificate{Serial: serial, ProfileID: "p1", TransactionID: txid, Subject: "CN=dev", SANs: []string{"DNS:a.example"},
			NotBefore: when, NotAfter: when.Add(time.Hour), DER: []byte(serial), Status: store.CertValid, Created: when},
		Transaction: store.Transaction{ProfileID: "p1", TransactionID: txid, Status: store.StatusIssued, PublicKeySHA256: []byte{7},
			CSRDER: []byte{8}, CertSerial: serial, Created: when, Updated: when},
		Audit: store.AuditEvent{Time: when, Actor: "device", Action: "enroll", Object: serial, Outcome: "issued", Details: map[string]string{"tx": txid}},
	}
}

func testRecordIssued(t *testing.T, s store.Store) {
	seed(t, s)
	if _, err := s.GetTransaction(ctx, "p1", "tx1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTransaction before: %v, want ErrNotFound", err)
	}
	if err := s.RecordIssued(ctx, issued("0a", "tx1")); err != nil {
		t.Fatal(err)
	}
	tx, err := s.GetTransaction(ctx, "p1", "tx1")
	if err != nil {
		t.Fatal(err)
	}
	if tx.CertSerial != "0a" || tx.Status != store.StatusIssued || !bytes.Equal(tx.PublicKeySHA256, []byte{7}) {
		t.Errorf("transaction = %+v", tx)
	}
	c, err := s.GetCertificate(ctx, "0a")
	if err != nil {
		t.Fatal(err)
	}
	if c.TransactionID != "tx1" || len(c.SANs) != 1 || c.SANs[0] != "DNS:a.example" || c.Status != store.CertValid {
		t.Errorf("certificate = %+v", c)
	}
	sameInstant(t, "NotBefore", c.NotBefore, when)
	if _, err := s.GetCertificate(ctx, "0b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCertificate missing: %v", err)
	}
	list, err := s.ListCertificates(ctx, store.CertificateFilter{ProfileID: "p1"})
	if err != nil || len(list) != 1 {
		t.Errorf("ListCertificates = %d, %v", len(list), err)
	}
}

func testDuplicateTransaction(t *testing.T, s store.Store) {
	seed(t, s)
	if err := s.RecordIssued(ctx, issued("0a", "tx1")); err != nil {
		t.Fatal(err)
	}
	err := s.RecordIssued(ctx, issued("0b", "tx1"))
	if !errors.Is(err, store.ErrDuplicateTransaction) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second RecordIssued with the same transaction: %v, want ErrDuplicateTransaction (an ErrConflict)", err)
	}
	// Another conflict (the serial) is not a duplicate transaction.
	if err := s.RecordIssued(ctx, issued("0a", "tx2")); !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrDuplicateTransaction) {
		t.Fatalf("RecordIssued of a stored serial: %v, want ErrConflict only", err)
	}
	if _, err := s.GetCertificate(ctx, "0b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused enrollment left its certificate behind: %v", err)
	}
	events, err := s.ListAudit(ctx, 10)
	if err != nil || len(events) != 1 {
		t.Errorf("audit events = %d, %v; want only the first enrollment's", len(events), err)
	}
}

// testClientTransactionID: requests a client sent under one
// transactionID are stored under qualified IDs side by side (never
// colliding with the first), keep what the client sent and the serial a
// held renewal renews, and are listed by the client's ID, oldest first.
func testClientTransactionID(t *testing.T, s store.Store) {
	seed(t, s)
	if err := s.RecordIssued(ctx, issued("0a", "tx1")); err != nil {
		t.Fatal(err)
	}
	second := issued("0b", "tx1@csr-0011")
	second.Transaction.ClientTransactionID = "tx1"
	second.Transaction.Created = second.Transaction.Created.Add(time.Second)
	if err := s.RecordIssued(ctx, second); err != nil {
		t.Fatalf("a second request under tx1, qualified: %v", err)
	}
	held := pending("tx1@0a", nil, when.Add(2*time.Second))
	held.ClientTransactionID, held.RenewsSerial, held.SignerKeySHA256 = "tx1", "0a", []byte{9, 9}
	if err := s.RecordPending(ctx, held, "", store.AuditEvent{Time: when, Actor: "device", Action: "enroll", Outcome: "pending"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordIssued(ctx, issued("0c", "tx10")); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListTransactions(ctx, store.TransactionFilter{ProfileID: "p1", ClientTransactionID: "tx1"})
	if err != nil || len(list) != 3 {
		t.Fatalf("requests under tx1: %d, %v; want 3", len(list), err)
	}
	for i, want := range []string{"tx1", "tx1@csr-0011", "tx1@0a"} {
		if list[i].TransactionID != want || list[i].ClientID() != "tx1" {
			t.Errorf("request %d: %q (client %q), want %q (client tx1)", i, list[i].TransactionID, list[i].ClientID(), want)
		}
	}
	if list[2].RenewsSerial != "0a" || list[0].RenewsSerial != "" {
		t.Errorf("renews_serial %q, %q", list[2].RenewsSerial, list[0].RenewsSerial)
	}
	if got, _ := s.GetTransaction(ctx, "p1", "tx1@0a"); got.RenewsSerial != "0a" || got.ClientID() != "tx1" || !bytes.Equal(got.SignerKeySHA256, []byte{9, 9}) {
		t.Errorf("GetTransaction of the held renewal: %+v", got)
	}
	if list, _ := s.ListTransactions(ctx, store.TransactionFilter{ProfileID: "p1", ClientTransactionID: "tx1", Status: store.StatusPending}); len(list) != 1 {
		t.Errorf("pending requests under tx1: %d, want 1", len(list))
	}
}

// testLatestRequest: LatestRequest finds the newest request of a client
// transactionID sent by a key (the CSR's or the signing one), never
// another key's, another client ID's or another profile's.
func testLatestRequest(t *testing.T, s store.Store) {
	seed(t, s)
	if err := s.CreateProfile(ctx, store.Profile{ID: "p2", CAID: "ca1", RACertDER: []byte{9}, RAKeyRef: "file:ra2", ChallengeMode: store.ChallengeStatic, Created: when}); err != nil {
		t.Fatal(err)
	}
	mine, renewer, stranger := []byte{7}, []byte{9, 9}, []byte{5}
	if _, err := s.LatestRequest(ctx, "p1", "tx1", mine); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("before any request: %v, want ErrNotFound", err)
	}
	if err := s.RecordIssued(ctx, issued("0a", "tx1")); err != nil { // key mine
		t.Fatal(err)
	}
	second := issued("0b", "tx1@csr-0011")
	second.Transaction.ClientTransactionID = "tx1"
	second.Transaction.Created = when.Add(time.Second)
	if err := s.RecordIssued(ctx, second); err != nil {
		t.Fatal(err)
	}
	// Another key's request under tx1, newer than mine.
	theirs := pending("tx1@0c", nil, when.Add(3*time.Second))
	theirs.ClientTransactionID, theirs.PublicKeySHA256 = "tx1", stranger
	// A held renewal of 0a: the CSR's key mine, signed by renewer.
	held := pending("tx1@0a", nil, when.Add(2*time.Second))
	held.ClientTransactionID, held.RenewsSerial, held.SignerKeySHA256 = "tx1", "0a", renewer
	// The same client ID and key in another profile, newest of all.
	elsewhere := pending("tx1", nil, when.Add(4*time.Second))
	elsewhere.ProfileID = "p2"
	for _, tx := range []store.Transaction{theirs, held, elsewhere} {
		if err := s.RecordPending(ctx, tx, "", store.AuditEvent{Time: when, Actor: "device", Action: "enroll", Outcome: "pending"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordIssued(ctx, issued("0d", "tx10")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		profile, client string
		key             []byte
		want            string
	}{
		{"p1", "tx1", mine, "tx1@0a"},
		{"p1", "tx1", renewer, "tx1@0a"},
		{"p1", "tx1", stranger, "tx1@0c"},
		{"p2", "tx1", mine, "tx1"},
		{"p1", "tx10", mine, "tx10"},
		{"p1", "tx1", []byte{1}, ""},
		{"p1", "tx", mine, ""},
		{"p1", "tx1@0a", mine, ""},
	} {
		got, err := s.LatestRequest(ctx, tt.profile, tt.client, tt.key)
		if tt.want == "" {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("LatestRequest(%s, %s, %x) = %q, %v; want ErrNotFound", tt.profile, tt.client, tt.key, got.TransactionID, err)
			}
			continue
		}
		if err != nil || got.TransactionID != tt.want || got.ProfileID != tt.profile || got.ClientID() != tt.client {
			t.Errorf("LatestRequest(%s, %s, %x) = %q (profile %q, client %q), %v; want %q", tt.profile, tt.client, tt.key,
				got.TransactionID, got.ProfileID, got.ClientID(), err, tt.want)
		}
	}
	if got, _ := s.LatestRequest(ctx, "p1", "tx1", renewer); got.RenewsSerial != "0a" || got.Status != store.StatusPending {
		t.Errorf("the held renewal as found: %+v", got)
	}
}

// testSupersedeOnce: a renewal that supersedes its certificate revokes it
// in the same transaction (status, time, reason, the CA's revocation
// generation, its own audit event); a second renewal superseding the
// same certificate, even concurrently, is ErrSuperseded and writes
// nothing.
func testSupersedeOnce(t *testing.T, s store.Store) {
	seed(t, s)
	first := issued("0a", "tx0")
	first.Certificate.CAID = "ca1"
	if err := s.RecordIssued(ctx, first); err != nil {
		t.Fatal(err)
	}
	renewal := func(serial, txid string) store.Issued {
		rec := issued(serial, txid)
		rec.Certificate.CAID, rec.Certificate.RenewedSerial = "ca1", "0a"
		rec.Certificate.Created = when.Add(time.Minute)
		rec.Supersede = &store.Supersede{Serial: "0a", Reason: 4, Audit: store.AuditEvent{Time: when, Actor: "scepd", Action: "certificate.revoke",
			Object: "certificate:0a", Outcome: "ok"}}
		return rec
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, serial := range []string{"0b", "0c"} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.RecordIssued(ctx, renewal(serial, "tx-"+serial)) }()
	}
	wg.Wait()
	won, lost := "0b", "0c"
	if errs[0] != nil {
		won, lost = lost, won
		errs[0], errs[1] = errs[1], errs[0]
	}
	if errs[0] != nil || !errors.Is(errs[1], store.ErrSuperseded) {
		t.Fatalf("two renewals superseding 0a: %v, %v; want one nil, one ErrSuperseded", errs[0], errs[1])
	}
	old, err := s.GetCertificate(ctx, "0a")
	if err != nil || old.Status != store.CertRevoked || old.RevocationReason != 4 {
		t.Fatalf("0a after its renewal: %+v %v", old, err)
	}
	sameInstant(t, "RevokedAt", old.RevokedAt, when.Add(time.Minute))
	if g, err := s.RevocationGeneration(ctx, "ca1"); err != nil || g != 1 {
		t.Errorf("revocation generation %d, %v; want 1 (one revocation)", g, err)
	}
	if _, err := s.GetCertificate(ctx, won); err != nil {
		t.Errorf("the winning renewal %s: %v", won, err)
	}
	if _, err := s.GetCertificate(ctx, lost); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the losing renewal %s was written: %v", lost, err)
	}
	if _, err := s.GetTransaction(ctx, "p1", "tx-"+lost); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the losing renewal's transaction was written: %v", err)
	}
	events, _ := s.ListAudit(ctx, 10)
	revokes := 0
	for _, e := range events {
		if e.Action == "certificate.revoke" {
			revokes++
		}
	}
	if len(events) != 3 || revokes != 1 {
		t.Errorf("%d audit events, %d revocations; want issue, renewal, one revocation", len(events), revokes)
	}
	verifyChain(t, s, 3)
}

// testSenderNonceReuse: a senderNonce that created one transaction cannot
// create another (issued or pending), and the refusal writes nothing.
// Transactions without a nonce never collide.
func testSenderNonceReuse(t *testing.T, s store.Store) {
	seed(t, s)
	first := issued("0a", "tx1")
	first.Transaction.SenderNonce = []byte("nonce-0123456789")
	if err := s.RecordIssued(ctx, first); err != nil {
		t.Fatal(err)
	}
	again := issued("0b", "tx2")
	again.Transaction.SenderNonce = []byte("nonce-0123456789")
	if err := s.RecordIssued(ctx, again); !errors.Is(err, store.ErrNonceReused) {
		t.Fatalf("RecordIssued with a used senderNonce: %v, want ErrNonceReused", err)
	}
	if _, err := s.GetCertificate(ctx, "0b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused enrollment left its certificate behind: %v", err)
	}
	held := pending("tx3", nil, time.Now())
	held.SenderNonce = []byte("nonce-0123456789")
	if err := s.RecordPending(ctx, held, "", store.AuditEvent{Time: time.Now(), Actor: "device", Action: "enroll", Outcome: "pending"}); !errors.Is(err, store.ErrNonceReused) {
		t.Fatalf("RecordPending with a used senderNonce: %v, want ErrNonceReused", err)
	}
	if _, err := s.GetTransaction(ctx, "p1", "tx3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused pending request was stored: %v", err)
	}
	for i, txid := range []string{"tx4", "tx5"} {
		if err := s.RecordIssued(ctx, issued(fmt.Sprintf("0c%d", i), txid)); err != nil {
			t.Fatalf("transactions without a nonce: %v", err)
		}
	}
	if events, err := s.ListAudit(ctx, 10); err != nil || len(events) != 3 {
		t.Errorf("audit events = %d, %v; want the three enrollments that committed", len(events), err)
	}
}

func testConcurrentIssue(t *testing.T, s store.Store) {
	seed(t, s)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.RecordIssued(ctx, issued(fmt.Sprintf("%02x", i), fmt.Sprintf("tx%d", i)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, err := s.ListCertificates(ctx, store.CertificateFilter{})
	if err != nil || len(list) != n {
		t.Fatalf("ListCertificates = %d, %v; want %d", len(list), err, n)
	}
	verifyChain(t, s, n)
}

// testConcurrentIssueOneFails: of enrollments committing together, one
// whose challenge is spent fails alone: every other one is stored, with
// its audit event in the chain, and the failed one left nothing.
func testConcurrentIssueOneFails(t *testing.T, s store.Store) {
	seed(t, s)
	const n = 24
	const bad = 11
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := issued(fmt.Sprintf("%02x", i), fmt.Sprintf("tx%d", i))
			if i == bad {
				rec.ChallengeHash = challengeHash(99) // never created
			}
			errs[i] = s.RecordIssued(ctx, rec)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == bad && !errors.Is(err, store.ErrChallengeSpent):
			t.Errorf("the enrollment with a spent challenge: %v, want ErrChallengeSpent", err)
		case i != bad && err != nil:
			t.Errorf("enrollment %d: %v", i, err)
		}
	}
	list, err := s.ListCertificates(ctx, store.CertificateFilter{})
	if err != nil || len(list) != n-1 {
		t.Fatalf("ListCertificates = %d, %v; want %d", len(list), err, n-1)
	}
	if _, err := s.GetTransaction(ctx, "p1", fmt.Sprintf("tx%d", bad)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the failed enrollment left its transaction: %v", err)
	}
	verifyChain(t, s, n-1)
}

// BenchRecordIssued measures enrollments committed one at a time, sized
// like a server's (a 950-byte certificate, a 620-byte CSR, random
// transactionIDs and nonces, serials that begin with the time), and
// reports the process's CPU time per enrollment (cpu-us/op; a PostgreSQL
// server's own is not included): the store's share of an enrollment at
// one client.
func BenchRecordIssued(b *testing.B, s store.Store) {
	seed(b, s)
	der, csr := make([]byte, 950), make([]byte, 620)
	rand.Read(der)
	rand.Read(csr)
	start := cpuTime()
	i := 0
	for b.Loop() {
		i++
		rec := issued(fmt.Sprintf("%012x%020x", time.Now().UnixMilli(), i), rand.Text())
		rec.Certificate.DER, rec.Transaction.CSRDER = der, csr
		rec.Transaction.SenderNonce = []byte(rand.Text())
		if err := s.RecordIssued(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-us/op")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchRecordIssuedParallel measures enrollments committed from parallel
// goroutines (b.RunParallel, 8 per CPU: a server's concurrent requests),
// each a certificate, a transaction and an audit event.
func BenchRecordIssuedParallel(b *testing.B, s store.Store) {
	seed(b, s)
	b.SetParallelism(8)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if err := s.RecordIssued(ctx, issued(fmt.Sprintf("%x", i), fmt.Sprintf("bench-%d", i))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func challengeHash(i int) []byte {
	h := sha256.Sum256([]byte(fmt.Sprint("challenge-", i)))
	return h[:]
}

func testChallengeCap(t *testing.T, s store.Store) {
	seed(t, s)
	now := time.Now()
	for i := range 3 {
		if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(i), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)}, 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(3), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)}, 3); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("fourth challenge under a cap of 3: %v, want ErrLimit", err)
	}
	if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(0), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)}, 10); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate challenge: %v, want ErrConflict", err)
	}
	c, err := s.GetChallenge(ctx, "p1", challengeHash(1))
	if err != nil || !c.Used.IsZero() || !c.Expires.After(now) {
		t.Fatalf("GetChallenge = %+v, %v", c, err)
	}
	if _, err := s.GetChallenge(ctx, "other", challengeHash(1)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another profile's challenge: %v, want ErrNotFound", err)
	}
	// Expired challenges do not count against the cap and are purged.
	if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(9), ProfileID: "p1", Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)}, 100); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeChallenges(ctx, now); err != nil || n != 1 {
		t.Fatalf("PurgeChallenges = %d, %v; want 1", n, err)
	}
	if _, err := s.GetChallenge(ctx, "p1", challengeHash(9)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("purged challenge still there: %v", err)
	}
}

// testChallengeConsumedOnce: parallel enrollments with one one-time
// challenge (different transactions, different serials) yield exactly one
// stored certificate.
func testChallengeConsumedOnce(t *testing.T, s store.Store) {
	seed(t, s)
	now := time.Now()
	if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(1), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)}, 10); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, spent := 0, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := issued(fmt.Sprintf("c%02x", i), fmt.Sprintf("race-%d", i))
			rec.Certificate.Created = time.Now()
			rec.ChallengeHash = challengeHash(1)
			err := s.RecordIssued(ctx, rec)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrChallengeSpent):
				spent++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || spent != n-1 {
		t.Fatalf("%d enrollments succeeded and %d were refused; want 1 and %d", ok, spent, n-1)
	}
	list, _ := s.ListCertificates(ctx, store.CertificateFilter{})
	if len(list) != 1 {
		t.Fatalf("%d certificates stored, want 1", len(list))
	}
	c, err := s.GetChallenge(ctx, "p1", challengeHash(1))
	if err != nil || c.Used.IsZero() || c.UsedSerial != list[0].Serial {
		t.Fatalf("challenge after use: %+v, %v", c, err)
	}
}

func testSpentChallengeRollsBack(t *testing.T, s store.Store) {
	seed(t, s)
	now := time.Now()
	if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(2), ProfileID: "p1", Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)}, 10); err != nil {
		t.Fatal(err)
	}
	for _, h := range [][]byte{challengeHash(2), challengeHash(3)} { // expired, unknown
		rec := issued("0e", "tx-expired")
		rec.Certificate.Created = now
		rec.ChallengeHash = h
		if err := s.RecordIssued(ctx, rec); !errors.Is(err, store.ErrChallengeSpent) {
			t.Fatalf("RecordIssued with a spent challenge: %v, want ErrChallengeSpent", err)
		}
	}
	if _, err := s.GetCertificate(ctx, "0e"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the certificate of a refused enrollment was stored")
	}
	if _, err := s.GetTransaction(ctx, "p1", "tx-expired"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the transaction of a refused enrollment was stored")
	}
	if ev, _ := s.ListAudit(ctx, 10); len(ev) != 0 {
		t.Fatal("the audit event of a refused enrollment was stored")
	}
}

func testIntegrity(t *testing.T, s store.Store) {
	seed(t, s)
	for i := range 3 {
		if err := s.RecordIssued(ctx, issued(fmt.Sprintf("%02x", i), fmt.Sprint("tx", i))); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.CheckIntegrity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 || r.Certificates != 3 || r.Transactions != 3 || r.AuditEvents != 3 {
		t.Fatalf("report %+v", r)
	}
}

// testSerialCollision: parallel inserts of one serial (different
// transactions) leave exactly one certificate and one transaction.
func testSerialCollision(t *testing.T, s store.Store) {
	seed(t, s)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	const n = 10
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.RecordIssued(ctx, issued("ff", fmt.Sprint("collide-", i))) }()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("colliding serial: %v, want ErrConflict", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d inserts of one serial succeeded, want 1", ok)
	}
	r, err := s.CheckIntegrity(ctx)
	if err != nil || len(r.Problems) != 0 || r.Transactions != 1 || r.AuditEvents != 1 {
		t.Fatalf("after the collision: %+v, %v", r, err)
	}
}

func testTokens(t *testing.T, s store.Store) {
	if _, err := s.GetToken(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetToken missing: %v", err)
	}
	for _, tok := range []store.Token{
		{ID: "t1", Hash: []byte{1}, Name: "jamf", Role: "mdm", Profiles: []string{"p1", "p2"}, Created: when},
		{ID: "t2", Hash: []byte{2}, Name: "ops", Role: "admin", Created: when.Add(time.Second)},
	} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateToken(ctx, store.Token{ID: "t1", Hash: []byte{3}, Role: "admin", Created: when}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate token id: %v", err)
	}
	got, err := s.GetToken(ctx, "t1")
	if err != nil || got.Role != "mdm" || len(got.Profiles) != 2 || got.Profiles[1] != "p2" || !got.Revoked.IsZero() || got.Name != "jamf" {
		t.Fatalf("GetToken = %+v, %v", got, err)
	}
	if err := s.RevokeToken(ctx, "t1", when.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "t1", when.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetToken(ctx, "t1"); !got.Revoked.Equal(when.Add(time.Minute).Truncate(time.Microsecond)) {
		t.Errorf("revoked at %v, want the first revocation time", got.Revoked)
	}
	if err := s.RevokeToken(ctx, "nope", when); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeToken missing: %v", err)
	}
	list, err := s.ListTokens(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "t2" || list[1].Profiles == nil {
		t.Errorf("ListTokens = %+v, %v", list, err)
	}
}

func testCertificateFilters(t *testing.T, s store.Store) {
	seed(t, s)
	for i, subj := range []string{"CN=laptop-1", "CN=Laptop-2", "CN=router-1"} {
		rec := issued(fmt.Sprintf("%02x", i+1), fmt.Sprint("f", i))
		rec.Certificate.Subject = subj
		rec.Certificate.NotAfter = when.Add(time.Duration(i+1) * 24 * time.Hour)
		rec.Certificate.Created = when.Add(time.Duration(i) * time.Second)
		rec.Certificate.SANs = []string{fmt.Sprintf("DNS:host-%d.Example", i+1)}
		if i == 2 {
			rec.Certificate.RenewedSerial = "01"
		}
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		f    store.CertificateFilter
		want []string
	}{
		{store.CertificateFilter{}, []string{"03", "02", "01"}},
		{store.CertificateFilter{Subject: "LAPTOP"}, []string{"02", "01"}},
		{store.CertificateFilter{ExpiringBefore: when.Add(36 * time.Hour)}, []string{"01"}},
		{store.CertificateFilter{Status: store.CertRevoked}, nil},
		{store.CertificateFilter{Status: store.CertValid, ProfileID: "p1", Limit: 2}, []string{"03", "02"}},
		{store.CertificateFilter{Limit: 2, Offset: 2}, []string{"01"}},
		{store.CertificateFilter{ProfileID: "other"}, nil},
		{store.CertificateFilter{ExpiringAfter: when.Add(36 * time.Hour)}, []string{"03", "02"}},
		{store.CertificateFilter{ExpiringAfter: when.Add(36 * time.Hour), ExpiringBefore: when.Add(60 * time.Hour)}, []string{"02"}},
		{store.CertificateFilter{SAN: "HOST-2.example"}, []string{"02"}},
		{store.CertificateFilter{RenewedSerial: "01"}, []string{"03"}},
	} {
		list, err := s.ListCertificates(ctx, tt.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range list {
			got = append(got, c.Serial)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ListCertificates(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
}

// testKeysetPaging: following After page by page lists every certificate
// once, newest first, in the order of one unpaged listing, even where many
// rows share a creation time across a page boundary; and a listing limited
// to profiles pages through theirs only.
func testKeysetPaging(t *testing.T, s store.Store) {
	seed(t, s)
	if err := s.CreateProfile(ctx, store.Profile{ID: "p2", CAID: "ca1", RACertDER: []byte{9}, RAKeyRef: "file:ra",
		ChallengeMode: store.ChallengeStatic, ChallengeHash: "$argon2id$x", Created: when, Source: store.SourceConfig}); err != nil {
		t.Fatal(err)
	}
	const n = 25
	for i := range n {
		rec := issued(fmt.Sprintf("%x", 0x100+i*7919%n), fmt.Sprint("k", i))
		// Five rows per instant, so pages of three split them.
		rec.Certificate.Created = when.Add(time.Duration(i/5) * time.Second)
		if i%3 == 0 {
			rec.Certificate.ProfileID, rec.Transaction.ProfileID = "p2", "p2"
		}
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	serials := func(list []store.Certificate) []string {
		var out []string
		for _, c := range list {
			out = append(out, c.Serial)
		}
		return out
	}
	for _, f := range []store.CertificateFilter{{}, {Profiles: []string{"p2"}}, {ProfileID: "p1"}} {
		whole := f
		whole.Limit = 1000
		all, err := s.ListCertificates(ctx, whole)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(all); i++ {
			if all[i].Created.After(all[i-1].Created) {
				t.Fatalf("%+v: not newest first at %d", f, i)
			}
		}
		var paged []store.Certificate
		page := f
		page.Limit = 3
		for range n {
			list, err := s.ListCertificates(ctx, page)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, list...)
			if len(list) < page.Limit {
				break
			}
			last := list[len(list)-1]
			page.After = store.CertificateKey{Created: last.Created, Serial: last.Serial}
		}
		if got, want := fmt.Sprint(serials(paged)), fmt.Sprint(serials(all)); got != want || len(all) == 0 {
			t.Errorf("%+v paged by 3 = %v, want %v", f, got, want)
		}
		for _, c := range paged {
			if len(f.Profiles) > 0 && c.ProfileID != "p2" || f.ProfileID != "" && c.ProfileID != f.ProfileID {
				t.Errorf("%+v listed %s of %s", f, c.Serial, c.ProfileID)
			}
		}
	}
}

func pending(txid string, hash []byte, now time.Time) store.Transaction {
	return store.Transaction{ProfileID: "p1", TransactionID: txid, Status: store.StatusPending, PublicKeySHA256: []byte{7}, CSRDER: []byte{8},
		ChallengeHash: hash, Expires: now.Add(time.Hour), Created: now, Updated: now}
}

func testPendingLifecycle(t *testing.T, s store.Store) {
	seed(t, s)
	now := time.Now()
	ev := store.AuditEvent{Time: now, Actor: "device", Action: "enroll", Outcome: "pending"}
	if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(1), ProfileID: "p1", Created: now, Expires: now.Add(time.Minute)}, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPending(ctx, pending("wait-1", challengeHash(1), now), "", ev); err != nil {
		t.Fatal(err)
	}
	// The reserved challenge cannot be reserved or used by another request.
	if err := s.RecordPending(ctx, pending("wait-2", challengeHash(1), now), "", ev); !errors.Is(err, store.ErrChallengeSpent) {
		t.Fatalf("second reservation: %v, want ErrChallengeSpent", err)
	}
	if _, err := s.GetTransaction(ctx, "p1", "wait-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused pending request was stored")
	}
	other := issued("aa", "thief")
	other.Certificate.Created = now
	other.ChallengeHash = challengeHash(1)
	if err := s.RecordIssued(ctx, other); !errors.Is(err, store.ErrChallengeSpent) {
		t.Fatalf("using a reserved challenge: %v, want ErrChallengeSpent", err)
	}
	c, _ := s.GetChallenge(ctx, "p1", challengeHash(1))
	if c.ReservedBy != "wait-1" || !c.Used.IsZero() {
		t.Fatalf("challenge %+v", c)
	}
	list, err := s.ListTransactions(ctx, store.TransactionFilter{Status: store.StatusPending})
	if err != nil || len(list) != 1 || list[0].TransactionID != "wait-1" || !bytes.Equal(list[0].ChallengeHash, challengeHash(1)) || list[0].Expires.IsZero() {
		t.Fatalf("pending list %+v, %v", list, err)
	}
	// Approval after the challenge's own expiry still consumes it: it was
	// reserved, and the cleanup of expired challenges keeps it meanwhile.
	later := now.Add(2 * time.Minute)
	if _, err := s.PurgeChallenges(ctx, later); err != nil {
		t.Fatal(err)
	}
	if c, err := s.GetChallenge(ctx, "p1", challengeHash(1)); err != nil || c.ReservedBy != "wait-1" {
		t.Fatalf("a reserved challenge after the cleanup of expired ones: %+v %v, want it kept", c, err)
	}
	rec := issued("bb", "wait-1")
	rec.FromPending = true
	rec.Certificate.Created = later
	rec.Transaction.Updated, rec.Transaction.DecidedBy = later, "token:op"
	rec.ChallengeHash = challengeHash(1)
	if err := s.RecordIssued(ctx, rec); err != nil {
		t.Fatalf("approving: %v", err)
	}
	tx, _ := s.GetTransaction(ctx, "p1", "wait-1")
	if tx.Status != store.StatusIssued || tx.CertSerial != "bb" || tx.DecidedBy != "token:op" {
		t.Fatalf("approved transaction %+v", tx)
	}
	if c, _ := s.GetChallenge(ctx, "p1", challengeHash(1)); c.Used.IsZero() || c.UsedSerial != "bb" {
		t.Fatalf("challenge after approval %+v", c)
	}
	rec.Certificate.Serial = "bc"
	if err := s.RecordIssued(ctx, rec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approving twice: %v, want ErrConflict", err)
	}
	// Rejection frees the reserved challenge.
	if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(2), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)}, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPending(ctx, pending("wait-3", challengeHash(2), now), "", ev); err != nil {
		t.Fatal(err)
	}
	if err := s.RejectPending(ctx, "p1", "wait-3", "token:op", "not ours", now, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.RejectPending(ctx, "p1", "wait-3", "token:op", "again", now, ev); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rejecting twice: %v, want ErrNotFound", err)
	}
	if c, _ := s.GetChallenge(ctx, "p1", challengeHash(2)); c.ReservedBy != "" {
		t.Fatalf("challenge still reserved after rejection: %+v", c)
	}
	if tx, _ := s.GetTransaction(ctx, "p1", "wait-3"); tx.Status != store.StatusRejected || tx.Reason != "not ours" {
		t.Fatalf("rejected transaction %+v", tx)
	}
	// Expiry.
	old := pending("wait-4", nil, now.Add(-3*time.Hour))
	if err := s.RecordPending(ctx, old, "", ev); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ExpirePending(ctx, now); err != nil || n != 1 {
		t.Fatalf("ExpirePending = %d, %v; want 1", n, err)
	}
	if tx, _ := s.GetTransaction(ctx, "p1", "wait-4"); tx.Status != store.StatusRejected {
		t.Fatalf("expired request %+v", tx)
	}
	if r, err := s.CheckIntegrity(ctx); err != nil || len(r.Problems) != 0 {
		t.Fatalf("integrity: %+v %v", r, err)
	}
}

// expireReason is the reason ExpirePending gives a request it rejects.
const expireReason = "expired before a decision"

// expireEvents returns the events after seq that ExpirePending writes
// (request.reject by scepd), by transaction ID, failing on any other
// shape or on two for one transaction.
func expireEvents(t *testing.T, s store.Store, after int64) map[string]store.AuditEvent {
	t.Helper()
	events, err := s.AuditAfter(ctx, after, 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.AuditEvent{}
	for _, e := range events {
		if e.Actor != "scepd" || e.Action != "request.reject" {
			continue
		}
		id, ok := strings.CutPrefix(e.Object, "transaction:")
		if !ok || e.Outcome != "ok" || e.Details["reason"] != expireReason || len(e.Details) != 2 {
			t.Fatalf("expiry event %+v", e)
		}
		if _, dup := out[id]; dup {
			t.Fatalf("two expiry events for %s", id)
		}
		out[id] = e
	}
	return out
}

// auditHead is the newest event's seq (0: none).
func auditHead(t *testing.T, s store.Store) int64 {
	t.Helper()
	events, err := s.ListAudit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 {
		return 0
	}
	return events[0].Seq
}

// testExpireAudited: every request ExpirePending rejects gets a
// request.reject event by scepd in the same transaction, naming the
// transaction, its profile (a profile-scoped reader sees it) and the
// reason; a request not yet expired, or decided before it expired, gets
// none, and the chain still verifies.
func testExpireAudited(t *testing.T, s store.Store) {
	seed(t, s)
	p2 := store.Profile{ID: "p2", CAID: "ca1", RACertDER: []byte{9}, RAKeyRef: "file:ra", ChallengeMode: store.ChallengeStatic, Created: when, Source: store.SourceAPI}
	if err := s.CreateProfile(ctx, p2); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ev := store.AuditEvent{Time: now, Actor: "device", Action: "enroll", Outcome: "pending"}
	for i := 1; i <= 3; i++ {
		if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(i), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)}, 10); err != nil {
			t.Fatal(err)
		}
	}
	old2 := pending("old-2", nil, now.Add(-3*time.Hour))
	old2.ProfileID = "p2"
	for _, tx := range []store.Transaction{
		pending("old-1", challengeHash(1), now.Add(-2*time.Hour)), // expired an hour ago, its challenge reserved
		old2,                                    // expired, in p2, no challenge
		pending("fresh", challengeHash(2), now), // expires in an hour
		pending("decided", challengeHash(3), now.Add(-2*time.Hour)), // expired, but rejected before
	} {
		if err := s.RecordPending(ctx, tx, "", ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RejectPending(ctx, "p1", "decided", "token:op", "not ours", now.Add(-90*time.Minute), store.AuditEvent{Time: now, Actor: "token:op",
		Action: "request.reject", Object: "transaction:decided", Outcome: "ok", Details: map[string]string{"profile": "p1", "reason": "not ours"}}); err != nil {
		t.Fatal(err)
	}
	head := auditHead(t, s)
	if n, err := s.ExpirePending(ctx, now); err != nil || n != 2 {
		t.Fatalf("ExpirePending = %d, %v; want 2", n, err)
	}
	got := expireEvents(t, s, head)
	if len(got) != 2 {
		t.Fatalf("%d expiry events (%v), want one for old-1 and one for old-2", len(got), got)
	}
	for id, profile := range map[string]string{"old-1": "p1", "old-2": "p2"} {
		e, ok := got[id]
		if !ok || e.Details["profile"] != profile {
			t.Fatalf("expiry event of %s: %+v (found %v), want profile %s", id, e, ok, profile)
		}
		sameInstant(t, "expiry event time", e.Time, now)
		if tx, err := s.GetTransaction(ctx, profile, id); err != nil || tx.Status != store.StatusRejected || tx.Reason != expireReason {
			t.Fatalf("expired request %+v, %v", tx, err)
		}
	}
	if all, err := s.AuditAfter(ctx, head, 100); err != nil || len(all) != 2 {
		t.Fatalf("ExpirePending appended %d events, %v; want 2", len(all), err)
	}
	// The event is p2's for a token limited to p2.
	if scoped, err := s.ListAudit(ctx, 1, "p2"); err != nil || len(scoped) != 1 || scoped[0].Object != "transaction:old-2" {
		t.Fatalf("ListAudit(1, p2) = %+v, %v; want old-2's expiry", scoped, err)
	}
	if c, _ := s.GetChallenge(ctx, "p1", challengeHash(1)); c.ReservedBy != "" {
		t.Fatalf("expired request's challenge still reserved: %+v", c)
	}
	if c, _ := s.GetChallenge(ctx, "p1", challengeHash(2)); c.ReservedBy != "fresh" {
		t.Fatalf("pending request's challenge %+v", c)
	}
	if tx, _ := s.GetTransaction(ctx, "p1", "decided"); tx.Reason != "not ours" || tx.DecidedBy != "token:op" {
		t.Fatalf("a request decided before its expiry was changed: %+v", tx)
	}
	// Nothing left to expire: no change, no event.
	head = auditHead(t, s)
	if n, err := s.ExpirePending(ctx, now); err != nil || n != 0 {
		t.Fatalf("ExpirePending again = %d, %v; want 0", n, err)
	}
	if after := auditHead(t, s); after != head {
		t.Fatalf("ExpirePending with nothing to expire appended events %d..%d", head+1, after)
	}
	if tx, _ := s.GetTransaction(ctx, "p1", "fresh"); tx.Status != store.StatusPending {
		t.Fatalf("unexpired request %+v", tx)
	}
	verifyChain(t, s, int(head))
	if r, err := s.CheckIntegrity(ctx); err != nil || len(r.Problems) != 0 {
		t.Fatalf("integrity: %+v %v", r, err)
	}
}

// testExpireRacesApproval: approvals racing ExpirePending over more
// expired requests than one of its transactions takes: each request ends
// either approved, with no expiry event, or rejected as expired, with
// exactly one; ExpirePending counts the events it wrote.
func testExpireRacesApproval(t *testing.T, s store.Store) {
	seed(t, s)
	const requests = 250
	now := time.Now()
	ev := store.AuditEvent{Time: now, Actor: "device", Action: "enroll", Outcome: "pending"}
	id := func(i int) string { return fmt.Sprintf("race-%03d", i) }
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				var hash []byte
				if i%2 == 0 {
					hash = challengeHash(1000 + i)
					if err := s.CreateChallenge(ctx, store.Challenge{Hash: hash, ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)}, 1000); err != nil {
						t.Error(err)
						return
					}
				}
				if err := s.RecordPending(ctx, pending(id(i), hash, now.Add(-2*time.Hour)), "", ev); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range requests {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	head := auditHead(t, s)
	var approved sync.Map
	expired := 0
	wg.Go(func() {
		n, err := s.ExpirePending(ctx, now)
		if err != nil {
			t.Error(err)
		}
		expired = n
	})
	for g := range 4 {
		wg.Go(func() {
			for i := requests - 1 - g; i >= 0; i -= 12 { // a third of them, from the end
				rec := issued(fmt.Sprintf("%04x", i), id(i))
				rec.FromPending = true
				rec.Certificate.Created = now
				rec.Transaction.Updated, rec.Transaction.DecidedBy = now, "token:op"
				if i%2 == 0 {
					rec.ChallengeHash = challengeHash(1000 + i)
				}
				switch err := s.RecordIssued(ctx, rec); {
				case err == nil:
					approved.Store(id(i), true)
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("approving %s: %v", id(i), err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	got := expireEvents(t, s, head)
	if expired != len(got) {
		t.Errorf("ExpirePending = %d, wrote %d expiry events", expired, len(got))
	}
	nApproved := 0
	for i := range requests {
		tx, err := s.GetTransaction(ctx, "p1", id(i))
		if err != nil {
			t.Fatal(err)
		}
		e, audited := got[id(i)]
		_, ok := approved.Load(id(i))
		switch {
		case ok:
			nApproved++
			if tx.Status != store.StatusIssued || audited {
				t.Errorf("approved %s: status %s, expiry event %v", id(i), tx.Status, audited)
			}
		case tx.Status != store.StatusRejected || tx.Reason != expireReason || !audited || e.Details["profile"] != "p1":
			t.Errorf("%s: status %s (%q), expiry event %+v (%v)", id(i), tx.Status, tx.Reason, e, audited)
		}
		if i%2 == 0 {
			if c, _ := s.GetChallenge(ctx, "p1", challengeHash(1000+i)); c.ReservedBy != "" || ok == c.Used.IsZero() {
				t.Errorf("challenge of %s (approved %v): %+v", id(i), ok, c)
			}
		}
	}
	if nApproved+len(got) != requests {
		t.Errorf("%d approved and %d expired of %d", nApproved, len(got), requests)
	}
	t.Logf("%d approved, %d expired", nApproved, len(got))
	verifyChain(t, s, int(auditHead(t, s)))
}

func testRevocationAndCRLs(t *testing.T, s store.Store) {
	seed(t, s)
	for i, serial := range []string{"01", "02", "03"} {
		rec := issued(serial, fmt.Sprint("r", i))
		rec.Certificate.CAID = "ca1"
		if i == 2 {
			rec.Certificate.CAID, rec.Certificate.RenewedSerial = "ca0", "01"
		}
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := s.GetCertificate(ctx, "03"); c.CAID != "ca0" || c.RenewedSerial != "01" {
		t.Fatalf("certificate %+v", c)
	}
	ev := store.AuditEvent{Time: when, Actor: "op", Action: "revoke", Outcome: "ok"}
	if g, err := s.RevocationGeneration(ctx, "ca1"); err != nil || g != 0 {
		t.Fatalf("RevocationGeneration before any revocation = %d, %v; want 0", g, err)
	}
	for _, serial := range []string{"01", "03"} {
		if err := s.RevokeCertificate(ctx, serial, 4, when, nil, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeCertificate(ctx, "01", 1, when.Add(time.Hour), nil, ev); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if err := s.RevokeCertificate(ctx, "ff", 1, when, nil, ev); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking an unknown serial: %v", err)
	}
	// Each revocation moves its CA's generation once; revoking again does not.
	if g, err := s.RevocationGeneration(ctx, "ca1"); err != nil || g != 1 {
		t.Fatalf("RevocationGeneration(ca1) after one revocation = %d, %v; want 1", g, err)
	}
	if g, err := s.RevocationGeneration(ctx, "nope"); err != nil || g != 0 {
		t.Fatalf("RevocationGeneration of an unknown CA = %d, %v; want 0", g, err)
	}
	c, _ := s.GetCertificate(ctx, "01")
	if c.Status != store.CertRevoked || c.RevocationReason != 4 || !c.RevokedAt.Equal(when.Truncate(time.Microsecond)) {
		t.Fatalf("revoked certificate %+v: the first revocation must stay", c)
	}
	revoked, err := s.ListRevoked(ctx, "ca1")
	if err != nil || len(revoked) != 1 || revoked[0].Serial != "01" || revoked[0].Reason != 4 || !revoked[0].At.Equal(when.Truncate(time.Microsecond)) {
		t.Fatalf("ListRevoked(ca1) = %+v, %v", revoked, err)
	}
	stats, err := s.CertificateStats(ctx, when.Add(-time.Hour), 2*time.Hour)
	if err != nil || len(stats) != 1 || stats[0].ProfileID != "p1" || stats[0].Valid != 1 || stats[0].Revoked != 2 || stats[0].Expiring != 1 {
		t.Fatalf("CertificateStats = %+v, %v", stats, err)
	}
	if events, _ := s.ListAudit(ctx, 100); len(events) != 5 {
		t.Fatalf("%d audit events, want 3 issued + 2 revocations", len(events))
	}
	// CRL numbers are monotonic under parallel callers.
	if err := s.CreateCA(ctx, store.CA{ID: "ca0", CertDER: []byte{1}, KeyRef: "file:k", Created: when}); err != nil {
		t.Fatal(err)
	}
	gen1, err := s.RevocationGeneration(ctx, "ca1")
	if err != nil || gen1 == 0 {
		t.Fatalf("ca1's revocation generation after two revocations: %d %v", gen1, err)
	}
	const n = 20
	nums := make(chan int64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.NextCRLNumber(ctx, "ca1", gen1, 0)
			if err != nil {
				t.Error(err)
			}
			nums <- v
		}()
	}
	wg.Wait()
	close(nums)
	seen := map[int64]bool{}
	for v := range nums {
		if seen[v] || v < 1 || v > n {
			t.Fatalf("CRL number %d repeated or out of 1..%d", v, n)
		}
		seen[v] = true
	}
	if v, _ := s.NextCRLNumber(ctx, "ca0", 0, 0); v != 1 {
		t.Fatalf("another CA's first CRL number is %d, want 1", v)
	}
	// At least the floor (the signing time): a database restored from a
	// backup, its counter behind, does not hand out a published number.
	if v, _ := s.NextCRLNumber(ctx, "ca0", 0, 1_800_000_000); v != 1_800_000_000 {
		t.Fatalf("CRL number %d under a floor of 1800000000", v)
	}
	if v, _ := s.NextCRLNumber(ctx, "ca0", 0, 1_800_000_000); v != 1_800_000_001 {
		t.Fatalf("CRL number %d after 1800000000 in the same second", v)
	}
	// Not while the generation is no longer the one the CRL's list was
	// read at: a revocation committed meanwhile.
	if _, err := s.NextCRLNumber(ctx, "ca1", gen1-1, 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a CRL number for a past generation: %v, want ErrConflict", err)
	}
	if _, err := s.NextCRLNumber(ctx, "nope", 0, 0); errors.Is(err, store.ErrConflict) || err == nil {
		t.Fatalf("a CRL number for no CA: %v, want an error other than ErrConflict", err)
	}
	if _, err := s.LatestCRL(ctx, "ca1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestCRL before any: %v", err)
	}
	for _, num := range []int64{3, 7, 5} {
		if err := s.SaveCRL(ctx, store.CRL{CAID: "ca1", Number: num, ThisUpdate: when, NextUpdate: when.Add(time.Hour), DER: []byte{byte(num)}, Generation: num * 10}); err != nil {
			t.Fatal(err)
		}
	}
	latest, err := s.LatestCRL(ctx, "ca1")
	if err != nil || latest.Number != 7 || latest.DER[0] != 7 || latest.Generation != 70 {
		t.Fatalf("LatestCRL = %+v, %v", latest, err)
	}
	sameInstant(t, "NextUpdate", latest.NextUpdate, when.Add(time.Hour))
}

func testEntities(t *testing.T, s store.Store) {
	seed(t, s)
	now := time.Now()
	if _, err := s.GetEntity(ctx, "p1", "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetEntity missing: %v", err)
	}
	if err := s.PutEntity(ctx, store.Entity{ProfileID: "p1", Username: "alice", CodeHash: []byte{1}, UsesLeft: 2, Expires: now.Add(time.Hour), Created: now}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		rec := issued(fmt.Sprintf("e%d", i), fmt.Sprint("ent", i))
		rec.Certificate.Created = now
		rec.EntityUser = "alice"
		err := s.RecordIssued(ctx, rec)
		if i < 2 && err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
		if i == 2 && !errors.Is(err, store.ErrChallengeSpent) {
			t.Fatalf("a third use of a two-use code: %v, want ErrChallengeSpent", err)
		}
	}
	e, err := s.GetEntity(ctx, "p1", "alice")
	if err != nil || e.UsesLeft != 0 || !bytes.Equal(e.CodeHash, []byte{1}) {
		t.Fatalf("entity %+v %v", e, err)
	}
	// Re-registering resets the code and uses.
	if err := s.PutEntity(ctx, store.Entity{ProfileID: "p1", Username: "alice", CodeHash: []byte{2}, UsesLeft: 1, Expires: now.Add(time.Hour), Created: now}); err != nil {
		t.Fatal(err)
	}
	// A request held (for an upstream) spends a use too; none left, it
	// is not stored.
	ev := store.AuditEvent{Time: now, Actor: "device", Action: "enroll", Outcome: "pending"}
	if err := s.RecordPending(ctx, pending("held-1", nil, now), "alice", ev); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPending(ctx, pending("held-2", nil, now), "alice", ev); !errors.Is(err, store.ErrChallengeSpent) {
		t.Fatalf("a second held request on a code of one use: %v, want ErrChallengeSpent", err)
	}
	if _, err := s.GetTransaction(ctx, "p1", "held-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused held request was stored: %v", err)
	}
	if err := s.PutEntity(ctx, store.Entity{ProfileID: "p1", Username: "alice", CodeHash: []byte{2}, UsesLeft: 1, Expires: now.Add(time.Hour), Created: now}); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListEntities(ctx, "p1"); err != nil || len(list) != 1 || list[0].UsesLeft != 1 || list[0].CodeHash[0] != 2 {
		t.Fatalf("ListEntities %+v %v", list, err)
	}
	if err := s.CreateChallenge(ctx, store.Challenge{Hash: challengeHash(5), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour), BoundTo: "dev-1", Note: "jamf:C02X"}, 10); err != nil {
		t.Fatal(err)
	}
	if c, err := s.GetChallenge(ctx, "p1", challengeHash(5)); err != nil || c.BoundTo != "dev-1" || c.Note != "jamf:C02X" {
		t.Fatalf("bound challenge %+v %v", c, err)
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	for i := range 5 {
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: when.Add(time.Duration(i) * time.Second), Actor: "op", Action: "test", Object: fmt.Sprint(i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	verifyChain(t, s, 5)
	page, err := s.AuditAfter(ctx, 0, 3)
	if err != nil || len(page) != 3 || page[0].Object != "0" || page[2].Object != "2" {
		t.Fatalf("AuditAfter(0, 3) = %+v, %v", page, err)
	}
	rest, err := s.AuditAfter(ctx, page[2].Seq, 10)
	if err != nil || len(rest) != 2 || rest[1].Object != "4" {
		t.Fatalf("AuditAfter(%d) = %+v, %v", page[2].Seq, rest, err)
	}
}

// verifyChain recomputes the audit hash chain from the first event.
func verifyChain(t *testing.T, s store.Store, want int) {
	t.Helper()
	events, err := s.ListAudit(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != want {
		t.Fatalf("audit has %d events, want %d", len(events), want)
	}
	var v store.ChainVerifier
	for i := len(events) - 1; i >= 0; i-- {
		if p := v.Next(events[i]); p != "" {
			t.Fatal(p)
		}
	}
}

// testCompromisedKeys: a revocation for key compromise records the key, in
// the revocation's transaction, also for a certificate revoked already
// (its reason becomes keyCompromise, its time stays); the record is found
// by the key alone.
func testCompromisedKeys(t *testing.T, s store.Store) {
	seed(t, s)
	for i, serial := range []string{"01", "02", "03"} {
		if err := s.RecordIssued(ctx, issued(serial, fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	keyA, keyB := bytes.Repeat([]byte{0xa}, 32), bytes.Repeat([]byte{0xb}, 32)
	if _, err := s.KeyCompromised(ctx, keyA); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("KeyCompromised before any revocation: %v, want ErrNotFound", err)
	}
	ev := store.AuditEvent{Time: when, Actor: "op", Action: "certificate.revoke", Outcome: "ok"}
	if err := s.RevokeCertificate(ctx, "01", 1, when, keyA, ev); err != nil {
		t.Fatal(err)
	}
	if serial, err := s.KeyCompromised(ctx, keyA); err != nil || serial != "01" {
		t.Fatalf("KeyCompromised(keyA) = %q, %v; want 01", serial, err)
	}
	// The same key again (another certificate of it): the first record stays.
	if err := s.RevokeCertificate(ctx, "02", 1, when, keyA, ev); err != nil {
		t.Fatal(err)
	}
	if serial, _ := s.KeyCompromised(ctx, keyA); serial != "01" {
		t.Fatalf("KeyCompromised(keyA) after a second certificate of it = %q, want 01", serial)
	}
	// Revoked as superseded first, then found compromised.
	if err := s.RevokeCertificate(ctx, "03", 4, when, nil, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeyCompromised(ctx, keyB); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a revocation as superseded recorded a key: %v", err)
	}
	if err := s.RevokeCertificate(ctx, "03", 1, when.Add(time.Hour), keyB, ev); err != nil {
		t.Fatal(err)
	}
	if serial, err := s.KeyCompromised(ctx, keyB); err != nil || serial != "03" {
		t.Fatalf("KeyCompromised(keyB) after revoking 03 again for key compromise = %q, %v; want 03", serial, err)
	}
	if c, _ := s.GetCertificate(ctx, "03"); c.RevocationReason != 1 || !c.RevokedAt.Equal(when.Truncate(time.Microsecond)) {
		t.Fatalf("03 found compromised after its revocation as superseded: reason %d at %v, want keyCompromise (1) at the first time", c.RevocationReason, c.RevokedAt)
	}
	// Nothing is recorded for a serial that does not exist.
	if err := s.RevokeCertificate(ctx, "ff", 1, when, bytes.Repeat([]byte{0xf}, 32), ev); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking an unknown serial: %v", err)
	}
	if _, err := s.KeyCompromised(ctx, bytes.Repeat([]byte{0xf}, 32)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a key recorded for an unknown serial: %v", err)
	}
}
