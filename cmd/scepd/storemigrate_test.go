package main

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// idempotent is a migration that may be applied again (DROP INDEX IF
// EXISTS, CREATE INDEX): deleting its record makes a database that lacks
// it, as one an earlier scepd migrated does.
const idempotent = "0016_revoked_covering"

// TestCommandsDoNotMigrate: commands work on a new, empty database (they
// create the schema, as before the first serve); on a database lacking a
// migration of this scepd, the commands other than serve and store migrate
// leave it as it is and say what to do; store migrate applies the
// migration; a database recording a migration this scepd lacks is refused
// by every command, serve and store migrate included.
func TestCommandsDoNotMigrate(t *testing.T) {
	for _, env := range []string{"SCEPD_CONFIG", "SCEPD_DATABASE", "SCEPD_DATABASE_FILE", "SCEPD_AUDIT_KEY_FILE", "SCEPD_KEY_PASSPHRASE",
		"SCEPD_KEY_PASSPHRASE_FILE", "SCEPD_KEY_STORE", "SCEPD_SERVER", "SCEPD_TOKEN", "SCEPD_DATA"} {
		t.Setenv(env, "")
	}
	t.Run("sqlite", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		testCommandsDoNotMigrate(t, storeFlags{dataDir: data}, "sqlite", filepath.Join(data, "scepd.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.Schema(t)
		testCommandsDoNotMigrate(t, storeFlags{dataDir: filepath.Join(t.TempDir(), "data"), database: u}, "pgx", u)
	})
}

func testCommandsDoNotMigrate(t *testing.T, sf storeFlags, driver, dsn string) {
	where := []string{"--data", sf.dataDir}
	if sf.database != "" {
		where = append(where, "--database", sf.database)
	}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append(args, where...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, stderr := cli("token", "create", "--role", "admin", "--name", "ops"); code != 0 {
		t.Fatalf("token create on a new database: exit %d, %s", code, stderr)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	applied := func() bool {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM schema_migrations WHERE version = '` + idempotent + `'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	if !applied() {
		t.Fatalf("token create on a new database did not create the schema")
	}

	exec(`DELETE FROM schema_migrations WHERE version = '` + idempotent + `'`)
	for _, args := range [][]string{{"store", "check"}, {"cert", "list"}, {"audit", "verify"}, {"token", "list"}} {
		code, _, stderr := cli(args...)
		if code != 1 || !strings.Contains(stderr, idempotent) || !strings.Contains(stderr, "start `scepd serve` or run `scepd store migrate` (back up first)") {
			t.Errorf("%s on a database lacking %s: exit %d, %s; want it refused, naming the migration and what to do", strings.Join(args, " "), idempotent, code, stderr)
		}
		if applied() {
			t.Fatalf("%s migrated the database", strings.Join(args, " "))
		}
	}
	if code, stdout, stderr := cli("store", "migrate"); code != 0 || !strings.HasPrefix(stdout, "database: ") || !strings.HasSuffix(stdout, "\napplied "+idempotent+"\n") || !applied() {
		t.Fatalf("store migrate: exit %d, %s%s; want %s applied", code, stdout, stderr, idempotent)
	}
	if code, stdout, stderr := cli("store", "migrate"); code != 0 || !strings.Contains(stdout, "nothing to apply") {
		t.Fatalf("store migrate again: exit %d, %s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := cli("store", "check"); code != 0 {
		t.Fatalf("store check after store migrate: exit %d, %s%s", code, stdout, stderr)
	}
	// A data directory without a database (a mistyped --data, the wrong
	// working directory) is no database to migrate: none is created.
	if sf.database == "" {
		empty := filepath.Join(t.TempDir(), "elsewhere")
		var out, errb bytes.Buffer
		if code := run([]string{"store", "migrate", "--data", empty}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no scepd database at") {
			t.Errorf("store migrate of a directory without a database: exit %d, %s%s", code, out.String(), errb.String())
		}
		if _, err := os.Stat(filepath.Join(empty, "scepd.db")); err == nil {
			t.Error("store migrate created a database")
		}
	}

	if sf.database == "" {
		// serve migrates at start.
		exec(`DELETE FROM schema_migrations WHERE version = '` + idempotent + `'`)
		logs := &sceptest.LogBuffer{}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- runServer(ctx, testServeConfig(sf), io.Discard, slog.New(slog.NewTextHandler(logs, nil)))
		}()
		for !strings.Contains(logs.String(), "serving SCEP") {
			select {
			case err := <-done:
				t.Fatalf("serve on a database lacking %s: %v\n%s", idempotent, err, logs.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !applied() {
			t.Fatalf("serve did not apply %s", idempotent)
		}
	}

	const newer = "9999_from_a_newer_scepd"
	exec(`INSERT INTO schema_migrations (version, applied_at) VALUES ('` + newer + `', CURRENT_TIMESTAMP)`)
	want := "the database was migrated by a newer scepd (migration " + newer + "); run that version or newer"
	for _, args := range [][]string{{"cert", "list"}, {"store", "migrate"}} {
		if code, _, stderr := cli(args...); code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s on a database a newer scepd migrated: exit %d, %s; want %q", strings.Join(args, " "), code, stderr, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := runServer(ctx, testServeConfig(sf), io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("serve on a database a newer scepd migrated: %v; want %q", err, want)
	}
	// Going back knowingly, without restoring a backup.
	t.Setenv("SCEPD_ALLOW_NEWER_SCHEMA", "1")
	if code, _, stderr := cli("cert", "list"); code != 0 {
		t.Errorf("cert list with SCEPD_ALLOW_NEWER_SCHEMA=1: exit %d, %s", code, stderr)
	}
}

// testServeConfig is a serve configuration on sf, listening on a free
// port.
func testServeConfig(sf storeFlags) serveConfig {
	return serveConfig{
		file: &config.File{}, addr: "127.0.0.1:0", store: sf,
		queueWait: time.Second, maxQueue: 16, challengeRate: 10, challengeBurst: 100, shutdownGrace: 5 * time.Second,
		caKeyType: "ecdsa-p256", raKeyType: "rsa-2048", challengeMode: "static", challenge: "migrate-test-challenge",
	}
}
