package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
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
