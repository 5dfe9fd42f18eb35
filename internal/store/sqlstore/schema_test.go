package sqlstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/store/postgres"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
	"github.com/scepd/scepd/internal/store/sqlite"
	"github.com/scepd/scepd/internal/store/sqlstore"
)

// idempotent is a migration that may be applied again (DROP INDEX IF
// EXISTS, CREATE INDEX): deleting its record makes a database that lacks
// it.
const idempotent = "0016_revoked_covering"

// TestSchemaVersions: with RequireMigrated, an empty database gets the
// schema, one lacking a migration is refused, named, and left as it was;
// ApplyMigrations then applies that migration; a database recording a
// migration this scepd lacks is refused either way. On both databases.
func TestSchemaVersions(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "scepd.db")
		testSchemaVersions(t, func(s sqlstore.Schema) (*sqlstore.Store, error) {
			return sqlite.OpenSchema(context.Background(), path, s)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.Schema(t)
		testSchemaVersions(t, func(s sqlstore.Schema) (*sqlstore.Store, error) {
			return postgres.Open(context.Background(), u, postgres.Options{MaxConns: 2, Schema: s})
		})
	})
}

func testSchemaVersions(t *testing.T, open func(sqlstore.Schema) (*sqlstore.Store, error)) {
	exec := func(q string) { // on a database this scepd migrated
		t.Helper()
		s, err := open(sqlstore.RequireMigrated)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s, err := open(sqlstore.RequireMigrated)
	if err != nil {
		t.Fatalf("an empty database, not migrating: %v; want the schema created", err)
	}
	all := s.Migrated()
	s.Close()
	if !slices.Contains(all, idempotent) {
		t.Fatalf("an empty database got %v", all)
	}

	exec(`DELETE FROM schema_migrations WHERE version = '` + idempotent + `'`)
	for range 2 { // and the first refusal applied nothing
		_, err = open(sqlstore.RequireMigrated)
		var se *sqlstore.SchemaError
		if !errors.As(err, &se) || !slices.Equal(se.Missing, []string{idempotent}) || len(se.Unknown) > 0 ||
			!strings.Contains(err.Error(), idempotent) || !strings.Contains(err.Error(), "scepd store migrate") {
			t.Fatalf("a database lacking %s, not migrating: %v; want it refused, naming the migration and `scepd store migrate`", idempotent, err)
		}
	}
	s, err = open(sqlstore.ApplyMigrations)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Migrated(); !slices.Equal(got, []string{idempotent}) {
		t.Errorf("migrating applied %v, want [%s]", got, idempotent)
	}
	s.Close()

	exec(`INSERT INTO schema_migrations (version, applied_at) VALUES ('9999_from_a_newer_scepd', CURRENT_TIMESTAMP)`)
	for _, mode := range []sqlstore.Schema{sqlstore.ApplyMigrations, sqlstore.RequireMigrated} {
		_, err := open(mode)
		var se *sqlstore.SchemaError
		if !errors.As(err, &se) || !slices.Equal(se.Unknown, []string{"9999_from_a_newer_scepd"}) ||
			!strings.Contains(err.Error(), "migrated by a newer scepd (migration 9999_from_a_newer_scepd)") {
			t.Fatalf("a database a newer scepd migrated (mode %d): %v; want it refused", mode, err)
		}
	}
}
