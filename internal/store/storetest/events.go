package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

func testSinkLease(t *testing.T, s store.Store) {
	seed(t, s)
	if err := s.RecordIssued(ctx, issued("0a", "tx1")); err != nil {
		t.Fatal(err)
	}
	now := when
	// A new sink starts at the newest event: history is not replayed.
	cur, ok, err := s.ClaimSink(ctx, "hook", "replica-a", now, now.Add(30*time.Second))
	if err != nil || !ok || cur != 1 {
		t.Fatalf("first claim = %d, %v, %v; want cursor 1 (the newest event), ok", cur, ok, err)
	}
	// Held: another replica is refused until the lease runs out.
	if cur, ok, err := s.ClaimSink(ctx, "hook", "replica-b", now.Add(10*time.Second), now.Add(40*time.Second)); err != nil || ok || cur != 1 {
		t.Fatalf("claim of a held sink = %d, %v, %v; want refused, with the cursor 1", cur, ok, err)
	}
	// The holder renews and advances.
	if _, ok, err := s.ClaimSink(ctx, "hook", "replica-a", now.Add(20*time.Second), now.Add(50*time.Second)); err != nil || !ok {
		t.Fatalf("renewal = %v, %v", ok, err)
	}
	if err := s.AdvanceSink(ctx, "hook", "replica-a", 5); err != nil {
		t.Fatal(err)
	}
	// A cursor never moves back.
	if err := s.AdvanceSink(ctx, "hook", "replica-a", 3); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("moving the cursor back: %v, want ErrConflict", err)
	}
	// After expiry another replica takes over at the cursor; the old
	// holder can no longer advance it.
	cur, ok, err = s.ClaimSink(ctx, "hook", "replica-b", now.Add(51*time.Second), now.Add(90*time.Second))
	if err != nil || !ok || cur != 5 {
		t.Fatalf("takeover = %d, %v, %v; want cursor 5", cur, ok, err)
	}
	if err := s.AdvanceSink(ctx, "hook", "replica-a", 6); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("advance by the old holder: %v, want ErrConflict", err)
	}
	// Sinks are independent.
	if _, ok, err := s.ClaimSink(ctx, "log", "replica-a", now, now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("claim of a second sink = %v, %v", ok, err)
	}
	// Racing replicas: exactly one wins a free sink.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Go(func() {
			_, ok, err := s.ClaimSink(ctx, "race", string(rune('a'+i)), now, now.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d replicas hold the sink, want 1", won)
	}
}

func testExpiryNotices(t *testing.T, s store.Store) {
	seed(t, s)
	mk := func(serial string, notAfter time.Time) {
		rec := issued(serial, "tx-"+serial)
		rec.Certificate.NotBefore = notAfter.Add(-365 * 24 * time.Hour)
		rec.Certificate.NotAfter = notAfter
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	now := when
	day := 24 * time.Hour
	mk("01", now.Add(3*day))  // within 7 days
	mk("02", now.Add(20*day)) // within 30 days
	mk("03", now.Add(60*day)) // not yet
	mk("04", now.Add(-day))   // expired: never
	mk("05", now.Add(5*day))  // revoked: never
	mk("06", now.Add(6*day))  // renewed by 07: never
	rec := issued("07", "tx-07")
	rec.Certificate.NotAfter = now.Add(300 * day)
	rec.Certificate.RenewedSerial = "06"
	if err := s.RecordIssued(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeCertificate(ctx, "05", 1, now, nil, store.AuditEvent{Time: now, Actor: "op", Action: "certificate.revoke", Object: "certificate:05", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	serials := func(cs []store.Certificate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Serial)
		}
		return out
	}
	due, err := s.DueExpiryNotices(ctx, "p1", 30*day, now, 10)
	if err != nil || len(due) != 2 || due[0].Serial != "01" || due[1].Serial != "02" {
		t.Fatalf("due within 30 days = %v, %v; want [01 02] soonest first", serials(due), err)
	}
	audit := func(serial string) *store.AuditEvent {
		return &store.AuditEvent{Time: now, Actor: "scepd", Action: "certificate.expiring", Object: "certificate:" + serial, Outcome: "notice"}
	}
	before, _ := s.ListAudit(ctx, 1000)
	// Concurrent replicas record the same notice: exactly one is new and
	// exactly one audit event is written.
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 6 {
		wg.Go(func() {
			isNew, err := s.RecordExpiryNotice(ctx, "01", []time.Duration{7 * day, 30 * day}, now, audit("01"))
			if err != nil {
				t.Error(err)
			}
			if isNew {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	after, _ := s.ListAudit(ctx, 1000)
	if fresh != 1 || len(after) != len(before)+1 {
		t.Fatalf("%d new notices, %d audit events added; want 1 and 1", fresh, len(after)-len(before))
	}
	// 01's 7-day notice covered its 30-day one.
	due, err = s.DueExpiryNotices(ctx, "p1", 30*day, now, 10)
	if err != nil || len(due) != 1 || due[0].Serial != "02" {
		t.Fatalf("due within 30 days after 01's notice = %v, %v; want [02]", serials(due), err)
	}
	// A notice recorded without an event (audit nil) appends nothing.
	if isNew, err := s.RecordExpiryNotice(ctx, "02", []time.Duration{30 * day}, now, nil); err != nil || !isNew {
		t.Fatalf("silent notice = %v, %v", isNew, err)
	}
	if again, _ := s.ListAudit(ctx, 1000); len(again) != len(after) {
		t.Fatalf("a silent notice appended %d audit events", len(again)-len(after))
	}
	if due, err := s.DueExpiryNotices(ctx, "p1", 30*day, now, 10); err != nil || len(due) != 0 {
		t.Fatalf("due after every notice = %v, %v; want none", serials(due), err)
	}
	verifyChain(t, s, len(after))
}
