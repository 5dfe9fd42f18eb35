// Package sqlstore is the one implementation of store.Store over
// database/sql. Each database (internal/store/sqlite, internal/store/postgres)
// supplies a Dialect: how it stores times and lists, how its driver errors
// map onto the store's, and the few statements it spells differently. The
// statements are written once with $N parameters, which PostgreSQL and
// SQLite both read as positional.
//
// Every method is timed and has its error mapped in one place (end), and
// every write transaction goes through one helper (tx).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scepd/scepd/internal/slot"
	"github.com/scepd/scepd/internal/store"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Name prefixes errors: "sqlite", "postgres".
	Name string
	// Time encodes a time as the database stores it.
	Time func(time.Time) any
	// ParseTime decodes a time the driver returns as text; nil when it
	// returns time.Time.
	ParseTime func(string) (time.Time, error)
	// Strings encodes a list of strings (SANs, token profiles);
	// ScanStrings is the scan destination that decodes one into dst.
	Strings     func([]string) any
	ScanStrings func(dst *[]string) sql.Scanner
	// Blobs encodes a list of byte strings (a CA's chain); ScanBlobs
	// decodes one.
	Blobs     func([][]byte) any
	ScanBlobs func(dst *[][]byte) sql.Scanner
	// Classify returns the store error a driver error means
	// (store.ErrDuplicateTransaction, store.ErrConflict,
	// store.ErrNonceReused, store.ErrUnavailable), or nil when it is none
	// of them.
	Classify func(error) error
	// List spells the certificate listing (see store.ListCertificatesSQL).
	List store.Dialect
	// ForUpdate is appended to a SELECT that reads a row a transaction
	// goes on to change (" FOR UPDATE"); "" where write transactions are
	// serialised anyway (SQLite).
	ForUpdate string
	// LockAudit is run in a transaction before it appends to the audit
	// chain, to serialise appenders across processes; "" when writers are
	// serialised anyway.
	LockAudit string
	// DayUTC is the expression of certificates.created_at's UTC day as
	// YYYY-MM-DD.
	DayUTC string
	// GroupCommit runs this process's write transactions one group at a
	// time, those that arrive together in one database transaction, led
	// by one of their callers (see group.go): SQLite, where writers are
	// serialised anyway (its busy handler polls with sleeps of up to
	// 100 ms and gives the tail latency to whoever lost the race), and a
	// commit costs an fsync.
	GroupCommit bool
	// PrepareHot prepares the enrollment path's statements at New (SQLite:
	// parsing a statement costs about as much as running these).
	PrepareHot bool
	// Batch, when set, sends stmts to the database in one round trip, on
	// conn, in the transaction open on it, and reads their answers in
	// order (see Store.batch); nil: each statement is a round trip of
	// its own (SQLite, in process).
	Batch func(ctx context.Context, conn *sql.Conn, stmts []Stmt) error
	// WriteProbe, when set, checks cheaply, without writing, that the
	// database would take a write now (see Store.Ready): SQLite takes its
	// write lock and lets go, PostgreSQL asks whether it is read-only. Its
	// error is a *store.NotReadyError when the database answers but would
	// not take the write.
	WriteProbe func(ctx context.Context, db *sql.DB) error
}

// Store is a store.Store on a *sql.DB.
type Store struct {
	db *sql.DB
	d  Dialect
	// stmts holds the prepared statements of the enrollment path (see
	// hotStatements), when the dialect asks for them. database/sql
	// prepares each again on a connection where it is first used, inside
	// a transaction on the transaction's own connection.
	stmts map[string]*sql.Stmt
	// group runs the write transactions (Dialect.GroupCommit); nil: each
	// caller runs its own.
	group *group
	// auditKey keys the audit chain (see SetAuditKey).
	auditKey []byte
	// appended is the newest audit event this store appended: a head
	// read back unchanged needs no check of its HMAC (see appendAudits).
	appended atomic.Pointer[appendedAudit]
	// chainKeyed: the audit chain is known to hold a keyed event, since a
	// head read back was one this store appended with its key (committed,
	// or earlier in the group transaction reading it: only the marker
	// audit.Start appends before serving could make the chain keyed and
	// then be rolled back), or the log was found to hold the
	// ActionChainKeyed marker. An unkeyed head is then refused without
	// asking the log, where deleting the marker would hide that the chain
	// was keyed.
	chainKeyed atomic.Bool
	obs        store.Observer
	// writes is what the latest writes came to (see noteWrite, Ready).
	writes  writeHealth
	qLatest string
	// migrated lists the migrations Open applied.
	migrated []string
}

var _ store.Store = (*Store)(nil)

// New returns the store on db, which must be migrated already. It owns db
// and closes it on Close.
func New(ctx context.Context, db *sql.DB, d Dialect) (*Store, error) {
	s := &Store{db: db, d: d, stmts: map[string]*sql.Stmt{}, qLatest: LatestRequestQuery(d)}
	if d.PrepareHot {
		// Before any transaction: preparing later, from inside one, would
		// need a second connection while the first holds the write lock.
		for _, q := range hotStatements {
			st, err := db.PrepareContext(ctx, q)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("%s: prepare: %w", d.Name, err)
			}
			s.stmts[q] = st
		}
	}
	if d.GroupCommit {
		s.group = newGroup(s)
	}
	return s, nil
}

// SetAuditKey sets the key of the audit chain's HMAC, before the store is
// used. Without one, events are chained unkeyed (tests of other packages).
func (s *Store) SetAuditKey(key []byte) { s.auditKey = key }

// SetObserver has every later call timed by o, before the store is used.
func (s *Store) SetObserver(o store.Observer) { s.obs = o }

// DB is the database, for tools that ask it directly (query plans).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database, after the group running has answered the
// transactions it took.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.stop()
	}
	for _, st := range s.stmts {
		st.Close()
	}
	return s.db.Close()
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) (err error) {
	defer s.end("Ping", time.Now(), &err)
	return s.db.PingContext(ctx)
}

// writeFailHold is how long after a write failed with ErrUnavailable
// (none having succeeded since) Ready still fails for it: a replica that
// load balancers took out of rotation gets no more writes to show the
// database took them again, so it is offered traffic again after this
// long, and a write that fails then takes it out again.
const writeFailHold = 30 * time.Second

// probeSkip: a write that succeeded this recently shows the database
// takes writes, and Ready asks it nothing (under load, writes succeed all
// the time and a probe would only compete with them).
const probeSkip = time.Second

// writeHealth is what the store's writes came to, in Unix nanoseconds (0:
// never), kept by noteWrite: two atomic stores per write, so that
// Ready costs the database nothing.
type writeHealth struct {
	// failingSince is when the first write failed with ErrUnavailable
	// after the latest that succeeded; lastFailed when the latest such
	// failure was; lastOK when the latest write succeeded.
	failingSince, lastFailed, lastOK atomic.Int64
}

// noteWrite records a write's outcome (a write transaction, or a write
// statement of its own): success, failure with ErrUnavailable, or
// neither (a conflict, a row not found, a caller that gave up or ran out
// of its own time: ctx ended), which changes nothing.
func (s *Store) noteWrite(ctx context.Context, err error) {
	now := time.Now().UnixNano()
	switch {
	case err != nil && ctx.Err() != nil:
		// The caller's deadline or cancellation, not the database's
		// answer (a database that stalls runs into statement timeouts
		// and busy timeouts of its own).
	case err == nil:
		s.writes.lastOK.Store(now)
		if s.writes.failingSince.Load() != 0 {
			s.writes.failingSince.Store(0)
		}
	default:
		mapped := s.mapErr("write", err)
		if errors.Is(mapped, store.ErrUnavailable) && !errors.Is(mapped, store.ErrContention) {
			// (Contention is one transaction losing to another: the
			// database takes writes.)
			s.writes.lastFailed.Store(now)
			s.writes.failingSince.CompareAndSwap(0, now)
		}
	}
}

// WritesFailing says since when the store's writes have been failing with
// ErrUnavailable, none having succeeded since, if one failed so within
// writeFailHold before now.
func (s *Store) WritesFailing(now time.Time) (since time.Time, failing bool) {
	from := s.writes.failingSince.Load()
	if from == 0 || now.Sub(time.Unix(0, s.writes.lastFailed.Load())) > writeFailHold {
		return time.Time{}, false
	}
	return time.Unix(0, from).UTC(), true
}

// Ready reports whether the store can take requests, for /readyz, writing
// nothing: not while its writes are failing with ErrUnavailable (see
// WritesFailing), nor when the database does not answer or the dialect's
// probe (Dialect.WriteProbe) says it would not take a write. A write that
// succeeded within probeSkip answers for the database. Its error is a
// *store.NotReadyError when it can say why in words anyone may read.
func (s *Store) Ready(ctx context.Context) (err error) {
	defer s.end("Ready", time.Now(), &err)
	now := time.Now()
	if since, failing := s.WritesFailing(now); failing {
		return &store.NotReadyError{Reason: "writes failing since " + since.Format(time.RFC3339), Err: store.ErrUnavailable}
	}
	if now.Sub(time.Unix(0, s.writes.lastOK.Load())) < probeSkip {
		return nil
	}
	if s.d.WriteProbe != nil {
		return s.d.WriteProbe(ctx, s.db)
	}
	return s.db.PingContext(ctx)
}

// answers are the store's own errors, and a caller giving up: passed on as
// they are. (A deadline that ran out is the dialect's to classify: the
// database did not answer in time.)
var answers = []error{store.ErrNotFound, store.ErrNonceReused, store.ErrDuplicateTransaction, store.ErrConflict, store.ErrLimit, store.ErrChallengeSpent,
	store.ErrUnavailable, store.ErrAuditHead, store.ErrSuperseded, context.Canceled}

// end finishes the method op started at start: it maps *err onto the
// store's errors and tells the observer.
func (s *Store) end(op string, start time.Time, err *error) {
	if *err != nil {
		*err = s.mapErr(op, *err)
	}
	if s.obs != nil {
		s.obs.ObserveStore(op, time.Since(start), *err)
	}
}

func (s *Store) mapErr(op string, err error) error {
	for _, known := range answers {
		if errors.Is(err, known) {
			return fmt.Errorf("%s: %s: %w", s.d.Name, op, err)
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %s: %w", s.d.Name, op, store.ErrNotFound)
	}
	if c := s.d.Classify(err); c != nil {
		return fmt.Errorf("%s: %s: %w: %w", s.d.Name, op, c, err)
	}
	return fmt.Errorf("%s: %s: %w", s.d.Name, op, err)
}

// tx runs fn in a write transaction and commits it: in a group commit
// when the dialect asks for one, else in a transaction of its own.
func (s *Store) tx(ctx context.Context, fn func(context.Context, *sql.Tx) error) (err error) {
	defer func() { s.noteWrite(ctx, err) }()
	if s.group != nil {
		// Waiting for the group's commit (another caller's group, then the
		// fsync) is no CPU work of this server's: the request gives its
		// processing slot (package slot) to another meanwhile, whose write
		// may then join the next group.
		defer slot.Yield(ctx)()
		return s.group.run(ctx, fn)
	}
	run := func() error {
		if s.d.Batch != nil {
			return s.batchTx(ctx, fn)
		}
		return runTx(ctx, s.db, fn)
	}
	err = run()
	if err != nil && ctx.Err() == nil && errors.Is(s.mapErr("write", err), store.ErrContention) {
		// Lost to a concurrent transaction (a deadlock, a serialization
		// failure) and rolled back: once more, before a client hears 503
		// (not every SCEP client retries one).
		err = run()
	}
	return err
}

// Expect announces a write that will follow shortly with the returned
// context: an enrollment being decided, whose outcome is written within
// milliseconds. With a group commit, a group about to begin waits a
// little for the writes announced before it (see group.await), so that
// enrollments decided together share a commit. The first write run with the
// context settles the announcement; done settles it when no write comes
// (call it in any case, as a context's cancel function). Without a group
// commit it does nothing.
func (s *Store) Expect(ctx context.Context) (_ context.Context, done func()) {
	if s.group == nil {
		return ctx, func() {}
	}
	return s.group.expect(ctx)
}

// runTx runs fn in a transaction begun on db (the pool or one connection
// of it) and commits it; fn's error rolls it back.
func runTx(ctx context.Context, db interface {
	BeginTx(context.Context, *sql.TxOptions) (*sql.Tx, error)
}, fn func(context.Context, *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Statements of the enrollment path, prepared when the dialect asks.
var hotStatements = []string{qGetTransaction, qGetCertificate, qInsertCert, qInsertTx, qAuditHead, qAuditInsert, qKeyCompromised}

// row runs q in tx (nil: on the database), prepared if it is hot.
func (s *Store) row(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := s.stmts[q]; st != nil {
		if tx != nil {
			st = tx.StmtContext(ctx, st)
		}
		return st.QueryRowContext(ctx, args...)
	}
	if tx != nil {
		return tx.QueryRowContext(ctx, q, args...)
	}
	return s.db.QueryRowContext(ctx, q, args...)
}

// exec runs q in tx (nil: on the database), prepared if it is hot, and
// returns the number of rows it changed.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	switch st := s.stmts[q]; {
	case st != nil && tx != nil:
		res, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	case st != nil:
		res, err = st.ExecContext(ctx, args...)
	case tx != nil:
		res, err = tx.ExecContext(ctx, q, args...)
	default:
		res, err = s.db.ExecContext(ctx, q, args...)
	}
	if tx == nil {
		s.noteWrite(ctx, err) // a write of its own, not a transaction's statement
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// list runs q and scans every row with scan.
func list[T any](ctx context.Context, s *Store, q string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ScanFunc is a sql.Scanner made of a function.
type ScanFunc func(src any) error

// Scan implements sql.Scanner.
func (f ScanFunc) Scan(src any) error { return f(src) }

// tm is the scan destination of a time column; NULL leaves dst zero.
func (s *Store) tm(dst *time.Time) sql.Scanner {
	return ScanFunc(func(src any) error {
		switch v := src.(type) {
		case nil:
			*dst = time.Time{}
		case time.Time:
			*dst = v.UTC()
		case string:
			return s.parseTime(dst, v)
		case []byte:
			return s.parseTime(dst, string(v))
		default:
			return fmt.Errorf("a time column holds %T", src)
		}
		return nil
	})
}

func (s *Store) parseTime(dst *time.Time, v string) error {
	if s.d.ParseTime == nil {
		return fmt.Errorf("a time column holds text %q", v)
	}
	t, err := s.d.ParseTime(v)
	*dst = t
	return err
}

// nullTime stores the zero time as NULL.
func (s *Store) nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.d.Time(t)
}

// nullBytes stores an empty value as NULL (which unique indexes ignore).
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// param numbers the parameters of a query built piece by piece.
type params struct{ args []any }

func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return fmt.Sprintf("$%d", len(p.args))
}

// Migrations are a database's schema changes.
type Migrations struct {
	// Files holds migrations/*.sql, applied in name order, each once.
	Files fs.FS
	// Table creates the schema_migrations table if it is missing.
	Table string
	// Lock and Unlock, when set, hold a lock on the connection across
	// the migrations (replicas starting together migrate once).
	Lock, Unlock string
}

// Schema is what opening a store does with a database that lacks
// migrations this scepd has.
type Schema int

const (
	// ApplyMigrations applies them (scepd serve, scepd store migrate).
	ApplyMigrations Schema = 0
	// RequireMigrated refuses the database (SchemaError): other commands
	// leave upgrading the schema to the operator. An empty database (no
	// migration recorded) gets the schema all the same: there is nothing
	// in it to upgrade, nor a deployment running on it.
	RequireMigrated Schema = 1
	// AllowNewer (added to either) opens a database that records
	// migrations this scepd does not know, a newer scepd's: going back to
	// this version without restoring a backup, when the operator knows
	// what those migrations changed.
	AllowNewer Schema = 2
)

// SchemaError is a database whose migrations are not this scepd's:
// Unknown were recorded by a newer scepd, or Missing are this scepd's
// and not applied (RequireMigrated).
type SchemaError struct {
	Name             string   // the dialect's
	At               string   // the newest migration recorded
	Newest           string   // the newest migration this scepd has
	Missing, Unknown []string // in name order
}

func (e *SchemaError) Error() string {
	if len(e.Unknown) > 0 {
		return fmt.Sprintf("%s: the database was migrated by a newer scepd (migration %s); run that version or newer "+
			"(going back to this one without restoring a backup: set SCEPD_ALLOW_NEWER_SCHEMA=1, if that version's upgrading notes say this one can run on its schema)",
			e.Name, strings.Join(e.Unknown, ", "))
	}
	lacks := ""
	if len(e.Missing) > 1 || e.Missing[0] != e.Newest {
		lacks = " (it lacks " + strings.Join(e.Missing, ", ") + ")"
	}
	return fmt.Sprintf("%s: the database is at migration %s, this scepd needs %s%s: start `scepd serve` or run `scepd store migrate` (back up first)",
		e.Name, e.At, e.Newest, lacks)
}

// Open brings db's schema to m's (see Migrate) and returns the store on
// it. It owns db, and closes it when it fails.
func Open(ctx context.Context, db *sql.DB, d Dialect, m Migrations, mode Schema) (*Store, error) {
	applied, err := Migrate(ctx, db, d, m, mode)
	if err != nil {
		db.Close()
		return nil, err
	}
	s, err := New(ctx, db, d)
	if err != nil {
		return nil, err
	}
	s.migrated = applied
	return s, nil
}

// Migrated lists the migrations opening the store applied, in order.
func (s *Store) Migrated() []string { return s.migrated }

// Migrate applies the migrations not applied yet, each in its own
// transaction with its record in schema_migrations, and returns their
// names. It refuses a database that records a migration m lacks (a newer
// scepd's: this one would not know what its schema means), and with
// RequireMigrated one that lacks some of m's unless it records none.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, m Migrations, mode Schema) ([]string, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", d.Name, err)
	}
	defer conn.Close()
	if m.Lock != "" {
		if _, err := conn.ExecContext(ctx, m.Lock); err != nil {
			return nil, fmt.Errorf("%s: migration lock: %w", d.Name, err)
		}
		defer conn.ExecContext(context.Background(), m.Unlock)
	}
	if _, err := conn.ExecContext(ctx, m.Table); err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", d.Name, err)
	}
	names, err := fs.Glob(m.Files, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	recorded, err := recordedMigrations(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", d.Name, err)
	}
	se := &SchemaError{Name: d.Name}
	known := map[string]bool{}
	for _, name := range names {
		se.Newest = strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		known[se.Newest] = true
		if !slices.Contains(recorded, se.Newest) {
			se.Missing = append(se.Missing, se.Newest)
		}
	}
	for _, v := range recorded {
		se.At = v
		if !known[v] {
			se.Unknown = append(se.Unknown, v)
		}
	}
	if len(se.Unknown) > 0 && mode&AllowNewer == 0 || len(se.Missing) > 0 && len(recorded) > 0 && mode&RequireMigrated != 0 {
		return nil, se
	}
	for _, version := range se.Missing {
		body, err := fs.ReadFile(m.Files, "migrations/"+version+".sql")
		if err != nil {
			return nil, err
		}
		err = func() error {
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, version, d.Time(time.Now())); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			if c := d.Classify(err); c != nil {
				err = fmt.Errorf("%w: %w", c, err)
			}
			return nil, fmt.Errorf("%s: migration %s: %w", d.Name, version, err)
		}
	}
	return se.Missing, nil
}

// recordedMigrations lists the migrations schema_migrations records, in
// name order.
func recordedMigrations(ctx context.Context, conn *sql.Conn) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Strings(out)
	return out, rows.Err()
}
