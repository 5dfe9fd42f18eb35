package events

import (
	"context"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// TestExpiryNoticeNotAtIssuance: with the default notices (720h, 168h),
// a certificate the policy gave 720h (notBefore backdated 5 minutes, so
// notAfter - notBefore is 720h5m) gets no notice at issuance, nor at any
// time for the 720h threshold; it gets the 168h one when 168h are left.
// A certificate of 721h gets the 720h notice once an hour has passed.
func TestExpiryNoticeNotAtIssuance(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	issuedAt := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	if err := s.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "k", Created: issuedAt}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateProfile(ctx, store.Profile{ID: "p", CAID: "ca", RACertDER: []byte{1}, RAKeyRef: "k", ChallengeMode: store.ChallengeNone, Created: issuedAt}); err != nil {
		t.Fatal(err)
	}
	const backdate = 5 * time.Minute
	for i, c := range []struct {
		serial   string
		validity time.Duration
	}{{"a720", 720 * time.Hour}, {"b721", 721 * time.Hour}} {
		// What enroll stores: notBefore backdated, created at issuance
		// (microseconds, as the databases keep it), notAfter in seconds.
		created := issuedAt.Add(123456 * time.Microsecond)
		rec := store.Issued{
			Certificate: store.Certificate{Serial: c.serial, ProfileID: "p", TransactionID: c.serial, Subject: "CN=" + c.serial,
				NotBefore: created.Add(-backdate).Truncate(time.Second), NotAfter: created.Add(c.validity).Truncate(time.Second),
				DER: []byte{byte(i)}, Status: store.CertValid, Created: created},
			Transaction: store.Transaction{ProfileID: "p", TransactionID: c.serial, Status: store.StatusIssued, CertSerial: c.serial,
				PublicKeySHA256: []byte{1}, CSRDER: []byte{1}, Created: created, Updated: created},
			Audit: store.AuditEvent{Time: created, Actor: "t", Action: "enroll", Object: "certificate:" + c.serial, Outcome: "issued"},
		}
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	now := issuedAt
	x := &Expiry{Store: s, Log: quiet(), Now: func() time.Time { return now },
		Thresholds: func(store.Profile) []time.Duration { return []time.Duration{720 * time.Hour, 168 * time.Hour} }}
	notices := func() map[string]string {
		evs, _ := s.ListAudit(ctx, 100)
		out := map[string]string{}
		for _, e := range evs {
			if e.Action == "certificate.expiring" {
				out[e.Object] = e.Details["threshold"] + " " + out[e.Object] // newest first
			}
		}
		return out
	}
	for _, step := range []struct {
		at   time.Duration // after issuance
		want map[string]string
	}{
		{10 * time.Second, map[string]string{}},
		{59 * time.Minute, map[string]string{}},
		{61 * time.Minute, map[string]string{"certificate:b721": "720h0m0s "}},
		{552*time.Hour - time.Minute, map[string]string{"certificate:b721": "720h0m0s "}},
		{552*time.Hour + time.Second, map[string]string{"certificate:b721": "720h0m0s ", "certificate:a720": "168h0m0s "}},
		{553*time.Hour + time.Second, map[string]string{"certificate:b721": "720h0m0s 168h0m0s ", "certificate:a720": "168h0m0s "}},
	} {
		now = issuedAt.Add(step.at)
		if _, err := x.Scan(ctx); err != nil {
			t.Fatal(err)
		}
		got := notices()
		if len(got) != len(step.want) {
			t.Fatalf("%v after issuance: notices %v, want %v", step.at, got, step.want)
		}
		for k, v := range step.want {
			if got[k] != v {
				t.Fatalf("%v after issuance: notices %v, want %v", step.at, got, step.want)
			}
		}
	}
}
