package postgres

import (
	"context"
	"testing"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
	"github.com/scepd/scepd/internal/store/storetest"
)

// openURL opens the schema at u, closed when the test ends.
func openURL(t *testing.T, u string, maxConns int32) *Store {
	s, err := Open(context.Background(), u, Options{MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openURL(t, pgtest.Schema(t), 8) })
}

func TestConcurrentMigration(t *testing.T) {
	u := pgtest.Schema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), u, Options{})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("replicas migrating together: %v", err)
		}
	}
}

func TestRenewalClientIDMigration(t *testing.T) {
	storetest.RunRenewalClientIDMigration(t, func(t *testing.T) (store.Store, storetest.Exec, storetest.Reopen) {
		u := pgtest.Schema(t)
		s := openURL(t, u, 4)
		return s, storetest.ExecOn(s.DB()), func(t *testing.T) store.Store { return openURL(t, u, 4) }
	})
}

func TestChallengeEnvHashMigration(t *testing.T) {
	storetest.RunChallengeEnvHashMigration(t, func(t *testing.T) (store.Store, storetest.Exec, storetest.Reopen) {
		u := pgtest.Schema(t)
		s := openURL(t, u, 4)
		return s, storetest.ExecOn(s.DB()), func(t *testing.T) store.Store { return openURL(t, u, 4) }
	})
}

func TestAuditTamper(t *testing.T) {
	storetest.RunAuditTamper(t, func(t *testing.T) (storetest.Keyed, storetest.Exec, func(*testing.T) storetest.Keyed) {
		u := pgtest.Schema(t)
		s := openURL(t, u, 4)
		return s, storetest.ExecOn(s.DB()), func(t *testing.T) storetest.Keyed { return openURL(t, u, 4) }
	})
}

// BenchmarkRecordIssued: scepd's CPU per enrollment on PostgreSQL, one at
// a time (the database server's own is not counted).
func BenchmarkRecordIssued(b *testing.B) {
	s, err := Open(context.Background(), pgtest.Schema(b), Options{MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.SetAuditKey(make([]byte, 32))
	storetest.BenchRecordIssued(b, s)
}

// BenchmarkRecordIssuedParallel: enrollments committed from parallel
// goroutines.
func BenchmarkRecordIssuedParallel(b *testing.B) {
	u := pgtest.Schema(b)
	s, err := Open(context.Background(), u, Options{MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchRecordIssuedParallel(b, s)
}
