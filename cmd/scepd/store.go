package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres"
	"github.com/scepd/scepd/internal/store/sqlite"
)

// storeFlags are the flags every command that opens the database shares.
type storeFlags struct {
	dataDir    string
	database   string
	dbMaxConns int
}

// openStore opens PostgreSQL when database is a postgres:// URL, else the
// SQLite file in the data directory.
func openStore(ctx context.Context, f storeFlags) (store.Store, error) {
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := checkDataDir(f.dataDir); err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(f.database, "postgres://"), strings.HasPrefix(f.database, "postgresql://"):
		return postgres.Open(ctx, f.database, postgres.Options{MaxConns: int32(f.dbMaxConns)})
	case f.database == "", f.database == "sqlite":
		return sqlite.Open(ctx, filepath.Join(f.dataDir, "scepd.db"))
	}
	return nil, fmt.Errorf("--database %q: want a postgres:// URL, or nothing for the embedded SQLite", redactURL(f.database))
}

// checkDataDir refuses a data directory other users may read, write or
// enter: it holds the CA keys and the database. It is refused rather than
// changed: who else was meant to have access (a backup group?) is the
// operator's call, and the message says what to run.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("data directory %s is open to other users (mode %#o); it holds the CA keys and the database: run `chmod 700 %s` (and check the files in it)",
			dir, perm, dir)
	}
	return nil
}

// redactURL hides a password in a database URL before it is printed.
func redactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at > 0 {
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			return u[:scheme+3] + "***" + u[at:]
		}
	}
	return u
}
