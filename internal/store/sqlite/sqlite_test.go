package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "scepd.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scepd.db")
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "file:k"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, path); err != nil {
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
		open := func(t *testing.T) store.Store {
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s := open(t)
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return s, func(t *testing.T, q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}, open
	})
}

func TestAuditTamper(t *testing.T) {
	storetest.RunAuditTamper(t, func(t *testing.T) (storetest.Keyed, storetest.Exec) {
		path := filepath.Join(t.TempDir(), "scepd.db")
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return s, func(t *testing.T, q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})
}

// BenchmarkAppendAudit: the cost of keying the chain (an HMAC over the
// head to check it, one over the new event) against the unkeyed chain.
func BenchmarkAppendAudit(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(map[bool]string{false: "unkeyed", true: "keyed"}[keyed], func(b *testing.B) {
			s, err := Open(context.Background(), filepath.Join(b.TempDir(), "scepd.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
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
