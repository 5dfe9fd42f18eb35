package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

func testSessions(t *testing.T, s store.Store) {
	if err := s.CreateToken(ctx, store.Token{ID: "t1", Hash: []byte{1}, Name: "op", Role: "operator", Created: when}); err != nil {
		t.Fatal(err)
	}
	a := store.Session{IDHash: []byte("hash-a"), TokenID: "t1", CSRFHash: "csrf-a", Created: when, Expires: when.Add(time.Hour)}
	b := store.Session{IDHash: []byte("hash-b"), TokenID: "t1", CSRFHash: "csrf-b", Created: when, Expires: when.Add(time.Minute)}
	for _, se := range []store.Session{a, b} {
		if err := s.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetSession(ctx, a.IDHash, when)
	if err != nil || got.TokenID != "t1" || got.CSRFHash != "csrf-a" {
		t.Fatalf("GetSession = %+v, %v", got, err)
	}
	sameInstant(t, "session expiry", got.Expires, a.Expires)
	if _, err := s.GetSession(ctx, b.IDHash, when.Add(2*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: %v, want ErrNotFound", err)
	}
	if err := s.DeleteSessions(ctx, nil, when.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, a.IDHash, when); err != nil {
		t.Fatalf("purging expired sessions removed a live one: %v", err)
	}
	sameInstant(t, "session last seen, at creation", got.LastSeen, a.Created)
	if got.HasFlash {
		t.Error("a new session has a flash")
	}
	if err := s.TouchSession(ctx, a.IDHash, when.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GetSession(ctx, a.IDHash, when); err != nil {
		t.Fatal(err)
	}
	sameInstant(t, "session last seen, touched", got.LastSeen, when.Add(10*time.Minute))
	// A flash is taken once, whoever asks; the other session has none.
	if err := s.PutSessionFlash(ctx, a.IDHash, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSessionFlash(ctx, a.IDHash, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GetSession(ctx, a.IDHash, when); err != nil || !got.HasFlash {
		t.Fatalf("session with a flash: %+v, %v", got, err)
	}
	if f, err := s.TakeSessionFlash(ctx, b.IDHash); err != nil || f != nil {
		t.Fatalf("flash of a session without one: %q, %v", f, err)
	}
	if f, err := s.TakeSessionFlash(ctx, a.IDHash); err != nil || string(f) != "second" {
		t.Fatalf("TakeSessionFlash = %q, %v; want the last one put", f, err)
	}
	if f, err := s.TakeSessionFlash(ctx, a.IDHash); err != nil || f != nil {
		t.Fatalf("flash taken twice: %q, %v", f, err)
	}
	if got, err = s.GetSession(ctx, a.IDHash, when); err != nil || got.HasFlash {
		t.Fatalf("session after its flash was taken: %+v, %v", got, err)
	}
	if err := s.DeleteSessions(ctx, a.IDHash, when); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, a.IDHash, when); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("signed-out session: %v, want ErrNotFound", err)
	}
}

func testDashboardCounts(t *testing.T, s store.Store) {
	seed(t, s)
	for i, serial := range []string{"01", "02", "03"} {
		rec := issued(serial, "tx"+serial)
		rec.Certificate.Created = time.Date(2026, 3, 4+i/2, 23, 30, 0, 0, time.UTC)
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	days, err := s.IssuedPerDay(ctx, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || len(days) != 2 || days[0] != (store.DayCount{Day: "2026-03-04", ProfileID: "p1", Count: 2}) || days[1].Day != "2026-03-05" || days[1].Count != 1 {
		t.Fatalf("IssuedPerDay = %+v, %v", days, err)
	}
	now := when
	for i, c := range []store.Challenge{
		{Hash: challengeHash(1), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)},
		{Hash: challengeHash(2), ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)},
		{Hash: challengeHash(3), ProfileID: "p1", Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)},
	} {
		if err := s.CreateChallenge(ctx, c, 10); err != nil {
			t.Fatalf("challenge %d: %v", i, err)
		}
	}
	rec := issued("04", "tx04")
	rec.ChallengeHash = challengeHash(2)
	if err := s.RecordIssued(ctx, rec); err != nil {
		t.Fatal(err)
	}
	pending, used, expired, err := s.ChallengeCounts(ctx, "p1", now)
	if err != nil || pending != 1 || used != 1 || expired != 1 {
		t.Fatalf("ChallengeCounts = %d pending, %d used, %d expired, %v; want 1 1 1", pending, used, expired, err)
	}
}
