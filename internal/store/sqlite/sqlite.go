// Package sqlite is the embedded Store backend: a pure-Go SQLite driver
// (no cgo), WAL journaling, and migrations embedded in the binary.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scepd/scepd/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// timeLayout is fixed-width so that text order is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Store is a store.Store on one SQLite file.
type Store struct {
	db *sql.DB
	// stmts holds the statements of the enrollment path, prepared at Open
	// (SQLite parsing a statement costs about as much as running these);
	// database/sql prepares each again on a connection where it is first
	// used, inside a transaction on the transaction's own connection.
	stmts map[string]*sql.Stmt
	// writer admits one write transaction at a time (see begin).
	writer chan struct{}
	// auditKey keys the audit chain (see SetAuditKey).
	auditKey []byte
}

// SetAuditKey sets the key of the audit chain's HMAC, before the store is
// used. Without one, events are chained unkeyed (tests of other packages).
func (s *Store) SetAuditKey(key []byte) { s.auditKey = key }

// Statements of the enrollment path (see hotStatements).
const (
	qGetTransaction = `SELECT ` + txColumns + ` FROM transactions WHERE profile_id = ? AND transaction_id = ?`
	qGetCertificate = `SELECT ` + certColumns + ` FROM certificates WHERE serial = ?`
	qInsertCert     = `INSERT INTO certificates (` + certColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?)`
	qInsertTx       = `INSERT INTO transactions (` + txColumns + `, sender_nonce) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, '', ?, ?, ?, ?, ?, ?)`
	qAuditHead      = `SELECT ` + auditColumns + ` FROM audit_events ORDER BY seq DESC LIMIT 1`
	qAuditInsert    = `INSERT INTO audit_events (seq, at, actor, action, object, outcome, details, prev_hash, hash, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

var hotStatements = []string{qGetTransaction, qGetCertificate, qInsertCert, qInsertTx, qAuditHead, qAuditInsert}

// prepare prepares the enrollment path's statements. It runs before any
// transaction: preparing later, from inside one, would need a second
// connection while the first holds the write lock.
func (s *Store) prepare(ctx context.Context) error {
	s.stmts = map[string]*sql.Stmt{}
	for _, q := range hotStatements {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		s.stmts[q] = st
	}
	return nil
}

// prepared returns one of hotStatements, prepared at Open.
func (s *Store) prepared(q string) *sql.Stmt {
	st := s.stmts[q]
	if st == nil {
		panic("sqlite: not one of the prepared statements: " + q)
	}
	return st
}

// queryRow runs a prepared statement that returns one row.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.prepared(q).QueryRowContext(ctx, args...)
}

// txQueryRow runs a prepared statement in tx.
func (s *Store) txQueryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	return tx.StmtContext(ctx, s.prepared(q)).QueryRowContext(ctx, args...)
}

// txExec runs a prepared statement in tx.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	return tx.StmtContext(ctx, s.prepared(q)).ExecContext(ctx, args...)
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and migrates it.
// The database file is created 0600 (SQLite gives its -wal and -shm files
// the database file's mode), and an existing one open to others is
// narrowed to 0600, with its -wal and -shm files.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := privateFiles(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)"} {
		q.Add("_pragma", p)
	}
	// Write transactions take the lock at BEGIN, so two writers never
	// deadlock upgrading read locks.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	s := &Store{db: db, writer: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
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

func (s *Store) migrate(ctx context.Context) error {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer done()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, fmtTime(time.Now())); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", version, err)
		}
	}
	return tx.Commit()
}

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }

// mapErr maps driver errors onto the store's sentinel errors.
func mapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			if strings.Contains(se.Error(), "transactions.sender_nonce") {
				return fmt.Errorf("%w: %v", store.ErrNonceReused, err)
			}
			return fmt.Errorf("%w: %v", store.ErrConflict, err)
		}
		switch se.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
	}
	return err
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close closes the database.
func (s *Store) Close() error {
	for _, st := range s.stmts {
		st.Close()
	}
	return s.db.Close()
}

// CreateCA stores a CA.
func (s *Store) CreateCA(ctx context.Context, ca store.CA) error {
	chain := make([]string, len(ca.ChainDER))
	for i, c := range ca.ChainDER {
		chain[i] = base64.StdEncoding.EncodeToString(c)
	}
	cj, _ := json.Marshal(chain)
	_, err := s.db.ExecContext(ctx, `INSERT INTO cas (id, cert_der, chain_der, key_ref, created_at) VALUES (?, ?, ?, ?, ?)`,
		ca.ID, ca.CertDER, string(cj), ca.KeyRef, fmtTime(ca.Created))
	if err != nil {
		return fmt.Errorf("sqlite: create CA %q: %w", ca.ID, mapErr(err))
	}
	return nil
}

// GetCA returns a CA by id.
func (s *Store) GetCA(ctx context.Context, id string) (store.CA, error) {
	var ca store.CA
	var chain, created string
	err := s.db.QueryRowContext(ctx, `SELECT id, cert_der, chain_der, key_ref, created_at FROM cas WHERE id = ?`, id).
		Scan(&ca.ID, &ca.CertDER, &chain, &ca.KeyRef, &created)
	if err != nil {
		return ca, fmt.Errorf("sqlite: get CA %q: %w", id, mapErr(err))
	}
	var enc []string
	if err := json.Unmarshal([]byte(chain), &enc); err != nil {
		return ca, fmt.Errorf("sqlite: CA %q chain: %w", id, err)
	}
	for _, e := range enc {
		der, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			return ca, fmt.Errorf("sqlite: CA %q chain: %w", id, err)
		}
		ca.ChainDER = append(ca.ChainDER, der)
	}
	ca.Created, err = parseTime(created)
	return ca, err
}

const profileColumns = `id, ca_id, ra_cert_der, ra_key_ref, challenge_mode, challenge_hash, challenge_config, challenge_prev_hash, challenge_prev_until,
	challenge_ttl_seconds, challenge_max_pending,
	allow_des, include_ca_cert, ca_mode, full_chain, policy, lifecycle, next_ra_cert_der, next_ra_key_ref, source, created_at, updated_at`

// CreateProfile stores a profile.
func (s *Store) CreateProfile(ctx context.Context, p store.Profile) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO profiles (`+profileColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.CAID, p.RACertDER, p.RAKeyRef, p.ChallengeMode, p.ChallengeHash, policyText(p.ChallengeConfig), p.ChallengePrevHash, nullTime(p.ChallengePrevUntil),
		int64(p.ChallengeTTL/time.Second), p.ChallengeMaxPending,
		p.AllowDES, p.IncludeCACert, p.CAMode, p.FullChain, policyText(p.Policy), policyText(p.Lifecycle), p.NextRACertDER, p.NextRAKeyRef,
		p.Source, fmtTime(p.Created), fmtTime(updated(p)))
	if err != nil {
		return fmt.Errorf("sqlite: create profile %q: %w", p.ID, mapErr(err))
	}
	return nil
}

// UpdateProfile replaces a profile's mutable fields.
func (s *Store) UpdateProfile(ctx context.Context, p store.Profile) error {
	res, err := s.db.ExecContext(ctx, `UPDATE profiles SET ca_id = ?, ra_cert_der = ?, ra_key_ref = ?, challenge_mode = ?, challenge_hash = ?,
		challenge_config = ?, challenge_prev_hash = ?, challenge_prev_until = ?, challenge_ttl_seconds = ?, challenge_max_pending = ?, allow_des = ?, include_ca_cert = ?, ca_mode = ?, full_chain = ?, policy = ?, lifecycle = ?,
		next_ra_cert_der = ?, next_ra_key_ref = ?, source = ?, updated_at = ? WHERE id = ?`,
		p.CAID, p.RACertDER, p.RAKeyRef, p.ChallengeMode, p.ChallengeHash, policyText(p.ChallengeConfig), p.ChallengePrevHash, nullTime(p.ChallengePrevUntil),
		int64(p.ChallengeTTL/time.Second), p.ChallengeMaxPending, p.AllowDES, p.IncludeCACert,
		p.CAMode, p.FullChain, policyText(p.Policy), policyText(p.Lifecycle), p.NextRACertDER, p.NextRAKeyRef, p.Source, fmtTime(updated(p)), p.ID)
	if err != nil {
		return fmt.Errorf("sqlite: update profile %q: %w", p.ID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("sqlite: update profile %q: %w", p.ID, store.ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func policyText(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

func updated(p store.Profile) time.Time {
	if p.Updated.IsZero() {
		return p.Created
	}
	return p.Updated
}

// ListCAs returns every CA ordered by id.
func (s *Store) ListCAs(ctx context.Context) ([]store.CA, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM cas ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list CAs: %w", mapErr(err))
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: list CAs: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	out := make([]store.CA, 0, len(ids))
	for _, id := range ids {
		ca, err := s.GetCA(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, ca)
	}
	return out, nil
}

// CreateToken stores an API token.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	profiles, _ := json.Marshal(nonNil(t.Profiles))
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens (id, hash, name, role, profiles, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.Hash, t.Name, t.Role, string(profiles), fmtTime(t.Created))
	if err != nil {
		return fmt.Errorf("sqlite: create token: %w", mapErr(err))
	}
	return nil
}

const tokenColumns = `id, hash, name, role, profiles, created_at, revoked_at`

func scanToken(r scanner) (store.Token, error) {
	var t store.Token
	var profiles, created string
	var revoked sql.NullString
	if err := r.Scan(&t.ID, &t.Hash, &t.Name, &t.Role, &profiles, &created, &revoked); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(profiles), &t.Profiles); err != nil {
		return t, err
	}
	if len(t.Profiles) == 0 {
		t.Profiles = nil
	}
	var err error
	if t.Created, err = parseTime(created); err != nil {
		return t, err
	}
	if revoked.Valid {
		t.Revoked, err = parseTime(revoked.String)
	}
	return t, err
}

// GetToken returns a token by id.
func (s *Store) GetToken(ctx context.Context, id string) (store.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
	if err != nil {
		return t, fmt.Errorf("sqlite: get token: %w", mapErr(err))
	}
	return t, nil
}

// ListTokens returns every token, newest first.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken marks a token revoked.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, fmtTime(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke token: %w", mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: revoke token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func scanProfile(r scanner) (store.Profile, error) {
	var p store.Profile
	var created, updated, policy, lifecycle, chcfg string
	var prevUntil sql.NullString
	var ttl int64
	if err := r.Scan(&p.ID, &p.CAID, &p.RACertDER, &p.RAKeyRef, &p.ChallengeMode, &p.ChallengeHash, &chcfg, &p.ChallengePrevHash, &prevUntil,
		&ttl, &p.ChallengeMaxPending,
		&p.AllowDES, &p.IncludeCACert, &p.CAMode, &p.FullChain, &policy, &lifecycle, &p.NextRACertDER, &p.NextRAKeyRef, &p.Source, &created, &updated); err != nil {
		return p, err
	}
	p.ChallengeTTL = time.Duration(ttl) * time.Second
	p.Policy, p.Lifecycle, p.ChallengeConfig = []byte(policy), []byte(lifecycle), []byte(chcfg)
	var err error
	if prevUntil.Valid {
		if p.ChallengePrevUntil, err = parseTime(prevUntil.String); err != nil {
			return p, err
		}
	}
	if p.Created, err = parseTime(created); err != nil {
		return p, err
	}
	p.Updated, err = parseTime(updated)
	return p, err
}

// GetProfile returns a profile by id.
func (s *Store) GetProfile(ctx context.Context, id string) (store.Profile, error) {
	p, err := scanProfile(s.db.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM profiles WHERE id = ?`, id))
	if err != nil {
		return p, fmt.Errorf("sqlite: get profile %q: %w", id, mapErr(err))
	}
	return p, nil
}

// ListProfiles returns every profile ordered by id.
func (s *Store) ListProfiles(ctx context.Context) ([]store.Profile, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+profileColumns+` FROM profiles ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list profiles: %w", err)
	}
	defer rows.Close()
	var out []store.Profile
	for rows.Next() {
		p, err := scanProfile(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list profiles: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

const txColumns = `profile_id, transaction_id, status, public_key_sha256, csr_der, cert_serial, challenge_hash, expires_at, decided_by, reason, created_at, updated_at, client_transaction_id, signer_key_sha256, renews_serial`

func scanTx(r scanner) (store.Transaction, error) {
	var t store.Transaction
	var serial, expires, clientID sql.NullString
	var created, updated string
	if err := r.Scan(&t.ProfileID, &t.TransactionID, &t.Status, &t.PublicKeySHA256, &t.CSRDER, &serial, &t.ChallengeHash, &expires,
		&t.DecidedBy, &t.Reason, &created, &updated, &clientID, &t.SignerKeySHA256, &t.RenewsSerial); err != nil {
		return t, err
	}
	t.CertSerial = serial.String
	t.ClientTransactionID = clientID.String
	if !clientID.Valid {
		t.ClientTransactionID = t.TransactionID
	}
	var err error
	if expires.Valid {
		if t.Expires, err = parseTime(expires.String); err != nil {
			return t, err
		}
	}
	if t.Created, err = parseTime(created); err != nil {
		return t, err
	}
	t.Updated, err = parseTime(updated)
	return t, err
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return fmtTime(t)
}

// GetTransaction returns one enrollment transaction.
func (s *Store) GetTransaction(ctx context.Context, profileID, txID string) (store.Transaction, error) {
	t, err := scanTx(s.queryRow(ctx, qGetTransaction, profileID, txID))
	if err != nil {
		return t, fmt.Errorf("sqlite: get transaction %q/%q: %w", profileID, txID, mapErr(err))
	}
	return t, nil
}

// ListTransactions returns transactions, oldest first (f.Newest: newest first).
func (s *Store) ListTransactions(ctx context.Context, f store.TransactionFilter) ([]store.Transaction, error) {
	q, args := store.ListTransactionsSQL(txColumns, f, dialect())
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list transactions: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Transaction
	for rows.Next() {
		t, err := scanTx(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list transactions: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

var qLatestRequest = store.LatestRequestSQL(txColumns, dialect())

// LatestRequest returns the newest request of a client transactionID and key.
func (s *Store) LatestRequest(ctx context.Context, profileID, clientID string, keySHA256 []byte) (store.Transaction, error) {
	t, err := scanTx(s.db.QueryRowContext(ctx, qLatestRequest, profileID, clientID, keySHA256))
	if err != nil {
		return t, fmt.Errorf("sqlite: latest request %q/%q: %w", profileID, clientID, mapErr(err))
	}
	return t, nil
}

// RecordPending stores a pending request and reserves its challenge.
func (s *Store) RecordPending(ctx context.Context, t store.Transaction, audit store.AuditEvent) error {
	return s.tx(ctx, "record pending", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO transactions (`+txColumns+`, sender_nonce) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, '', '', ?, ?, ?, ?, ?, ?)`,
			t.ProfileID, t.TransactionID, store.StatusPending, t.PublicKeySHA256, t.CSRDER, t.ChallengeHash, nullTime(t.Expires), fmtTime(t.Created), fmtTime(t.Updated),
			t.ClientID(), t.SignerKeySHA256, t.RenewsSerial, nullBytes(t.SenderNonce)); err != nil {
			return mapErr(err)
		}
		if t.ChallengeHash != nil {
			res, err := tx.ExecContext(ctx, `UPDATE challenges SET reserved_by = ? WHERE hash = ? AND profile_id = ? AND used_at IS NULL
				AND reserved_by IS NULL AND expires_at > ?`, t.TransactionID, t.ChallengeHash, t.ProfileID, fmtTime(t.Created))
			if err != nil {
				return mapErr(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return store.ErrChallengeSpent
			}
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// RejectPending rejects a pending request and frees its challenge.
func (s *Store) RejectPending(ctx context.Context, profileID, txID, decidedBy, reason string, at time.Time, audit store.AuditEvent) error {
	return s.tx(ctx, "reject pending", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE transactions SET status = ?, decided_by = ?, reason = ?, updated_at = ?
			WHERE profile_id = ? AND transaction_id = ? AND status = ?`, store.StatusRejected, decidedBy, reason, fmtTime(at), profileID, txID, store.StatusPending)
		if err != nil {
			return mapErr(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return store.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `UPDATE challenges SET reserved_by = NULL WHERE profile_id = ? AND reserved_by = ? AND used_at IS NULL`, profileID, txID); err != nil {
			return mapErr(err)
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// ExpirePending rejects pending requests past their expiry.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, "expire pending", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE challenges SET reserved_by = NULL WHERE used_at IS NULL AND reserved_by IS NOT NULL AND EXISTS
			(SELECT 1 FROM transactions t WHERE t.profile_id = challenges.profile_id AND t.transaction_id = challenges.reserved_by
			 AND t.status = 'pending' AND t.expires_at < ?)`, fmtTime(now)); err != nil {
			return mapErr(err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE transactions SET status = ?, reason = 'expired before a decision', updated_at = ?
			WHERE status = ? AND expires_at < ?`, store.StatusRejected, fmtTime(now), store.StatusPending, fmtTime(now))
		if err != nil {
			return mapErr(err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// begin starts a write transaction. Writers of this process queue here,
// in order, rather than in SQLite's busy handler, which polls with sleeps
// of up to 100 ms and gave the tail latency to whoever lost the race. done
// rolls back what was not committed and lets the next writer in.
func (s *Store) begin(ctx context.Context) (*sql.Tx, func(), error) {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		<-s.writer
		return nil, nil, err
	}
	return tx, func() { tx.Rollback(); <-s.writer }, nil
}

// tx runs fn in a write transaction.
func (s *Store) tx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, mapErr(err))
	}
	defer done()
	if err := fn(tx); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, mapErr(err))
	}
	return nil
}

// RecordIssued commits certificate, transaction and audit event together.
func (s *Store) RecordIssued(ctx context.Context, rec store.Issued) error {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: record issued: %w", err)
	}
	defer done()
	c := rec.Certificate
	// The certificate row goes in first (the challenge references it), but
	// a spent challenge rolls everything back.
	sans, _ := json.Marshal(nonNil(c.SANs))
	if _, err := s.txExec(ctx, tx, qInsertCert,
		c.Serial, c.ProfileID, c.TransactionID, c.Subject, string(sans), fmtTime(c.NotBefore), fmtTime(c.NotAfter), c.DER, c.Status,
		c.CAID, c.RenewedSerial, fmtTime(c.Created)); err != nil {
		return fmt.Errorf("sqlite: insert certificate %s: %w", c.Serial, mapErr(err))
	}
	t := rec.Transaction
	if rec.FromPending {
		res, err := tx.ExecContext(ctx, `UPDATE transactions SET status = ?, cert_serial = ?, decided_by = ?, updated_at = ?
			WHERE profile_id = ? AND transaction_id = ? AND status = ?`,
			store.StatusIssued, c.Serial, t.DecidedBy, fmtTime(t.Updated), t.ProfileID, t.TransactionID, store.StatusPending)
		if err != nil {
			return fmt.Errorf("sqlite: approve transaction %q: %w", t.TransactionID, mapErr(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("sqlite: transaction %q is no longer pending: %w", t.TransactionID, store.ErrConflict)
		}
	} else if _, err := s.txExec(ctx, tx, qInsertTx,
		t.ProfileID, t.TransactionID, t.Status, t.PublicKeySHA256, t.CSRDER, nullString(t.CertSerial), t.DecidedBy, fmtTime(t.Created), fmtTime(t.Updated),
		t.ClientID(), t.SignerKeySHA256, t.RenewsSerial, nullBytes(t.SenderNonce)); err != nil {
		return fmt.Errorf("sqlite: insert transaction %q: %w", t.TransactionID, mapErr(err))
	}
	if rec.ChallengeHash != nil {
		// A challenge reserved by this (approved) request is its own even if
		// its expiry passed while the request waited.
		res, err := tx.ExecContext(ctx, `UPDATE challenges SET used_at = ?1, used_serial = ?2, reserved_by = NULL
			WHERE hash = ?3 AND profile_id = ?4 AND used_at IS NULL
			AND ((reserved_by IS NULL AND expires_at > ?1) OR reserved_by = ?5)`,
			fmtTime(c.Created), c.Serial, rec.ChallengeHash, c.ProfileID, t.TransactionID)
		if err != nil {
			return fmt.Errorf("sqlite: consume challenge: %w", mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return store.ErrChallengeSpent
		}
	}
	if rec.EntityUser != "" {
		res, err := tx.ExecContext(ctx, `UPDATE entities SET uses_left = uses_left - 1 WHERE profile_id = ? AND username = ? AND uses_left > 0 AND expires_at > ?`,
			c.ProfileID, rec.EntityUser, fmtTime(c.Created))
		if err != nil {
			return fmt.Errorf("sqlite: spend entity code: %w", mapErr(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return store.ErrChallengeSpent
		}
	}
	if err := s.appendAudit(ctx, tx, rec.Audit); err != nil {
		return err
	}
	if sp := rec.Supersede; sp != nil {
		// Writers are serialised: of two renewals of one certificate, the
		// second finds it revoked.
		res, err := tx.ExecContext(ctx, `UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ? WHERE serial = ? AND status = ?`,
			store.CertRevoked, fmtTime(c.Created), sp.Reason, sp.Serial, store.CertValid)
		if err != nil {
			return fmt.Errorf("sqlite: supersede %s: %w", sp.Serial, mapErr(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("sqlite: supersede %s: %w", sp.Serial, store.ErrSuperseded)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cas SET revocation_gen = revocation_gen + 1 WHERE id = (SELECT ca_id FROM certificates WHERE serial = ?)`, sp.Serial); err != nil {
			return fmt.Errorf("sqlite: supersede %s: %w", sp.Serial, mapErr(err))
		}
		if err := s.appendAudit(ctx, tx, sp.Audit); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: record issued: %w", mapErr(err))
	}
	return nil
}

// CreateChallenge stores a pending challenge under the profile's cap. The
// write transaction is taken at BEGIN, so the count and the insert are atomic.
func (s *Store) CreateChallenge(ctx context.Context, c store.Challenge, maxPending int) error {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: create challenge: %w", mapErr(err))
	}
	defer done()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM challenges WHERE profile_id = ? AND used_at IS NULL AND expires_at > ?`,
		c.ProfileID, fmtTime(c.Created)).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: create challenge: %w", mapErr(err))
	}
	if n >= maxPending {
		return fmt.Errorf("%w: %d pending challenges for profile %q", store.ErrLimit, n, c.ProfileID)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO challenges (hash, profile_id, created_at, expires_at, bound_to, note) VALUES (?, ?, ?, ?, ?, ?)`,
		c.Hash, c.ProfileID, fmtTime(c.Created), fmtTime(c.Expires), c.BoundTo, c.Note); err != nil {
		return fmt.Errorf("sqlite: create challenge: %w", mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create challenge: %w", mapErr(err))
	}
	return nil
}

// GetChallenge returns a profile's challenge by hash.
func (s *Store) GetChallenge(ctx context.Context, profileID string, hash []byte) (store.Challenge, error) {
	c := store.Challenge{Hash: hash, ProfileID: profileID}
	var created, expires string
	var used, serial, reserved sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT created_at, expires_at, used_at, used_serial, reserved_by, bound_to, note FROM challenges WHERE hash = ? AND profile_id = ?`, hash, profileID).
		Scan(&created, &expires, &used, &serial, &reserved, &c.BoundTo, &c.Note)
	c.ReservedBy = reserved.String
	if err != nil {
		return c, fmt.Errorf("sqlite: get challenge: %w", mapErr(err))
	}
	if c.Created, err = parseTime(created); err != nil {
		return c, err
	}
	if c.Expires, err = parseTime(expires); err != nil {
		return c, err
	}
	if used.Valid {
		if c.Used, err = parseTime(used.String); err != nil {
			return c, err
		}
	}
	c.UsedSerial = serial.String
	return c, nil
}

// PurgeChallenges deletes unused challenges that expired before t.
func (s *Store) PurgeChallenges(ctx context.Context, t time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM challenges WHERE used_at IS NULL AND expires_at < ?`, fmtTime(t))
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge challenges: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// CheckIntegrity verifies cross-record consistency and the audit chain.
func (s *Store) CheckIntegrity(ctx context.Context) (store.IntegrityReport, error) {
	var r store.IntegrityReport
	counts := []struct {
		dst   *int
		query string
	}{
		{&r.Certificates, `SELECT count(*) FROM certificates`},
		{&r.Transactions, `SELECT count(*) FROM transactions`},
		{&r.AuditEvents, `SELECT count(*) FROM audit_events`},
	}
	for _, c := range counts {
		if err := s.db.QueryRowContext(ctx, c.query).Scan(c.dst); err != nil {
			return r, fmt.Errorf("sqlite: integrity: %w", mapErr(err))
		}
	}
	for _, q := range store.IntegrityQueries {
		var n int
		if err := s.db.QueryRowContext(ctx, q.Query).Scan(&n); err != nil {
			return r, fmt.Errorf("sqlite: integrity: %w", mapErr(err))
		}
		if n > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d %s", n, q.Problem))
		}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT seq, at, actor, action, object, outcome, details, prev_hash, hash FROM audit_events ORDER BY seq`)
	if err != nil {
		return r, fmt.Errorf("sqlite: integrity: %w", mapErr(err))
	}
	defer rows.Close()
	v := store.ChainVerifier{Key: s.auditKey}
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return r, fmt.Errorf("sqlite: integrity: %w", err)
		}
		if p := v.Next(e); p != "" {
			r.Problems = append(r.Problems, p)
			return r, nil
		}
	}
	if p := v.Done(); p != "" {
		r.Problems = append(r.Problems, p)
	}
	return r, rows.Err()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

const certColumns = `serial, profile_id, transaction_id, subject, sans, not_before, not_after, der, status, ca_id, renewed_serial,
	revoked_at, revocation_reason, created_at`

func scanCert(r scanner) (store.Certificate, error) {
	var c store.Certificate
	var sans, nb, na, created string
	var revoked sql.NullString
	if err := r.Scan(&c.Serial, &c.ProfileID, &c.TransactionID, &c.Subject, &sans, &nb, &na, &c.DER, &c.Status, &c.CAID, &c.RenewedSerial,
		&revoked, &c.RevocationReason, &created); err != nil {
		return c, err
	}
	if revoked.Valid {
		t, err := parseTime(revoked.String)
		if err != nil {
			return c, err
		}
		c.RevokedAt = t
	}
	if err := json.Unmarshal([]byte(sans), &c.SANs); err != nil {
		return c, err
	}
	var err error
	if c.NotBefore, err = parseTime(nb); err != nil {
		return c, err
	}
	if c.NotAfter, err = parseTime(na); err != nil {
		return c, err
	}
	c.Created, err = parseTime(created)
	return c, err
}

// GetCertificate returns a certificate by serial.
func (s *Store) GetCertificate(ctx context.Context, serial string) (store.Certificate, error) {
	c, err := scanCert(s.queryRow(ctx, qGetCertificate, serial))
	if err != nil {
		return c, fmt.Errorf("sqlite: get certificate %s: %w", serial, mapErr(err))
	}
	return c, nil
}

// ListCertificates returns certificates, newest first.
func (s *Store) ListCertificates(ctx context.Context, f store.CertificateFilter) ([]store.Certificate, error) {
	q, args := listCertificatesQuery(f)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list certificates: %w", err)
	}
	defer rows.Close()
	var out []store.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list certificates: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// listCertificatesQuery is the listing query for f in SQLite's dialect.
func listCertificatesQuery(f store.CertificateFilter) (string, []any) {
	return store.ListCertificatesSQL(certColumns, f, dialect())
}

// dialect is how SQLite spells the shared queries.
func dialect() store.Dialect {
	return store.Dialect{
		Placeholder: func(n int) string { return "?" + strconv.Itoa(n) },
		Time:        func(t time.Time) any { return fmtTime(t) },
		Contains:    func(expr, p string) string { return "instr(lower(" + expr + "), lower(" + p + ")) > 0" },
		JSONText:    func(col, key string) string { return "json_extract(" + col + ", '$." + key + "')" },
		SANs:        "sans",
	}
}

// PutEntity creates or replaces an end entity registration.
func (s *Store) PutEntity(ctx context.Context, e store.Entity) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO entities (profile_id, username, code_hash, uses_left, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (profile_id, username) DO UPDATE SET code_hash = excluded.code_hash, uses_left = excluded.uses_left,
		expires_at = excluded.expires_at, created_at = excluded.created_at`,
		e.ProfileID, e.Username, e.CodeHash, e.UsesLeft, fmtTime(e.Expires), fmtTime(e.Created))
	if err != nil {
		return fmt.Errorf("sqlite: put entity: %w", mapErr(err))
	}
	return nil
}

func scanEntity(r scanner) (store.Entity, error) {
	var e store.Entity
	var exp, created string
	if err := r.Scan(&e.ProfileID, &e.Username, &e.CodeHash, &e.UsesLeft, &exp, &created); err != nil {
		return e, err
	}
	var err error
	if e.Expires, err = parseTime(exp); err != nil {
		return e, err
	}
	e.Created, err = parseTime(created)
	return e, err
}

// GetEntity returns an end entity registration.
func (s *Store) GetEntity(ctx context.Context, profileID, username string) (store.Entity, error) {
	e, err := scanEntity(s.db.QueryRowContext(ctx, `SELECT profile_id, username, code_hash, uses_left, expires_at, created_at FROM entities
		WHERE profile_id = ? AND username = ?`, profileID, username))
	if err != nil {
		return e, fmt.Errorf("sqlite: get entity: %w", mapErr(err))
	}
	return e, nil
}

// ListEntities returns a profile's end entities.
func (s *Store) ListEntities(ctx context.Context, profileID string) ([]store.Entity, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT profile_id, username, code_hash, uses_left, expires_at, created_at FROM entities
		WHERE profile_id = ? ORDER BY username`, profileID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list entities: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Entity
	for rows.Next() {
		e, err := scanEntity(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list entities: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CertificateStats counts certificates per profile.
func (s *Store) CertificateStats(ctx context.Context, now time.Time, within time.Duration) ([]store.CertificateStat, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT profile_id,
		sum(CASE WHEN status = 'valid' AND not_after > ?1 THEN 1 ELSE 0 END),
		sum(CASE WHEN status = 'revoked' THEN 1 ELSE 0 END),
		sum(CASE WHEN status = 'valid' AND not_after > ?1 AND not_after <= ?2 THEN 1 ELSE 0 END)
		FROM certificates GROUP BY profile_id ORDER BY profile_id`, fmtTime(now), fmtTime(now.Add(within)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: certificate stats: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.CertificateStat
	for rows.Next() {
		var st store.CertificateStat
		if err := rows.Scan(&st.ProfileID, &st.Valid, &st.Revoked, &st.Expiring); err != nil {
			return nil, fmt.Errorf("sqlite: certificate stats: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// RevokeCertificate marks a certificate revoked.
func (s *Store) RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time, audit store.AuditEvent) error {
	return s.tx(ctx, "revoke "+serial, func(tx *sql.Tx) error {
		var status string
		if err := tx.QueryRowContext(ctx, `SELECT status FROM certificates WHERE serial = ?`, serial).Scan(&status); err != nil {
			return mapErr(err)
		}
		if status == store.CertRevoked {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ? WHERE serial = ?`,
			store.CertRevoked, fmtTime(at), reason, serial); err != nil {
			return mapErr(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cas SET revocation_gen = revocation_gen + 1 WHERE id = (SELECT ca_id FROM certificates WHERE serial = ?)`, serial); err != nil {
			return mapErr(err)
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// ListRevoked returns a CA's revoked certificates.
func (s *Store) ListRevoked(ctx context.Context, caID string) ([]store.Revoked, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT serial, revoked_at, revocation_reason FROM certificates WHERE ca_id = ? AND status = ? ORDER BY serial`, caID, store.CertRevoked)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list revoked: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Revoked
	for rows.Next() {
		var c store.Revoked
		var at string
		if err := rows.Scan(&c.Serial, &at, &c.Reason); err != nil {
			return nil, fmt.Errorf("sqlite: list revoked: %w", err)
		}
		if c.At, err = parseTime(at); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// NextCRLNumber increments and returns the CA's CRL number.
func (s *Store) NextCRLNumber(ctx context.Context, caID string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `UPDATE cas SET crl_number = crl_number + 1 WHERE id = ? RETURNING crl_number`, caID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: CRL number of %q: %w", caID, mapErr(err))
	}
	return n, nil
}

// SaveCRL stores a signed CRL.
func (s *Store) SaveCRL(ctx context.Context, c store.CRL) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO crls (ca_id, number, this_update, next_update, der, revocation_gen) VALUES (?, ?, ?, ?, ?, ?)`,
		c.CAID, c.Number, fmtTime(c.ThisUpdate), fmtTime(c.NextUpdate), c.DER, c.Generation)
	if err != nil {
		return fmt.Errorf("sqlite: save CRL %s/%d: %w", c.CAID, c.Number, mapErr(err))
	}
	return nil
}

// LatestCRL returns the CA's newest CRL.
func (s *Store) LatestCRL(ctx context.Context, caID string) (store.CRL, error) {
	c := store.CRL{CAID: caID}
	var tu, nu string
	err := s.db.QueryRowContext(ctx, `SELECT number, this_update, next_update, der, revocation_gen FROM crls WHERE ca_id = ? ORDER BY number DESC LIMIT 1`, caID).
		Scan(&c.Number, &tu, &nu, &c.DER, &c.Generation)
	if err != nil {
		return c, fmt.Errorf("sqlite: latest CRL of %q: %w", caID, mapErr(err))
	}
	if c.ThisUpdate, err = parseTime(tu); err != nil {
		return c, err
	}
	c.NextUpdate, err = parseTime(nu)
	return c, err
}

// RevocationGeneration returns the CA's revocation generation.
func (s *Store) RevocationGeneration(ctx context.Context, caID string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT revocation_gen FROM cas WHERE id = ?`, caID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: revocation generation of %q: %w", caID, mapErr(err))
	}
	return n, nil
}

// AppendAudit appends one event to the chained audit log.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: audit: %w", err)
	}
	defer done()
	if err := s.appendAudit(ctx, tx, e); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: audit: %w", err)
	}
	return nil
}

// appendAudit chains e onto the newest event. It runs inside a write
// transaction (taken at BEGIN), so no other writer can read the same head.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, e store.AuditEvent) error {
	var head *store.AuditEvent
	h, err := scanAudit(s.txQueryRow(ctx, tx, qAuditHead))
	switch {
	case err == nil:
		head = &h
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: audit head: %w", err)
	}
	if err := store.LinkAudit(s.auditKey, &e, head); err != nil {
		return fmt.Errorf("sqlite: audit: %w", err)
	}
	details, _ := json.Marshal(e.Details)
	if _, err := s.txExec(ctx, tx, qAuditInsert,
		e.Seq, fmtTime(e.Time), e.Actor, e.Action, e.Object, e.Outcome, string(details), e.PrevHash, e.Hash, store.AuditProfile(e)); err != nil {
		return fmt.Errorf("sqlite: audit insert: %w", err)
	}
	return nil
}

// ListAudit returns the newest events first.
func (s *Store) ListAudit(ctx context.Context, limit int, profiles ...string) ([]store.AuditEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	var args []any
	param := func(v any) string { args = append(args, v); return "?" }
	where := ""
	if len(profiles) > 0 {
		where = ` WHERE profile IN (` + store.InList(profiles, param) + `)`
	}
	rows, err := s.db.QueryContext(ctx, `SELECT seq, at, actor, action, object, outcome, details, prev_hash, hash FROM audit_events`+where+` ORDER BY seq DESC LIMIT `+param(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// AuditAfter returns events after a sequence number, oldest first.
func (s *Store) AuditAfter(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, at, actor, action, object, outcome, details, prev_hash, hash FROM audit_events
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit after: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit after: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

const auditColumns = `seq, at, actor, action, object, outcome, details, prev_hash, hash`

func scanAudit(r scanner) (store.AuditEvent, error) {
	var e store.AuditEvent
	var at, details string
	if err := r.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Outcome, &details, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	var err error
	if e.Time, err = parseTime(at); err != nil {
		return e, err
	}
	return e, json.Unmarshal([]byte(details), &e.Details)
}

// nullBytes stores an empty value as NULL (which unique indexes ignore).
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// CountCertificates counts the certificates f selects, over all pages.
func (s *Store) CountCertificates(ctx context.Context, f store.CertificateFilter) (int, error) {
	q, args := store.CountCertificatesSQL(f, dialect())
	var n int
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count certificates: %w", err)
	}
	return n, nil
}

// PendingChallenges lists a profile's pending one-time challenges.
func (s *Store) PendingChallenges(ctx context.Context, profileID string, now time.Time, limit int) ([]store.Challenge, error) {
	rows, err := s.db.QueryContext(ctx, store.PendingChallengesSQL(dialect()), profileID, fmtTime(now), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pending challenges: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Challenge
	for rows.Next() {
		c := store.Challenge{ProfileID: profileID}
		var created, expires string
		var reserved sql.NullString
		if err := rows.Scan(&c.Hash, &created, &expires, &reserved, &c.BoundTo, &c.Note); err != nil {
			return nil, fmt.Errorf("sqlite: pending challenges: %w", err)
		}
		c.ReservedBy = reserved.String
		if c.Created, err = parseTime(created); err != nil {
			return nil, err
		}
		if c.Expires, err = parseTime(expires); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CancelChallenge deletes a pending one-time challenge no request holds.
func (s *Store) CancelChallenge(ctx context.Context, profileID string, hash []byte) error {
	res, err := s.db.ExecContext(ctx, store.CancelChallengeSQL(dialect()), profileID, hash)
	if err != nil {
		return fmt.Errorf("sqlite: cancel challenge: %w", mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: cancel challenge: no pending one of profile %q: %w", profileID, store.ErrNotFound)
	}
	return nil
}

// EnrollFailures counts refused enrollments since a time by failInfo and reason.
func (s *Store) EnrollFailures(ctx context.Context, since time.Time, profiles []string) ([]store.FailureCount, error) {
	q, args := store.EnrollFailuresSQL(since, profiles, dialect())
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: enroll failures: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.FailureCount
	for rows.Next() {
		var f store.FailureCount
		if err := rows.Scan(&f.FailInfo, &f.Reason, &f.Count); err != nil {
			return nil, fmt.Errorf("sqlite: enroll failures: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// RequestedBy is the actor of a request's first enrollment audit event.
func (s *Store) RequestedBy(ctx context.Context, profileID, transactionID string) (string, error) {
	var actor string
	err := s.db.QueryRowContext(ctx, store.RequestedBySQL(dialect()), "transaction:"+transactionID, profileID).Scan(&actor)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: requested by: %w", mapErr(err))
	}
	return actor, nil
}
