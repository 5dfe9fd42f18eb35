package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/scepd/scepd/internal/audit"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/outbound"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres"
	"github.com/scepd/scepd/internal/store/sqlite"
	"github.com/scepd/scepd/internal/store/sqlstore"
)

// storeFlags are the flags every command that opens the database shares.
type storeFlags struct {
	dataDir    string
	database   string
	dbMaxConns int
	// readAudit: the command only reads the audit log (verify, export,
	// check), so it neither creates the audit key nor keys the log.
	readAudit bool
	// migrate: apply the migrations the database lacks (serve, store
	// migrate). Other commands refuse such a database, unless it is empty
	// (sqlstore.RequireMigrated): upgrading a schema replicas of the
	// previous version run on, or a backup, is the operator's decision.
	migrate bool
}

// openStore opens PostgreSQL when database is a postgres:// URL, else the
// SQLite file in the data directory, with the audit key (see openAudited).
func openStore(ctx context.Context, f storeFlags) (store.Store, error) {
	st, _, err := openAudited(ctx, f)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// openAudited opens the store and sets its audit key: the key sealed in
// the database when there is one, else the file SCEPD_AUDIT_KEY_FILE
// names (default audit.key in the data directory), encrypted with
// SCEPD_KEY_PASSPHRASE when one is set. A missing key is generated: in
// the database when keys go there (see keysInDB) and no key file exists,
// else as the file. Unless f.readAudit, it keys an unkeyed log
// (audit.Start) so that nothing appends to it unkeyed. With f.readAudit
// and no key, the key is nil.
func openAudited(ctx context.Context, f storeFlags) (*sqlstore.Store, *audit.Key, error) {
	st, err := openRaw(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	pass, err := secretFromEnv("SCEPD_KEY_PASSPHRASE")
	if err == nil {
		err = checkKeyStore(pass)
	}
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	key, created, err := auditKey(ctx, st, f, []byte(pass))
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	if key != nil {
		st.SetAuditKey(key.Chain())
	}
	if !f.readAudit {
		if _, err := audit.Start(ctx, st, key, time.Now()); err != nil {
			st.Close()
			if created && errors.Is(err, store.ErrAuditHead) {
				// A key made just now for a log keyed with another: it
				// would only be in the way of the right one.
				if key.Path == "" {
					st.DeleteKey(ctx, audit.SealedKeyID)
				} else {
					os.Remove(key.Path)
				}
			}
			return nil, nil, fmt.Errorf("audit log: %w", err)
		}
	}
	return st, key, nil
}

// auditKey finds (or, unless f.readAudit, creates) the audit key; see
// openAudited.
func auditKey(ctx context.Context, st store.Store, f storeFlags, pass []byte) (*audit.Key, bool, error) {
	keyFile := os.Getenv("SCEPD_AUDIT_KEY_FILE")
	if keyFile == "" {
		switch key, err := audit.LoadSealedKey(ctx, st, pass); {
		case err == nil:
			return key, false, nil
		case !errors.Is(err, store.ErrNotFound):
			return nil, false, err
		}
	}
	if f.readAudit {
		key, err := audit.LoadKey(f.dataDir, keyFile, pass)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return key, false, err
	}
	if keyFile == "" && keysInDB(f, pass) {
		if _, err := os.Stat(filepath.Join(f.dataDir, audit.DefaultKeyFile)); errors.Is(err, fs.ErrNotExist) {
			return audit.LoadOrCreateSealedKey(ctx, st, pass)
		}
	}
	return audit.LoadOrCreateKey(f.dataDir, keyFile, pass)
}

// openRaw opens PostgreSQL when database is a postgres:// URL, else the
// SQLite file in the data directory, without an audit key. It migrates
// the schema only with f.migrate (see storeFlags).
func openRaw(ctx context.Context, f storeFlags) (*sqlstore.Store, error) {
	schema := sqlstore.RequireMigrated
	if f.migrate {
		schema = sqlstore.ApplyMigrations
	}
	if os.Getenv("SCEPD_ALLOW_NEWER_SCHEMA") == "1" { // back to an older version, knowingly
		schema |= sqlstore.AllowNewer
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := checkDataDir(f.dataDir); err != nil {
		return nil, err
	}
	switch {
	case isPostgres(f.database):
		return postgres.Open(ctx, f.database, postgres.Options{MaxConns: int32(f.dbMaxConns), Schema: schema})
	case f.database == "", f.database == "sqlite":
		return sqlite.OpenSchema(ctx, filepath.Join(f.dataDir, sqlite.FileName), schema)
	}
	return nil, fmt.Errorf("--database %q: want a postgres:// URL, or nothing for the embedded SQLite", outbound.Redact(f.database))
}

func isPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// keysInDB tells whether keys scepd creates go to the database, sealed
// under the passphrase: SCEPD_KEY_STORE=database or files decides; unset,
// with PostgreSQL (replicas then share keys through it alone) when a
// passphrase is set, and never with SQLite.
func keysInDB(f storeFlags, pass []byte) bool {
	switch os.Getenv("SCEPD_KEY_STORE") {
	case "files":
		return false
	case "database":
		return len(pass) > 0 // checkKeyStore refused it without one
	}
	return isPostgres(f.database) && len(pass) > 0
}

// checkKeyStore refuses a SCEPD_KEY_STORE keysInDB cannot honour.
func checkKeyStore(pass string) error {
	switch v := os.Getenv("SCEPD_KEY_STORE"); v {
	case "", "files":
	case "database":
		if pass == "" {
			return errors.New("SCEPD_KEY_STORE=database seals keys under a passphrase: set SCEPD_KEY_PASSPHRASE or SCEPD_KEY_PASSPHRASE_FILE")
		}
	default:
		return fmt.Errorf("SCEPD_KEY_STORE %q: want database or files (unset: the database with PostgreSQL and a key passphrase, else files)", v)
	}
	return nil
}

// withStoreKeys lets ks load keys sealed in st and, when keysInDB, seal
// new ones there.
func withStoreKeys(ks keys.Source, st store.Store, f storeFlags) keys.Source {
	ks.DB = st
	ks.InDB = keysInDB(f, ks.Passphrase)
	return ks
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
	// The owner can change the mode back and replace keys: it must be the
	// user scepd runs as (a root scepd on a directory another user owns
	// would trust whatever that user puts there).
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("data directory %s is owned by uid %d, not by the user scepd runs as (uid %d); it holds the CA keys and the database: run `chown -R %d %s` or start scepd as its owner",
			dir, st.Uid, os.Geteuid(), os.Geteuid(), dir)
	}
	return nil
}

// configExposed warns of a config file that holds the database password in
// clear (in the URL's user or its password parameter) when users other
// than scepd's user and group may read it; "" when it does not. Not
// refused: a config file an admin group reads may be on purpose.
func configExposed(path, database string) string {
	u, err := url.Parse(database)
	if err != nil || !isPostgres(database) {
		return ""
	}
	if _, ok := u.User.Password(); !ok && u.Query().Get("password") == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if perm&0o004 == 0 && (perm&0o040 == 0 || ok && int(st.Gid) == os.Getegid()) {
		return ""
	}
	return fmt.Sprintf("the config file holds the database password and other users may read it (mode %#o): chmod 600 it (640 with the group scepd runs as), or move the URL to SCEPD_DATABASE_FILE (or the password to PGPASSFILE)", perm)
}
