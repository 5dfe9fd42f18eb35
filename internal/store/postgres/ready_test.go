package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// TestReadOnlyDatabase: a database whose transactions turned read-only
// (what a replica sees connected to a standby, or to a primary demoted
// in a failover) answers writes with SQLSTATE 25006: the store's error is
// ErrUnavailable (503 and Retry-After, not 500), the store is not ready,
// and once the database takes writes again the pool's connections,
// past their lifetime, are replaced and a write makes it ready.
func TestReadOnlyDatabase(t *testing.T) {
	u, name := pgtest.Database(t)
	ctx := context.Background()
	const lifetime = 50 * time.Millisecond
	s, err := Open(ctx, u, Options{MaxConns: 2, ConnMaxLifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateCA(ctx, store.CA{ID: "ca1", CertDER: []byte{1}, KeyRef: "file:k"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("ready before: %v", err)
	}
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	setReadOnly := func(on bool) {
		t.Helper()
		q := "ALTER DATABASE " + name + " SET default_transaction_read_only = on"
		if !on {
			q = "ALTER DATABASE " + name + " RESET default_transaction_read_only"
		}
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * lifetime) // the pool's sessions expire: the next are new ones, with the setting
	}

	setReadOnly(true)
	// A write that succeeded within a second answers for the database
	// (sqlstore's probeSkip): past it, Ready asks the database.
	time.Sleep(time.Second)
	err = s.Ready(ctx)
	var nr *store.NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("ready on a read-only database: %v, want a NotReadyError", err)
	}
	t.Logf("not ready: %v", err)
	err = s.CreateCA(ctx, store.CA{ID: "ca2", CertDER: []byte{1}, KeyRef: "file:k"})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("write on a read-only database: %v, want SQLSTATE 25006", err)
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("write on a read-only database: %v, want store.ErrUnavailable", err)
	}
	if _, failing := s.WritesFailing(time.Now()); !failing {
		t.Error("the store does not report its writes failing")
	}
	if err := s.Ready(ctx); err == nil {
		t.Fatal("ready while writes fail")
	}

	setReadOnly(false)
	if err := s.CreateCA(ctx, store.CA{ID: "ca2", CertDER: []byte{1}, KeyRef: "file:k"}); err != nil {
		t.Fatalf("write once the database takes writes again: %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("ready after a write succeeded: %v", err)
	}
}

// TestClassify: the SQLSTATEs a client should retry later are
// ErrUnavailable; a constraint is the store's conflict; others are none.
func TestClassify(t *testing.T) {
	for code, want := range map[string]error{
		"08006": store.ErrUnavailable, // connection_failure
		"53100": store.ErrUnavailable, // disk_full
		"58030": store.ErrUnavailable, // io_error
		"57P01": store.ErrUnavailable, // admin_shutdown
		"57014": store.ErrUnavailable, // query_canceled (statement_timeout)
		"25006": store.ErrUnavailable, // read_only_sql_transaction
		"25P03": store.ErrUnavailable, // idle_in_transaction_session_timeout
		"55P03": store.ErrUnavailable, // lock_not_available
		"40001": store.ErrContention,  // serialization_failure: one transaction, not the database
		"40P01": store.ErrContention,  // deadlock_detected
		"23505": store.ErrConflict,
		"42P01": nil, // undefined_table: a bug, not an outage
		"22001": nil, // string_data_right_truncation
	} {
		if got := classify(fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code})); got != want {
			t.Errorf("SQLSTATE %s: %v, want %v", code, got, want)
		}
	}
}
