package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
	"github.com/scepd/scepd/internal/store/sqlite"
	"github.com/scepd/scepd/internal/store/sqlstore"
)

// TestContentionKeepsReady: a write that lost to a concurrent one (a
// deadlock, a serialization failure) is retried by its client and says
// nothing of the database; a write the database refused as unavailable
// takes the store out of readiness until one succeeds.
func TestContentionKeepsReady(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(err error) {
		sqlstore.Write(ctx, s, func(context.Context, *sql.Tx) error { return err })
	}
	write(fmt.Errorf("deadlock detected: %w", store.ErrContention))
	if _, failing := s.WritesFailing(time.Now()); failing {
		t.Fatal("a deadlock took the store out of readiness")
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready after a deadlock: %v", err)
	}
	write(fmt.Errorf("disk full: %w", store.ErrUnavailable))
	if _, failing := s.WritesFailing(time.Now()); !failing {
		t.Fatal("a write the database refused left the store ready")
	}
	write(nil)
	if _, failing := s.WritesFailing(time.Now()); failing {
		t.Fatal("a write that succeeded left the store failing")
	}
}

// TestContentionRetried (PostgreSQL): a write transaction that lost to a concurrent one
// (a deadlock, a serialization failure: PostgreSQL rolled it back) runs
// once more before its caller hears 503, and a second loss is the
// caller's; neither takes the store out of readiness.
func TestContentionRetried(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.Schema(t), postgres.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	deadlock := &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	for _, losses := range []int{1, 2} {
		calls := 0
		err := sqlstore.Write(ctx, s, func(context.Context, *sql.Tx) error {
			calls++
			if calls <= losses {
				return deadlock
			}
			return nil
		})
		switch {
		case losses == 1 && (err != nil || calls != 2):
			t.Errorf("one loss: %v after %d runs, want success on the second", err, calls)
		case losses == 2 && (!errors.Is(err, deadlock) || calls != 2):
			t.Errorf("two losses: %v after %d runs, want the deadlock after two", err, calls)
		}
	}
	// A caller whose own time ran out (the server's answer deadline)
	// says nothing of the database either.
	expired, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()
	if err := sqlstore.Write(expired, s, func(context.Context, *sql.Tx) error { return nil }); err == nil {
		t.Fatal("a write after its caller's deadline succeeded")
	}
	if err := s.Ready(ctx); err != nil {
		t.Errorf("ready after contention and a caller's deadline: %v", err)
	}
}
