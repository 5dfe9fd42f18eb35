package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/slot"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/storetest"
)

// openAt opens the database at path, closed when the test ends.
func openAt(t testing.TB, path string) *Store {
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openAt(t, filepath.Join(t.TempDir(), "scepd.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scepd.db")
	ctx := context.Background()
	s := openAt(t, path)
	if err := s.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "file:k"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen (migrations must be idempotent): %v", err)
	}
	defer s.Close()
	if _, err := s.GetCA(ctx, "ca"); err != nil {
		t.Fatal(err)
	}
}

func TestRenewalClientIDMigration(t *testing.T) {
	storetest.RunRenewalClientIDMigration(t, func(t *testing.T) (store.Store, storetest.Exec, storetest.Reopen) {
		path := filepath.Join(t.TempDir(), "scepd.db")
		s := openAt(t, path)
		return s, storetest.ExecOn(s.DB()), func(t *testing.T) store.Store { return openAt(t, path) }
	})
}

func TestChallengeEnvHashMigration(t *testing.T) {
	storetest.RunChallengeEnvHashMigration(t, func(t *testing.T) (store.Store, storetest.Exec, storetest.Reopen) {
		path := filepath.Join(t.TempDir(), "scepd.db")
		s := openAt(t, path)
		return s, storetest.ExecOn(s.DB()), func(t *testing.T) store.Store { return openAt(t, path) }
	})
}

func TestAuditTamper(t *testing.T) {
	storetest.RunAuditTamper(t, func(t *testing.T) (storetest.Keyed, storetest.Exec, func(*testing.T) storetest.Keyed) {
		path := filepath.Join(t.TempDir(), "scepd.db")
		s := openAt(t, path)
		return s, storetest.ExecOn(s.DB()), func(t *testing.T) storetest.Keyed { return openAt(t, path) }
	})
}

// BenchmarkAppendAudit: the cost of keying the chain (an HMAC over the
// head to check it, one over the new event) against the unkeyed chain.
func BenchmarkAppendAudit(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(map[bool]string{false: "unkeyed", true: "keyed"}[keyed], func(b *testing.B) {
			s := openAt(b, filepath.Join(b.TempDir(), "scepd.db"))
			if keyed {
				s.SetAuditKey(make([]byte, 32))
			}
			e := store.AuditEvent{Time: time.Now(), Actor: "device", Action: "enroll", Object: "certificate:0a1b2c", Outcome: "issued",
				Details: map[string]string{"profile": "default", "subject": "CN=laptop-42", "tx": "0123456789abcdef"}}
			for b.Loop() {
				if err := s.AppendAudit(context.Background(), e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecordIssued: the store's CPU per enrollment, one at a time,
// on a keyed audit chain as scepd serve keeps it.
func BenchmarkRecordIssued(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "scepd.db"))
	s.SetAuditKey(make([]byte, 32))
	storetest.BenchRecordIssued(b, s)
}

// BenchmarkRecordIssuedParallel: enrollments committed from parallel
// goroutines on a file in a temporary directory (synchronous=FULL).
func BenchmarkRecordIssuedParallel(b *testing.B) {
	storetest.BenchRecordIssuedParallel(b, openAt(b, filepath.Join(b.TempDir(), "scepd.db")))
}

// TestConnectionSettings: every connection of the pool is durable
// (synchronous=FULL, WAL) and keeps statement journals in memory
// (temp_store=MEMORY: a savepoint's journal is no crash's concern); a new
// database has 1 KiB pages and checkpoints its WAL at 4 MiB.
func TestConnectionSettings(t *testing.T) {
	checkSettings(t, openAt(t, filepath.Join(t.TempDir(), "scepd.db")).DB(), map[string]string{
		"page_size": "1024", "wal_autocheckpoint": "4096"})
}

// A database created with another page size keeps it, and checkpoints at
// the same WAL size.
func TestExistingPageSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scepd.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA page_size=4096", "CREATE TABLE before_scepd (x)"} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	checkSettings(t, openAt(t, path).DB(), map[string]string{"page_size": "4096", "wal_autocheckpoint": "1024"})
}

func checkSettings(t *testing.T, db *sql.DB, more map[string]string) {
	t.Helper()
	ctx := context.Background()
	conns := make([]*sql.Conn, 3) // held at once, so three connections
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		want := map[string]string{"synchronous": "2", "journal_mode": "wal", "temp_store": "2", "cache_size": "-512"}
		maps.Copy(want, more)
		for pragma, want := range want {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("connection %d: %s = %s, want %s", i, pragma, got, want)
			}
		}
	}
}

// TestCommitGivesBackTheSlot: waiting for the group commit (another
// caller's group, then the fsync) is no CPU work of the server's, so a
// write gives the request's processing slot back while it waits and
// takes one again before it returns: another request runs meanwhile and
// its write may join the next group.
func TestCommitGivesBackTheSlot(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "scepd.db"))
	var events []string
	ctx := slot.With(context.Background(), func() func() {
		events = append(events, "yield")
		return func() { events = append(events, "resume") }
	}, nil)
	if err := s.AppendAudit(ctx, store.AuditEvent{Time: time.Now(), Actor: "test", Action: "test", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(events, ","); got != "yield,resume" {
		t.Fatalf("the write's slot: %q, want yield,resume", got)
	}
}

// A file that is no SQLite database is refused with SQLite's own error,
// and left as it was.
func TestOpenNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scepd.db")
	junk := []byte("this is not a database, it is an operator's note\n")
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(context.Background(), path); err == nil {
		s.Close()
		t.Fatal("opened a file that is no database")
	} else if !strings.Contains(err.Error(), "not a database") {
		t.Errorf("error %q does not say the file is not a database", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, junk) {
		t.Errorf("the file was changed: %q", got)
	}
}
