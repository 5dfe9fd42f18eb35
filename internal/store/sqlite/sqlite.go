// Package sqlite is the embedded Store backend: a pure-Go SQLite driver
// (no cgo), WAL journaling, and migrations embedded in the binary. The
// store itself is sqlstore's; this package holds how SQLite is opened and
// how it spells what sqlstore needs (Dialect).
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlstore"
)

// FileName is the database's file in scepd's data directory.
const FileName = "scepd.db"

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the store on SQLite.
type Store = sqlstore.Store

// timeLayout is fixed-width so that text order is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Dialect is how SQLite stores times (fixed-width UTC text) and lists
// (JSON text), and maps its errors.
func Dialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		Name:      "sqlite",
		Time:      func(t time.Time) any { return t.UTC().Format(timeLayout) },
		ParseTime: func(s string) (time.Time, error) { return time.Parse(timeLayout, s) },
		Strings: func(v []string) any {
			b, _ := json.Marshal(v)
			return string(b)
		},
		ScanStrings: func(dst *[]string) sql.Scanner { return jsonColumn(dst) },
		Blobs: func(v [][]byte) any {
			enc := make([]string, len(v))
			for i, b := range v {
				enc[i] = base64.StdEncoding.EncodeToString(b)
			}
			b, _ := json.Marshal(enc)
			return string(b)
		},
		ScanBlobs: func(dst *[][]byte) sql.Scanner {
			var enc []string
			inner := jsonColumn(&enc)
			return sqlstore.ScanFunc(func(src any) error {
				if err := inner.Scan(src); err != nil {
					return err
				}
				*dst = nil
				for _, e := range enc {
					der, err := base64.StdEncoding.DecodeString(e)
					if err != nil {
						return fmt.Errorf("a stored chain: %w", err)
					}
					*dst = append(*dst, der)
				}
				return nil
			})
		},
		Classify: classify,
		List: store.Dialect{
			Placeholder: func(n int) string { return fmt.Sprintf("$%d", n) },
			Time:        func(t time.Time) any { return t.UTC().Format(timeLayout) },
			Contains:    func(expr, p string) string { return "instr(lower(" + expr + "), lower(" + p + ")) > 0" },
			SANs:        "sans",
			JSONText:    func(col, key string) string { return "json_extract(" + col + ", '$." + key + "')" },
		},
		DayUTC:      "substr(created_at, 1, 10)",
		GroupCommit: true,
		PrepareHot:  true,
		WriteProbe:  writeProbe,
	}
}

// busyTimeout is how long a connection waits for a lock another holds
// (busy_timeout, milliseconds); probeBusyTimeout is the write probe's.
const (
	busyTimeout      = 10000
	probeBusyTimeout = 500
)

// writeProbe takes the write lock (BEGIN IMMEDIATE: _txlock) and rolls
// back, writing nothing, waiting at most probeBusyTimeout for it: another
// process holding it longer (a backup, the sqlite3 shell in a
// transaction) makes every write wait, then fail. Its own connection's
// busy timeout is set back after, or the connection is dropped.
func writeProbe(ctx context.Context, db *sql.DB) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", probeBusyTimeout)); err != nil {
		return err
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.Background(), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout)); rerr != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn }) // not back in the pool with the probe's timeout
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		var se *sqlite.Error
		switch {
		case errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY:
			return &store.NotReadyError{Reason: "locked: another connection holds the write lock", Err: err}
		case classify(err) == store.ErrUnavailable || errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY:
			return &store.NotReadyError{Reason: "does not take writes", Err: err}
		}
		return err
	}
	return tx.Rollback()
}

// jsonColumn decodes a JSON text column into dst.
func jsonColumn[T any](dst *T) sql.Scanner {
	return sqlstore.ScanFunc(func(src any) error {
		switch v := src.(type) {
		case string:
			return json.Unmarshal([]byte(v), dst)
		case []byte:
			return json.Unmarshal(v, dst)
		}
		return fmt.Errorf("a JSON column holds %T", src)
	})
}

// classify maps SQLite's result codes onto the store's errors.
func classify(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		switch msg := se.Error(); {
		case strings.Contains(msg, "transactions.sender_nonce"):
			return store.ErrNonceReused
		case strings.Contains(msg, "transactions.profile_id, transactions.transaction_id"):
			return store.ErrDuplicateTransaction
		}
		return store.ErrConflict
	}
	switch se.Code() & 0xff { // primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_READONLY: // the file or its file system became read-only
		return store.ErrUnavailable
	}
	return nil
}

// Open opens (creating if needed) the database at path and migrates it.
// The database file is created 0600 (SQLite gives its -wal and -shm files
// the database file's mode), and an existing one open to others is
// narrowed to 0600, with its -wal and -shm files.
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenSchema(ctx, path, sqlstore.ApplyMigrations)
}

// OpenSchema is Open, doing with a schema behind this scepd's what schema
// says.
func OpenSchema(ctx context.Context, path string, schema sqlstore.Schema) (*Store, error) {
	if err := privateFiles(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	pageSize, err := createWithPageSize(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	// temp_store(MEMORY): the group commit gives each caller a savepoint,
	// whose statement journal (the pages it changed, for a rollback to
	// it) SQLite otherwise writes to a temporary file once it passes 64
	// KiB: 65 KB of writes per enrollment for a journal no crash needs.
	// The rare sorts of many rows (a CRL's revoked serials) stay in
	// memory too. wal_autocheckpoint: the WAL is copied back into the
	// database once it holds walBytes, whatever the page size.
	// cache_size(-512): 512 KiB of page cache per connection instead of
	// SQLite's 2 MiB, for up to 8 connections. In WAL mode a connection
	// drops its cache whenever another has committed, which under
	// enrollment load is all the time, so the larger cache mostly held
	// memory (256 clients: 1-2 MiB less resident, no CPU difference
	// measured).
	q := url.Values{}
	for _, p := range []string{fmt.Sprintf("busy_timeout(%d)", busyTimeout), "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)", "temp_store(MEMORY)", "cache_size(-512)"} {
		q.Add("_pragma", p)
	}
	if pageSize > 0 {
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walBytes/pageSize))
	}
	// Write transactions take the lock at BEGIN, so two writers never
	// deadlock upgrading read locks.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	return sqlstore.Open(ctx, db, Dialect(), sqlstore.Migrations{Files: migrations,
		Table: `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`}, schema)
}

// newPageSize is the page size of a database scepd creates. A commit
// writes every page it changed to the WAL, whole, and a checkpoint writes
// them again: an enrollment changes a page in each of three tables and seven
// indexes, most of them by a few dozen bytes, so the page size, not
// the data, sets what an enrollment writes (scripts/bench-io, four
// clients: 45-56 KB with SQLite's 4096 bytes, 22-23 KB with 1024).
// Reads pay a little: the b-trees are a level deeper and a certificate
// row spills into an overflow page (a CRL reads a covering index instead,
// migration 0016). A database created with another page size keeps it
// (changing it takes a VACUUM, docs/operations.md).
const newPageSize = 1024

// walBytes is the WAL size at which a connection checkpoints (SQLite's
// default is 1000 pages: 4 MB with its default page size).
const walBytes = 4 << 20

// createWithPageSize gives a database that has no page yet (privateFiles
// has just created the empty file) newPageSize, which SQLite fixes when
// it writes the first page: here, switching to WAL. It returns the
// database's page size, new or not; 0 when it cannot tell (an in-memory
// database or a URI, or a file SQLite will refuse when it opens it).
func createWithPageSize(ctx context.Context, path string) (int, error) {
	if strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return 0, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if fi.Size() > 0 {
		return pageSizeOf(path), nil
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, p := range []string{fmt.Sprintf("PRAGMA page_size=%d", newPageSize), "PRAGMA journal_mode=WAL"} {
		if _, err := db.ExecContext(ctx, p); err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&n); err != nil {
		return 0, fmt.Errorf("page size: %w", err)
	}
	return n, nil
}

// pageSizeOf reads the page size from a database file's header (two
// octets at offset 16, big-endian, 1 standing for 65536); 0 when the
// file is no SQLite database.
func pageSizeOf(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var h [18]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:16]) != "SQLite format 3\x00" {
		return 0
	}
	switch n := int(binary.BigEndian.Uint16(h[16:])); {
	case n == 1:
		return 65536
	case n >= 512 && n <= 32768 && n&(n-1) == 0:
		return n
	}
	return 0
}

// privateFiles creates the database file owner-only before SQLite opens it
// and narrows existing database files to owner-only.
func privateFiles(path string) error {
	if strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if err != nil {
			continue // the -wal, -shm and -journal files come and go
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}
