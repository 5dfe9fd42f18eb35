package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// testConsoleQueries: what the console asks of a store answers the same
// on every backend: serial prefixes and counts, the expiry order, requests
// newest first by key, pending challenges and their cancelling, refused
// enrollments counted by reason.
func testConsoleQueries(t *testing.T, s store.Store) {
	seed(t, s)
	for i, serial := range []string{"4f2a01", "4f2a02", "4f2b00", "1e240"} {
		rec := issued(serial, fmt.Sprint("tx", i))
		rec.Certificate.Created = when.Add(time.Duration(i) * time.Second)
		rec.Transaction.Created = rec.Certificate.Created
		rec.Certificate.NotAfter = when.Add(time.Duration(10-i) * time.Hour)
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	list := func(f store.CertificateFilter) []string {
		t.Helper()
		rows, err := s.ListCertificates(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range rows {
			out = append(out, c.Serial)
		}
		return out
	}
	if got := list(store.CertificateFilter{SerialPrefixes: []string{"4f2a", "1e2"}}); !slices.Equal(got, []string{"1e240", "4f2a02", "4f2a01"}) {
		t.Errorf("serial prefixes 4f2a, 1e2: %v", got)
	}
	if n, err := s.CountCertificates(ctx, store.CertificateFilter{SerialPrefixes: []string{"4f"}, Limit: 1}); err != nil || n != 3 {
		t.Errorf("count of serials 4f…: %d, %v; want 3 whatever the limit", n, err)
	}
	got := list(store.CertificateFilter{Order: store.CertOrderExpiry, Limit: 2})
	rows, _ := s.ListCertificates(ctx, store.CertificateFilter{Order: store.CertOrderExpiry, Limit: 2})
	got = append(got, list(store.CertificateFilter{Order: store.CertOrderExpiry, After: store.CertificateKey{Created: rows[1].NotAfter, Serial: rows[1].Serial}})...)
	if !slices.Equal(got, []string{"1e240", "4f2b00", "4f2a02", "4f2a01"}) {
		t.Errorf("expiry order by key: %v", got)
	}

	txs, err := s.ListTransactions(ctx, store.TransactionFilter{Newest: true, Limit: 3})
	if err != nil || len(txs) != 3 || txs[0].TransactionID != "tx3" {
		t.Fatalf("newest requests: %v %v", txs, err)
	}
	more, err := s.ListTransactions(ctx, store.TransactionFilter{Newest: true, Before: store.TransactionKey{Created: txs[2].Created, TransactionID: txs[2].TransactionID}})
	if err != nil || len(more) != 1 || more[0].TransactionID != "tx0" {
		t.Errorf("requests after the third: %v %v", more, err)
	}

	now := time.Now().UTC().Truncate(time.Second)
	for i, c := range []store.Challenge{
		{Hash: challengeHash(1), ProfileID: "p1", Created: now.Add(-time.Minute), Expires: now.Add(time.Hour), BoundTo: "kiosk", Note: "token:ops"},
		{Hash: challengeHash(2), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)},
		{Hash: challengeHash(3), ProfileID: "p1", Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)}, // expired
	} {
		if err := s.CreateChallenge(ctx, c, 10); err != nil {
			t.Fatalf("challenge %d: %v", i, err)
		}
	}
	pending, err := s.PendingChallenges(ctx, "p1", now, 10)
	if err != nil || len(pending) != 2 || pending[1].BoundTo != "kiosk" || pending[1].Note != "token:ops" || !pending[1].Created.Equal(now.Add(-time.Minute)) {
		t.Fatalf("pending challenges: %+v %v", pending, err)
	}
	if err := s.CancelChallenge(ctx, "p1", challengeHash(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelChallenge(ctx, "p1", challengeHash(1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancelling twice: %v, want ErrNotFound", err)
	}
	if err := s.CancelChallenge(ctx, "p1", challengeHash(3)); err != nil {
		t.Errorf("cancelling an expired one: %v", err)
	}
	if pending, _ := s.PendingChallenges(ctx, "p1", now, 10); len(pending) != 1 {
		t.Errorf("after cancelling: %+v", pending)
	}

	for i, e := range []store.AuditEvent{
		{Time: now.Add(-time.Hour), Details: map[string]string{"profile": "p1", "fail_info": "badRequest", "reason": "wrong challenge"}},
		{Time: now.Add(-2 * time.Hour), Details: map[string]string{"profile": "p1", "fail_info": "badRequest", "reason": "wrong challenge"}},
		{Time: now.Add(-time.Hour), Details: map[string]string{"profile": "p2", "fail_info": "badAlg", "reason": "single DES"}},
		{Time: now.Add(-10 * 24 * time.Hour), Details: map[string]string{"profile": "p1", "fail_info": "badTime", "reason": "old"}},
	} {
		e.Actor, e.Action, e.Object, e.Outcome = "device", "enroll", fmt.Sprint("transaction:f", i), "rejected"
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if by, err := s.RequestedBy(ctx, "p1", "f0"); err != nil || by != "device" {
		t.Errorf("requested by of f0: %q %v", by, err)
	}
	if by, err := s.RequestedBy(ctx, "p2", "f0"); err != nil || by != "" {
		t.Errorf("requested by of f0 in another profile: %q %v", by, err)
	}
	fails, err := s.EnrollFailures(ctx, now.Add(-7*24*time.Hour), nil)
	if err != nil || fmt.Sprint(fails) != "[{badRequest wrong challenge 2} {badAlg single DES 1}]" {
		t.Errorf("enroll failures: %v %v", fails, err)
	}
	fails, err = s.EnrollFailures(ctx, now.Add(-7*24*time.Hour), []string{"p2"})
	if err != nil || fmt.Sprint(fails) != "[{badAlg single DES 1}]" {
		t.Errorf("enroll failures of p2: %v %v", fails, err)
	}
}
