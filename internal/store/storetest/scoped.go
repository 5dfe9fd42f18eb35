package storetest

import (
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// testScopedReads: listings limited to profiles filter in the query, so a
// page (LIMIT) holds only the wanted profiles' rows.
func testScopedReads(t *testing.T, s store.Store) {
	seed(t, s)
	p2 := store.Profile{ID: "p2", CAID: "ca1", RACertDER: []byte{9}, RAKeyRef: "file:ra", ChallengeMode: store.ChallengeStatic, Created: when, Source: store.SourceAPI}
	if err := s.CreateProfile(ctx, p2); err != nil {
		t.Fatal(err)
	}
	// p1 first, then three of p2: the newest rows are p2's.
	for i, p := range []string{"p1", "p2", "p2", "p2"} {
		rec := issued(string(rune('a'+i)), "tx"+p+string(rune('a'+i)))
		rec.Certificate.ProfileID, rec.Transaction.ProfileID = p, p
		rec.Certificate.Created = when.Add(time.Duration(i) * time.Minute)
		rec.Transaction.Created = rec.Certificate.Created
		rec.Audit.Details["profile"] = p
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []store.AuditEvent{
		{Time: when, Actor: "op", Action: "challenge.create", Object: "profile:p2", Outcome: "ok"},
		{Time: when, Actor: "op", Action: "token.create", Object: "token:x", Outcome: "ok"},
	} {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.ListAudit(ctx, 1, "p1")
	if err != nil || len(ev) != 1 || ev[0].Details["profile"] != "p1" {
		t.Fatalf("ListAudit(1, p1) = %+v, %v; want the p1 event", ev, err)
	}
	if ev, err = s.ListAudit(ctx, 10, "p2"); err != nil || len(ev) != 4 || ev[0].Object != "profile:p2" {
		t.Fatalf("ListAudit(10, p2) = %d events, %v; want 4, newest the profile:p2 object", len(ev), err)
	}
	if ev, err = s.ListAudit(ctx, 10, "p1", "p2"); err != nil || len(ev) != 5 {
		t.Fatalf("ListAudit(10, p1, p2) = %d events, %v; want 5", len(ev), err)
	}
	if ev, err = s.ListAudit(ctx, 10); err != nil || len(ev) != 6 {
		t.Fatalf("ListAudit(10) = %d events, %v; want all 6", len(ev), err)
	}
	verifyChain(t, s, 6)
	certs, err := s.ListCertificates(ctx, store.CertificateFilter{Profiles: []string{"p1"}, Limit: 1})
	if err != nil || len(certs) != 1 || certs[0].ProfileID != "p1" {
		t.Fatalf("ListCertificates(Profiles p1, limit 1) = %+v, %v", certs, err)
	}
	if certs, err = s.ListCertificates(ctx, store.CertificateFilter{Profiles: []string{"p1", "p2"}}); err != nil || len(certs) != 4 {
		t.Fatalf("ListCertificates(Profiles p1 p2) = %d, %v; want 4", len(certs), err)
	}
	txs, err := s.ListTransactions(ctx, store.TransactionFilter{Profiles: []string{"p2"}, Status: store.StatusIssued, Limit: 2})
	if err != nil || len(txs) != 2 || txs[0].ProfileID != "p2" || txs[1].ProfileID != "p2" {
		t.Fatalf("ListTransactions(Profiles p2, limit 2) = %+v, %v", txs, err)
	}
	if txs, err = s.ListTransactions(ctx, store.TransactionFilter{Status: store.StatusIssued}); err != nil || len(txs) != 4 {
		t.Fatalf("ListTransactions() = %d, %v; want 4", len(txs), err)
	}
}
