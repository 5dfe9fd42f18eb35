// Package postgres is the Store backend for several scepd replicas sharing
// one PostgreSQL database, through pgx (as a database/sql driver).
// Migrations are embedded and applied under an advisory lock, so replicas
// starting together migrate once. The store itself is sqlstore's; this
// package holds how PostgreSQL is opened and how it spells what sqlstore
// needs (Dialect).
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the store on PostgreSQL.
type Store = sqlstore.Store

// Advisory lock keys (arbitrary constants, "scepd" in ASCII plus a suffix).
const (
	lockMigrate int64 = 0x7363657064_01
	lockAudit   int64 = 0x7363657064_02
)

// Options tune the connection pool.
type Options struct {
	// MaxConns bounds the pool; 0 means max(4, CPUs).
	MaxConns int32
	// StatementTimeout bounds every statement; 0 means 10s.
	StatementTimeout time.Duration
	// Schema says what to do with a schema behind this scepd's; the zero
	// value migrates it.
	Schema sqlstore.Schema
	// ConnMaxLifetime replaces a connection this long after it was
	// opened, and ConnMaxIdleTime one idle this long: after a failover,
	// connections to the old primary (a standby now, or read-only) are
	// replaced by ones to wherever the URL's host leads. 0 means 5 minutes
	// and 1 minute.
	ConnMaxLifetime, ConnMaxIdleTime time.Duration
}

// Dialect is how PostgreSQL stores times (timestamptz) and lists (arrays),
// locks, and maps its errors. database/sql hands arrays over in their
// text form; a pgtype.Map decodes them (a Map is not safe for concurrent
// use, hence the pool).
func Dialect() sqlstore.Dialect {
	maps := &sync.Pool{New: func() any { return pgtype.NewMap() }}
	array := func(dst any) sql.Scanner {
		return sqlstore.ScanFunc(func(src any) error {
			m := maps.Get().(*pgtype.Map)
			defer maps.Put(m)
			return m.SQLScanner(dst).Scan(src)
		})
	}
	return sqlstore.Dialect{
		Name:        "postgres",
		Time:        func(t time.Time) any { return t },
		Strings:     func(v []string) any { return v },
		ScanStrings: func(dst *[]string) sql.Scanner { return array(dst) },
		Blobs:       func(v [][]byte) any { return v },
		ScanBlobs:   func(dst *[][]byte) sql.Scanner { return array(dst) },
		Classify:    classify,
		List: store.Dialect{
			Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
			Time:        func(t time.Time) any { return t },
			Contains:    func(expr, p string) string { return "strpos(lower(" + expr + "), lower(" + p + ")) > 0" },
			SANs:        "array_to_string(sans, ' ')",
			JSONText:    func(col, key string) string { return "(" + col + "::jsonb ->> '" + key + "')" },
		},
		ForUpdate: " FOR UPDATE",
		// Transaction-scoped: released at commit or rollback.
		LockAudit:  fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, lockAudit),
		DayUTC:     `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
		Batch:      batch,
		WriteProbe: writeProbe,
	}
}

// writeProbe asks whether the server would take a write (see
// sqlstore.Store.Ready): a standby (in recovery), or a server or database
// whose transactions are read-only (default_transaction_read_only, as a
// demoted primary may be), answers every write with SQLSTATE 25006.
func writeProbe(ctx context.Context, db *sql.DB) error {
	var recovery bool
	var readOnly string
	if err := db.QueryRowContext(ctx, `SELECT pg_is_in_recovery(), current_setting('transaction_read_only')`).Scan(&recovery, &readOnly); err != nil {
		return err
	}
	switch {
	case recovery:
		return &store.NotReadyError{Reason: "read-only: the server is a standby (in recovery)", Err: store.ErrUnavailable}
	case readOnly == "on":
		return &store.NotReadyError{Reason: "read-only: transactions are read-only (default_transaction_read_only)", Err: store.ErrUnavailable}
	}
	return nil
}

// batch sends stmts as one pgx batch (a pipeline: one round trip once
// their statements are prepared, Sync at the end) on the connection
// under conn, in its transaction. The server runs them in order, each
// Bind taking its snapshot after the statements before it finished, and
// skips those after one that fails.
func batch(ctx context.Context, conn *sql.Conn, stmts []sqlstore.Stmt) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres: batch on a %T connection", dc)
		}
		b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(stmts))}
		for _, st := range stmts {
			b.Queue(st.Query, st.Args...).Fn = func(br pgx.BatchResults) error {
				if st.Row != nil {
					return st.Row(br.QueryRow())
				}
				ct, err := br.Exec()
				return st.Exec(ct.RowsAffected(), err)
			}
		}
		return c.Conn().SendBatch(ctx, b).Close()
	})
}

// classify maps PostgreSQL's SQLSTATEs, and failures to reach it, onto the
// store's errors.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505" && pe.ConstraintName == "transactions_sender_nonce":
			return store.ErrNonceReused
		case pe.Code == "23505" && pe.ConstraintName == "transactions_pkey":
			return store.ErrDuplicateTransaction
		case pe.Code == "23505": // unique_violation
			return store.ErrConflict
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                                               // insufficient resources (disk full, too many connections)
			strings.HasPrefix(pe.Code, "58"),                                               // system error (I/O error)
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "57014", // shutdown, cannot connect now, statement timeout
			pe.Code == "25006", // read_only_sql_transaction: a standby, or a demoted primary
			pe.Code == "25P03", // idle_in_transaction_session_timeout
			pe.Code == "55P03": // lock_not_available (lock_timeout)
			return store.ErrUnavailable
		case pe.Code == "40001", pe.Code == "40P01": // serialization_failure, deadlock_detected
			// The store retries neither: the client does, after
			// Retry-After. One transaction lost, not the database.
			return store.ErrContention
		}
		return nil
	}
	// Everything that is not a server-side SQL error is the connection:
	// refused, reset, timed out, closed pool.
	return store.ErrUnavailable
}

// Open connects to url (postgres://...) and migrates the schema (see
// Options.Schema).
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return open(ctx, cfg, o)
}

// open is Open of a parsed configuration (tests add a tracer).
func open(ctx context.Context, cfg *pgx.ConnConfig, o Options) (*Store, error) {
	if o.MaxConns <= 0 {
		o.MaxConns = int32(max(4, runtime.NumCPU()))
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = 10 * time.Second
	}
	if _, set := cfg.RuntimeParams["statement_timeout"]; !set {
		cfg.RuntimeParams["statement_timeout"] = fmt.Sprint(o.StatementTimeout.Milliseconds())
	}
	if o.ConnMaxLifetime <= 0 {
		o.ConnMaxLifetime = 5 * time.Minute
	}
	if o.ConnMaxIdleTime <= 0 {
		o.ConnMaxIdleTime = time.Minute
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	// A connection that found its server read-only is closed (the pool
	// then opens another): after a failover, the next may reach the new
	// primary. Other errors are handled as pgconn does (FATAL closes).
	onPgError := cfg.OnPgError
	cfg.OnPgError = func(c *pgconn.PgConn, pe *pgconn.PgError) bool {
		if pe.Code == "25006" {
			return false
		}
		return onPgError == nil || onPgError(c, pe)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(int(o.MaxConns))
	db.SetMaxIdleConns(int(o.MaxConns))
	db.SetConnMaxLifetime(o.ConnMaxLifetime)
	db.SetConnMaxIdleTime(o.ConnMaxIdleTime)
	return sqlstore.Open(ctx, db, Dialect(), sqlstore.Migrations{Files: migrations,
		Table:  `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`,
		Lock:   fmt.Sprintf(`SELECT pg_advisory_lock(%d)`, lockMigrate),
		Unlock: fmt.Sprintf(`SELECT pg_advisory_unlock(%d)`, lockMigrate)}, o.Schema)
}
