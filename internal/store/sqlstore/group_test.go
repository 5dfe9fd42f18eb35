package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/slot"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
	"github.com/scepd/scepd/internal/store/sqlstore"
)

// commits counts the group transactions a store reports.
type commits struct {
	mu sync.Mutex
	n  int
}

func (c *commits) ObserveStore(op string, _ time.Duration, _ error) {
	if op == "GroupCommit" {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
}

// openSQLite opens a store on the SQLite file at path, closed after t.
func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestGroupCommit: enrollments queued while the database is busy commit
// together in one transaction, and the one whose challenge is spent
// fails alone: the others are stored, chained in the audit log.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepd.db")
	s := openSQLite(t, path)
	var seen commits
	s.SetObserver(&seen)
	now := time.Now()
	if err := s.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "file:k", Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateProfile(ctx, store.Profile{ID: "p", CAID: "ca", RACertDER: []byte{2}, RAKeyRef: "file:ra", ChallengeMode: store.ChallengeDynamic, Created: now}); err != nil {
		t.Fatal(err)
	}
	// Another connection holds the write lock: the writer waits at BEGIN
	// with the first enrollment while the others queue behind it.
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	const n, bad = 12, 7
	errs := make([]error, n)
	var wg sync.WaitGroup
	enroll := func(i int) {
		defer wg.Done()
		rec := store.Issued{
			Certificate: store.Certificate{Serial: fmt.Sprintf("%02x", i), ProfileID: "p", TransactionID: fmt.Sprint("tx", i), Subject: "CN=d",
				NotBefore: now, NotAfter: now.Add(time.Hour), DER: []byte{byte(i)}, Status: store.CertValid, CAID: "ca", Created: now},
			Transaction: store.Transaction{ProfileID: "p", TransactionID: fmt.Sprint("tx", i), Status: store.StatusIssued, PublicKeySHA256: []byte{7}, CSRDER: []byte{8},
				CertSerial: fmt.Sprintf("%02x", i), Created: now, Updated: now},
			Audit: store.AuditEvent{Time: now, Actor: "device", Action: "enroll", Object: fmt.Sprint("tx", i), Outcome: "issued"},
		}
		if i == bad {
			rec.ChallengeHash = []byte("never created")
		}
		errs[i] = s.RecordIssued(ctx, rec)
	}
	for i := range n {
		wg.Add(1)
		go enroll(i)
	}
	for {
		waiting, taken := sqlstore.Queued(s)
		if waiting+taken == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if (i == bad) != errors.Is(err, store.ErrChallengeSpent) || (i != bad && err != nil) {
			t.Errorf("enrollment %d: %v", i, err)
		}
	}
	if seen.n > 2 {
		t.Errorf("%d enrollments took %d transactions; want them grouped (at most 2)", n, seen.n)
	}
	certs, err := s.ListCertificates(ctx, store.CertificateFilter{})
	if err != nil || len(certs) != n-1 {
		t.Fatalf("stored %d certificates (%v), want %d", len(certs), err, n-1)
	}
	if _, err := s.GetCertificate(ctx, fmt.Sprintf("%02x", bad)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the failed enrollment's certificate: %v, want ErrNotFound", err)
	}
	r, err := s.CheckIntegrity(ctx)
	if err != nil || len(r.Problems) != 0 || r.AuditEvents != n-1 {
		t.Errorf("integrity: %+v, %v; want %d chained events and no problems", r, err, n-1)
	}
}

// TestGroupCommitPanic: a write that panics fails its own caller and
// leaves the writer serving the next ones.
func TestGroupCommitPanic(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "scepd.db"))
	err := sqlstore.Write(ctx, s, func(context.Context, *sql.Tx) error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("a panicking write: %v, want its panic as the error", err)
	}
	now := time.Now()
	if err := s.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "file:k", Created: now}); err != nil {
		t.Fatalf("the write after a panic: %v", err)
	}
	if _, err := s.GetCA(ctx, "ca"); err != nil {
		t.Fatal(err)
	}
}

// TestExpectedWriteJoins: while requests queue for the server's slots, a
// group about to begin waits for an announced write, which then commits
// with it in one transaction; it stops waiting when the announcement is
// withdrawn, and an announced write that never comes holds it for the
// longest wait, then it commits. With no request queued it does not wait.
func TestExpectedWriteJoins(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "scepd.db"))
	var seen commits
	s.SetObserver(&seen)
	groups := func() int {
		seen.mu.Lock()
		defer seen.mu.Unlock()
		return seen.n
	}
	if _, err := s.DB().ExecContext(ctx, `CREATE TABLE written (key TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	insert := func(ctx context.Context, key string) error {
		return sqlstore.Write(ctx, s, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO written (key) VALUES ($1)`, key)
			return err
		})
	}
	// Long enough for any machine: the outcome, not the clock, is tested
	// (a wait that ended at this bound would fail below, not hang).
	const long = 30 * time.Second
	sqlstore.SetCommitWait(s, long, long)

	// No request queues for the server's slots: a group commits at once,
	// whatever is announced (waiting would only add latency).
	_, idle := s.Expect(ctx)
	start := time.Now()
	if err := insert(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) >= long {
		t.Errorf("a group waited %v with no request queued for a slot", time.Since(start))
	}
	idle()
	// From here requests queue: a group may wait.
	busy := slot.With(ctx, func() func() { return func() {} }, func() bool { return true })
	// leaderWaits starts a write that leads a group, and returns once it
	// leads (and waits: an announced write is outstanding).
	leaderWaits := func(key string) chan error {
		t.Helper()
		out := make(chan error, 1)
		go func() { out <- insert(busy, key) }()
		for !sqlstore.Leading(s) {
			select {
			case err := <-out:
				t.Fatalf("%s committed (%v) without waiting for the write announced", key, err)
			case <-time.After(time.Millisecond):
			}
		}
		return out
	}

	// Announced: it joins the leader's group.
	expected, done := s.Expect(ctx)
	defer done()
	start = time.Now()
	leader := leaderWaits("leader")
	before := groups()
	if err := insert(expected, "joined"); err != nil {
		t.Fatal(err)
	}
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	if got := groups() - before; got != 1 || time.Since(start) >= long {
		t.Errorf("the leader and the write it waited for took %d transactions (after %v), want 1 before the longest wait", got, time.Since(start))
	}
	done() // settled already: counted once
	if a, st := sqlstore.Announced(s); a != 2 || st != 2 {
		t.Errorf("announced %d, settled %d; want 2 and 2", a, st)
	}

	// Withdrawn: the leader begins without it.
	_, withdraw := s.Expect(ctx)
	start = time.Now()
	leader = leaderWaits("after withdrawal")
	withdraw()
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	if time.Since(start) >= long {
		t.Errorf("the leader waited the longest wait for a withdrawn write")
	}

	// Never comes, never withdrawn: the longest wait, then the commit.
	const short = 20 * time.Millisecond
	sqlstore.SetCommitWait(s, time.Hour, short)
	_, never := s.Expect(ctx)
	defer never()
	start = time.Now()
	if err := insert(busy, "alone"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < short {
		t.Errorf("a write committed after %v with an announced write outstanding, want the longest wait (%v) first", waited, short)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM written`).Scan(&n); err != nil || n != 5 {
		t.Errorf("%d rows stored (%v), want 5", n, err)
	}
}
