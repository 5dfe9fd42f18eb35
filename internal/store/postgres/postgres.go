// Package postgres is the Store backend for several scepd replicas sharing
// one PostgreSQL database, through pgx. Migrations are embedded and applied
// under an advisory lock, so replicas starting together migrate once.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scepd/scepd/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys (arbitrary constants, "scepd" in ASCII plus a suffix).
const (
	lockMigrate int64 = 0x7363657064_01
	lockAudit   int64 = 0x7363657064_02
)

// Options tune the connection pool.
type Options struct {
	// MaxConns bounds the pool; 0 means pgx's default (max(4, CPUs)).
	MaxConns int32
	// StatementTimeout bounds every statement; 0 means 10s.
	StatementTimeout time.Duration
}

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// auditKey keys the audit chain (see SetAuditKey).
	auditKey []byte
}

// SetAuditKey sets the key of the audit chain's HMAC, before the store is
// used. Without one, events are chained unkeyed (tests of other packages).
func (s *Store) SetAuditKey(key []byte) { s.auditKey = key }

var _ store.Store = (*Store)(nil)

// Open connects to url (postgres://...) and migrates the schema.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = 10 * time.Second
	}
	if _, set := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(o.StatementTimeout.Milliseconds())
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", mapErr(err))
	}
	defer conn.Release()
	// Session-level lock: held across the migration transactions, released
	// below or when the connection dies.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockMigrate); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", mapErr(err))
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, lockMigrate)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", mapErr(err))
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
			return fmt.Errorf("postgres: migrate: %w", mapErr(err))
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())`, version)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", version, mapErr(err))
		}
	}
	return nil
}

// mapErr maps driver errors onto the store's sentinel errors.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{store.ErrNotFound, store.ErrNonceReused, store.ErrConflict, store.ErrLimit, store.ErrChallengeSpent, store.ErrUnavailable, store.ErrAuditHead, store.ErrSuperseded} {
		if errors.Is(err, known) {
			return err // mapped already
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505" && pe.ConstraintName == "transactions_sender_nonce":
			return fmt.Errorf("%w: %v", store.ErrNonceReused, err)
		case pe.Code == "23505": // unique_violation
			return fmt.Errorf("%w: %v", store.ErrConflict, err)
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                                               // insufficient resources (disk full, too many connections)
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "57014": // shutdown, cannot connect now, statement timeout
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	// Everything that is not a server-side SQL error is the connection:
	// refused, reset, timed out, closed pool.
	return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return mapErr(s.pool.Ping(ctx)) }

// Close closes the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }

// CreateCA stores a CA.
func (s *Store) CreateCA(ctx context.Context, ca store.CA) error {
	chain := ca.ChainDER
	if chain == nil {
		chain = [][]byte{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO cas (id, cert_der, chain_der, key_ref, created_at) VALUES ($1, $2, $3, $4, $5)`,
		ca.ID, ca.CertDER, chain, ca.KeyRef, ca.Created)
	if err != nil {
		return fmt.Errorf("postgres: create CA %q: %w", ca.ID, mapErr(err))
	}
	return nil
}

// GetCA returns a CA by id.
func (s *Store) GetCA(ctx context.Context, id string) (store.CA, error) {
	var ca store.CA
	err := s.pool.QueryRow(ctx, `SELECT id, cert_der, chain_der, key_ref, created_at FROM cas WHERE id = $1`, id).
		Scan(&ca.ID, &ca.CertDER, &ca.ChainDER, &ca.KeyRef, &ca.Created)
	if err != nil {
		return ca, fmt.Errorf("postgres: get CA %q: %w", id, mapErr(err))
	}
	if len(ca.ChainDER) == 0 {
		ca.ChainDER = nil
	}
	ca.Created = ca.Created.UTC()
	return ca, nil
}

const profileColumns = `id, ca_id, ra_cert_der, ra_key_ref, challenge_mode, challenge_hash, challenge_config, challenge_prev_hash, challenge_prev_until,
	challenge_ttl_seconds, challenge_max_pending,
	allow_des, include_ca_cert, ca_mode, full_chain, policy, lifecycle, next_ra_cert_der, next_ra_key_ref, source, created_at, updated_at`

// CreateProfile stores a profile.
func (s *Store) CreateProfile(ctx context.Context, p store.Profile) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO profiles (`+profileColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		p.ID, p.CAID, p.RACertDER, p.RAKeyRef, p.ChallengeMode, p.ChallengeHash, policyText(p.ChallengeConfig), p.ChallengePrevHash, nullTime(p.ChallengePrevUntil),
		int64(p.ChallengeTTL/time.Second), p.ChallengeMaxPending,
		p.AllowDES, p.IncludeCACert, p.CAMode, p.FullChain, policyText(p.Policy), policyText(p.Lifecycle), p.NextRACertDER, p.NextRAKeyRef,
		p.Source, p.Created, updated(p))
	if err != nil {
		return fmt.Errorf("postgres: create profile %q: %w", p.ID, mapErr(err))
	}
	return nil
}

// UpdateProfile replaces a profile's mutable fields.
func (s *Store) UpdateProfile(ctx context.Context, p store.Profile) error {
	tag, err := s.pool.Exec(ctx, `UPDATE profiles SET ca_id = $1, ra_cert_der = $2, ra_key_ref = $3, challenge_mode = $4, challenge_hash = $5,
		challenge_ttl_seconds = $6, challenge_max_pending = $7, allow_des = $8, include_ca_cert = $9, ca_mode = $10, full_chain = $11, policy = $12,
		lifecycle = $13, next_ra_cert_der = $14, next_ra_key_ref = $15, source = $16, updated_at = $17,
		challenge_config = $19, challenge_prev_hash = $20, challenge_prev_until = $21 WHERE id = $18`,
		p.CAID, p.RACertDER, p.RAKeyRef, p.ChallengeMode, p.ChallengeHash, int64(p.ChallengeTTL/time.Second), p.ChallengeMaxPending, p.AllowDES, p.IncludeCACert,
		p.CAMode, p.FullChain, policyText(p.Policy), policyText(p.Lifecycle), p.NextRACertDER, p.NextRAKeyRef, p.Source, updated(p), p.ID,
		policyText(p.ChallengeConfig), p.ChallengePrevHash, nullTime(p.ChallengePrevUntil))
	if err != nil {
		return fmt.Errorf("postgres: update profile %q: %w", p.ID, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: update profile %q: %w", p.ID, store.ErrNotFound)
	}
	return nil
}

func scanProfile(r pgx.Row) (store.Profile, error) {
	var p store.Profile
	var ttl int64
	var policy, lifecycle, chcfg string
	var prevUntil *time.Time
	err := r.Scan(&p.ID, &p.CAID, &p.RACertDER, &p.RAKeyRef, &p.ChallengeMode, &p.ChallengeHash, &chcfg, &p.ChallengePrevHash, &prevUntil,
		&ttl, &p.ChallengeMaxPending,
		&p.AllowDES, &p.IncludeCACert, &p.CAMode, &p.FullChain, &policy, &lifecycle, &p.NextRACertDER, &p.NextRAKeyRef, &p.Source, &p.Created, &p.Updated)
	p.ChallengeTTL = time.Duration(ttl) * time.Second
	p.Policy, p.Lifecycle, p.ChallengeConfig = []byte(policy), []byte(lifecycle), []byte(chcfg)
	if prevUntil != nil {
		p.ChallengePrevUntil = prevUntil.UTC()
	}
	p.Created, p.Updated = p.Created.UTC(), p.Updated.UTC()
	return p, err
}

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
	rows, err := s.pool.Query(ctx, `SELECT id, cert_der, chain_der, key_ref, created_at FROM cas ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list CAs: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.CA
	for rows.Next() {
		var ca store.CA
		if err := rows.Scan(&ca.ID, &ca.CertDER, &ca.ChainDER, &ca.KeyRef, &ca.Created); err != nil {
			return nil, fmt.Errorf("postgres: list CAs: %w", mapErr(err))
		}
		if len(ca.ChainDER) == 0 {
			ca.ChainDER = nil
		}
		ca.Created = ca.Created.UTC()
		out = append(out, ca)
	}
	return out, mapErr(rows.Err())
}

// CreateToken stores an API token.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	profiles := t.Profiles
	if profiles == nil {
		profiles = []string{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO tokens (id, hash, name, role, profiles, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, t.Hash, t.Name, t.Role, profiles, t.Created)
	if err != nil {
		return fmt.Errorf("postgres: create token: %w", mapErr(err))
	}
	return nil
}

const tokenColumns = `id, hash, name, role, profiles, created_at, revoked_at`

func scanToken(r pgx.Row) (store.Token, error) {
	var t store.Token
	var revoked *time.Time
	if err := r.Scan(&t.ID, &t.Hash, &t.Name, &t.Role, &t.Profiles, &t.Created, &revoked); err != nil {
		return t, err
	}
	if len(t.Profiles) == 0 {
		t.Profiles = nil
	}
	t.Created = t.Created.UTC()
	if revoked != nil {
		t.Revoked = revoked.UTC()
	}
	return t, nil
}

// GetToken returns a token by id.
func (s *Store) GetToken(ctx context.Context, id string) (store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
	if err != nil {
		return t, fmt.Errorf("postgres: get token: %w", mapErr(err))
	}
	return t, nil
}

// ListTokens returns every token, newest first.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tokens: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list tokens: %w", mapErr(err))
		}
		out = append(out, t)
	}
	return out, mapErr(rows.Err())
}

// RevokeToken marks a token revoked.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, at, id)
	if err != nil {
		return fmt.Errorf("postgres: revoke token: %w", mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: revoke token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// GetProfile returns a profile by id.
func (s *Store) GetProfile(ctx context.Context, id string) (store.Profile, error) {
	p, err := scanProfile(s.pool.QueryRow(ctx, `SELECT `+profileColumns+` FROM profiles WHERE id = $1`, id))
	if err != nil {
		return p, fmt.Errorf("postgres: get profile %q: %w", id, mapErr(err))
	}
	return p, nil
}

// ListProfiles returns every profile ordered by id.
func (s *Store) ListProfiles(ctx context.Context) ([]store.Profile, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+profileColumns+` FROM profiles ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list profiles: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Profile
	for rows.Next() {
		p, err := scanProfile(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list profiles: %w", mapErr(err))
		}
		out = append(out, p)
	}
	return out, mapErr(rows.Err())
}

const txColumns = `profile_id, transaction_id, status, public_key_sha256, csr_der, cert_serial, challenge_hash, expires_at, decided_by, reason, created_at, updated_at, client_transaction_id, signer_key_sha256, renews_serial`

func scanTx(r pgx.Row) (store.Transaction, error) {
	var t store.Transaction
	var serial, clientID *string
	var expires *time.Time
	if err := r.Scan(&t.ProfileID, &t.TransactionID, &t.Status, &t.PublicKeySHA256, &t.CSRDER, &serial, &t.ChallengeHash, &expires,
		&t.DecidedBy, &t.Reason, &t.Created, &t.Updated, &clientID, &t.SignerKeySHA256, &t.RenewsSerial); err != nil {
		return t, err
	}
	if serial != nil {
		t.CertSerial = *serial
	}
	t.ClientTransactionID = t.TransactionID
	if clientID != nil {
		t.ClientTransactionID = *clientID
	}
	if expires != nil {
		t.Expires = expires.UTC()
	}
	t.Created, t.Updated = t.Created.UTC(), t.Updated.UTC()
	return t, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// GetTransaction returns one enrollment transaction.
func (s *Store) GetTransaction(ctx context.Context, profileID, txID string) (store.Transaction, error) {
	t, err := scanTx(s.pool.QueryRow(ctx, `SELECT `+txColumns+` FROM transactions WHERE profile_id = $1 AND transaction_id = $2`, profileID, txID))
	if err != nil {
		return t, fmt.Errorf("postgres: get transaction %q/%q: %w", profileID, txID, mapErr(err))
	}
	return t, nil
}

// ListTransactions returns transactions, oldest first (f.Newest: newest first).
func (s *Store) ListTransactions(ctx context.Context, f store.TransactionFilter) ([]store.Transaction, error) {
	q, args := store.ListTransactionsSQL(txColumns, f, dialect())
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list transactions: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Transaction
	for rows.Next() {
		t, err := scanTx(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list transactions: %w", mapErr(err))
		}
		out = append(out, t)
	}
	return out, mapErr(rows.Err())
}

var qLatestRequest = store.LatestRequestSQL(txColumns, dialect())

// LatestRequest returns the newest request of a client transactionID and key.
func (s *Store) LatestRequest(ctx context.Context, profileID, clientID string, keySHA256 []byte) (store.Transaction, error) {
	t, err := scanTx(s.pool.QueryRow(ctx, qLatestRequest, profileID, clientID, keySHA256))
	if err != nil {
		return t, fmt.Errorf("postgres: latest request %q/%q: %w", profileID, clientID, mapErr(err))
	}
	return t, nil
}

// RecordPending stores a pending request and reserves its challenge.
func (s *Store) RecordPending(ctx context.Context, t store.Transaction, audit store.AuditEvent) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO transactions (`+txColumns+`, sender_nonce) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, '', '', $8, $9, $10, $11, $12, $13)`,
			t.ProfileID, t.TransactionID, store.StatusPending, t.PublicKeySHA256, t.CSRDER, t.ChallengeHash, nullTime(t.Expires), t.Created, t.Updated,
			t.ClientID(), t.SignerKeySHA256, t.RenewsSerial, nullBytes(t.SenderNonce)); err != nil {
			return mapErr(err)
		}
		if t.ChallengeHash != nil {
			tag, err := tx.Exec(ctx, `UPDATE challenges SET reserved_by = $1 WHERE hash = $2 AND profile_id = $3 AND used_at IS NULL
				AND reserved_by IS NULL AND expires_at > $4`, t.TransactionID, t.ChallengeHash, t.ProfileID, t.Created)
			if err != nil {
				return mapErr(err)
			}
			if tag.RowsAffected() != 1 {
				return store.ErrChallengeSpent
			}
		}
		return s.appendAudit(ctx, tx, audit)
	})
	if err != nil {
		return fmt.Errorf("postgres: record pending: %w", mapErr(err))
	}
	return nil
}

// RejectPending rejects a pending request and frees its challenge.
func (s *Store) RejectPending(ctx context.Context, profileID, txID, decidedBy, reason string, at time.Time, audit store.AuditEvent) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE transactions SET status = $1, decided_by = $2, reason = $3, updated_at = $4
			WHERE profile_id = $5 AND transaction_id = $6 AND status = $7`, store.StatusRejected, decidedBy, reason, at, profileID, txID, store.StatusPending)
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() != 1 {
			return store.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `UPDATE challenges SET reserved_by = NULL WHERE profile_id = $1 AND reserved_by = $2 AND used_at IS NULL`, profileID, txID); err != nil {
			return mapErr(err)
		}
		return s.appendAudit(ctx, tx, audit)
	})
	if err != nil {
		return fmt.Errorf("postgres: reject pending: %w", mapErr(err))
	}
	return nil
}

// ExpirePending rejects pending requests past their expiry.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE challenges h SET reserved_by = NULL FROM transactions t
			WHERE h.used_at IS NULL AND t.profile_id = h.profile_id AND t.transaction_id = h.reserved_by
			AND t.status = 'pending' AND t.expires_at < $1`, now); err != nil {
			return mapErr(err)
		}
		tag, err := tx.Exec(ctx, `UPDATE transactions SET status = $1, reason = 'expired before a decision', updated_at = $2
			WHERE status = $3 AND expires_at < $2`, store.StatusRejected, now, store.StatusPending)
		if err != nil {
			return mapErr(err)
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: expire pending: %w", mapErr(err))
	}
	return int(n), nil
}

// RecordIssued commits certificate, transaction, consumed challenge and
// audit event in one transaction.
func (s *Store) RecordIssued(ctx context.Context, rec store.Issued) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		c := rec.Certificate
		sans := c.SANs
		if sans == nil {
			sans = []string{}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO certificates (`+certColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, 0, $12)`,
			c.Serial, c.ProfileID, c.TransactionID, c.Subject, sans, c.NotBefore, c.NotAfter, c.DER, c.Status, c.CAID, c.RenewedSerial, c.Created); err != nil {
			return fmt.Errorf("insert certificate %s: %w", c.Serial, mapErr(err))
		}
		t := rec.Transaction
		var serial *string
		if t.CertSerial != "" {
			serial = &t.CertSerial
		}
		if rec.FromPending {
			tag, err := tx.Exec(ctx, `UPDATE transactions SET status = $1, cert_serial = $2, decided_by = $3, updated_at = $4
				WHERE profile_id = $5 AND transaction_id = $6 AND status = $7`,
				store.StatusIssued, c.Serial, t.DecidedBy, t.Updated, t.ProfileID, t.TransactionID, store.StatusPending)
			if err != nil {
				return fmt.Errorf("approve transaction %q: %w", t.TransactionID, mapErr(err))
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("transaction %q is no longer pending: %w", t.TransactionID, store.ErrConflict)
			}
		} else if _, err := tx.Exec(ctx, `INSERT INTO transactions (`+txColumns+`, sender_nonce) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, '', $8, $9, $10, $11, $12, $13)`,
			t.ProfileID, t.TransactionID, t.Status, t.PublicKeySHA256, t.CSRDER, serial, t.DecidedBy, t.Created, t.Updated,
			t.ClientID(), t.SignerKeySHA256, t.RenewsSerial, nullBytes(t.SenderNonce)); err != nil {
			return fmt.Errorf("insert transaction %q: %w", t.TransactionID, mapErr(err))
		}
		if rec.ChallengeHash != nil {
			// Under READ COMMITTED a concurrent consumer blocks on the row
			// and then re-checks used_at IS NULL, so exactly one succeeds.
			// A challenge reserved by this (approved) request is its own even
			// if its expiry passed while the request waited.
			tag, err := tx.Exec(ctx, `UPDATE challenges SET used_at = $1, used_serial = $2, reserved_by = NULL
				WHERE hash = $3 AND profile_id = $4 AND used_at IS NULL
				AND ((reserved_by IS NULL AND expires_at > $1) OR reserved_by = $5)`,
				c.Created, c.Serial, rec.ChallengeHash, c.ProfileID, t.TransactionID)
			if err != nil {
				return fmt.Errorf("consume challenge: %w", mapErr(err))
			}
			if tag.RowsAffected() != 1 {
				return store.ErrChallengeSpent
			}
		}
		if rec.EntityUser != "" {
			tag, err := tx.Exec(ctx, `UPDATE entities SET uses_left = uses_left - 1 WHERE profile_id = $1 AND username = $2 AND uses_left > 0 AND expires_at > $3`,
				c.ProfileID, rec.EntityUser, c.Created)
			if err != nil {
				return fmt.Errorf("spend entity code: %w", mapErr(err))
			}
			if tag.RowsAffected() != 1 {
				return store.ErrChallengeSpent
			}
		}
		if err := s.appendAudit(ctx, tx, rec.Audit); err != nil {
			return err
		}
		if sp := rec.Supersede; sp != nil {
			// Under READ COMMITTED a concurrent renewal of the same
			// certificate blocks on its row and then re-checks the status:
			// exactly one revokes it.
			tag, err := tx.Exec(ctx, `UPDATE certificates SET status = $1, revoked_at = $2, revocation_reason = $3 WHERE serial = $4 AND status = $5`,
				store.CertRevoked, c.Created, sp.Reason, sp.Serial, store.CertValid)
			if err != nil {
				return fmt.Errorf("supersede %s: %w", sp.Serial, mapErr(err))
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("supersede %s: %w", sp.Serial, store.ErrSuperseded)
			}
			if _, err := tx.Exec(ctx, `UPDATE cas SET revocation_gen = revocation_gen + 1 WHERE id = (SELECT ca_id FROM certificates WHERE serial = $1)`, sp.Serial); err != nil {
				return fmt.Errorf("supersede %s: %w", sp.Serial, mapErr(err))
			}
			return s.appendAudit(ctx, tx, sp.Audit)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: record issued: %w", mapErr(err))
	}
	return nil
}

const certColumns = `serial, profile_id, transaction_id, subject, sans, not_before, not_after, der, status, ca_id, renewed_serial,
	revoked_at, revocation_reason, created_at`

func scanCert(r pgx.Row) (store.Certificate, error) {
	var c store.Certificate
	var revoked *time.Time
	err := r.Scan(&c.Serial, &c.ProfileID, &c.TransactionID, &c.Subject, &c.SANs, &c.NotBefore, &c.NotAfter, &c.DER, &c.Status,
		&c.CAID, &c.RenewedSerial, &revoked, &c.RevocationReason, &c.Created)
	c.NotBefore, c.NotAfter, c.Created = c.NotBefore.UTC(), c.NotAfter.UTC(), c.Created.UTC()
	if revoked != nil {
		c.RevokedAt = revoked.UTC()
	}
	return c, err
}

// GetCertificate returns a certificate by serial.
func (s *Store) GetCertificate(ctx context.Context, serial string) (store.Certificate, error) {
	c, err := scanCert(s.pool.QueryRow(ctx, `SELECT `+certColumns+` FROM certificates WHERE serial = $1`, serial))
	if err != nil {
		return c, fmt.Errorf("postgres: get certificate %s: %w", serial, mapErr(err))
	}
	return c, nil
}

// ListCertificates returns certificates, newest first.
func (s *Store) ListCertificates(ctx context.Context, f store.CertificateFilter) ([]store.Certificate, error) {
	q, args := listCertificatesQuery(f)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list certificates: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list certificates: %w", mapErr(err))
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}

// listCertificatesQuery is the listing query for f in PostgreSQL's dialect.
func listCertificatesQuery(f store.CertificateFilter) (string, []any) {
	return store.ListCertificatesSQL(certColumns, f, dialect())
}

// dialect is how PostgreSQL spells the shared queries.
func dialect() store.Dialect {
	return store.Dialect{
		Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
		Time:        func(t time.Time) any { return t },
		Contains:    func(expr, p string) string { return "strpos(lower(" + expr + "), lower(" + p + ")) > 0" },
		JSONText:    func(col, key string) string { return "(" + col + "::jsonb ->> '" + key + "')" },
		SANs:        "array_to_string(sans, ' ')",
	}
}

// CreateChallenge stores a pending challenge under the profile's cap. The
// profile row is locked for the count and insert, so concurrent creators
// on any replica cannot exceed the cap together.
func (s *Store) CreateChallenge(ctx context.Context, c store.Challenge, maxPending int) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM profiles WHERE id = $1 FOR UPDATE`, c.ProfileID).Scan(&one); err != nil {
			return mapErr(err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM challenges WHERE profile_id = $1 AND used_at IS NULL AND expires_at > $2`,
			c.ProfileID, c.Created).Scan(&n); err != nil {
			return mapErr(err)
		}
		if n >= maxPending {
			return fmt.Errorf("%w: %d pending challenges for profile %q", store.ErrLimit, n, c.ProfileID)
		}
		_, err := tx.Exec(ctx, `INSERT INTO challenges (hash, profile_id, created_at, expires_at, bound_to, note) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.Hash, c.ProfileID, c.Created, c.Expires, c.BoundTo, c.Note)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("postgres: create challenge: %w", err)
	}
	return nil
}

// GetChallenge returns a profile's challenge by hash.
func (s *Store) GetChallenge(ctx context.Context, profileID string, hash []byte) (store.Challenge, error) {
	c := store.Challenge{Hash: hash, ProfileID: profileID}
	var used *time.Time
	var serial, reserved *string
	err := s.pool.QueryRow(ctx, `SELECT created_at, expires_at, used_at, used_serial, reserved_by, bound_to, note FROM challenges WHERE hash = $1 AND profile_id = $2`, hash, profileID).
		Scan(&c.Created, &c.Expires, &used, &serial, &reserved, &c.BoundTo, &c.Note)
	if reserved != nil {
		c.ReservedBy = *reserved
	}
	if err != nil {
		return c, fmt.Errorf("postgres: get challenge: %w", mapErr(err))
	}
	c.Created, c.Expires = c.Created.UTC(), c.Expires.UTC()
	if used != nil {
		c.Used = used.UTC()
	}
	if serial != nil {
		c.UsedSerial = *serial
	}
	return c, nil
}

// PurgeChallenges deletes unused challenges that expired before t.
func (s *Store) PurgeChallenges(ctx context.Context, t time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM challenges WHERE used_at IS NULL AND expires_at < $1`, t)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge challenges: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}

// PutEntity creates or replaces an end entity registration.
func (s *Store) PutEntity(ctx context.Context, e store.Entity) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO entities (profile_id, username, code_hash, uses_left, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (profile_id, username) DO UPDATE SET code_hash = excluded.code_hash, uses_left = excluded.uses_left,
		expires_at = excluded.expires_at, created_at = excluded.created_at`,
		e.ProfileID, e.Username, e.CodeHash, e.UsesLeft, e.Expires, e.Created)
	if err != nil {
		return fmt.Errorf("postgres: put entity: %w", mapErr(err))
	}
	return nil
}

func scanEntity(r pgx.Row) (store.Entity, error) {
	var e store.Entity
	err := r.Scan(&e.ProfileID, &e.Username, &e.CodeHash, &e.UsesLeft, &e.Expires, &e.Created)
	e.Expires, e.Created = e.Expires.UTC(), e.Created.UTC()
	return e, err
}

// GetEntity returns an end entity registration.
func (s *Store) GetEntity(ctx context.Context, profileID, username string) (store.Entity, error) {
	e, err := scanEntity(s.pool.QueryRow(ctx, `SELECT profile_id, username, code_hash, uses_left, expires_at, created_at FROM entities
		WHERE profile_id = $1 AND username = $2`, profileID, username))
	if err != nil {
		return e, fmt.Errorf("postgres: get entity: %w", mapErr(err))
	}
	return e, nil
}

// ListEntities returns a profile's end entities.
func (s *Store) ListEntities(ctx context.Context, profileID string) ([]store.Entity, error) {
	rows, err := s.pool.Query(ctx, `SELECT profile_id, username, code_hash, uses_left, expires_at, created_at FROM entities
		WHERE profile_id = $1 ORDER BY username`, profileID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list entities: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Entity
	for rows.Next() {
		e, err := scanEntity(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list entities: %w", mapErr(err))
		}
		out = append(out, e)
	}
	return out, mapErr(rows.Err())
}

// CertificateStats counts certificates per profile.
func (s *Store) CertificateStats(ctx context.Context, now time.Time, within time.Duration) ([]store.CertificateStat, error) {
	rows, err := s.pool.Query(ctx, `SELECT profile_id,
		count(*) FILTER (WHERE status = 'valid' AND not_after > $1),
		count(*) FILTER (WHERE status = 'revoked'),
		count(*) FILTER (WHERE status = 'valid' AND not_after > $1 AND not_after <= $2)
		FROM certificates GROUP BY profile_id ORDER BY profile_id`, now, now.Add(within))
	if err != nil {
		return nil, fmt.Errorf("postgres: certificate stats: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.CertificateStat
	for rows.Next() {
		var st store.CertificateStat
		if err := rows.Scan(&st.ProfileID, &st.Valid, &st.Revoked, &st.Expiring); err != nil {
			return nil, fmt.Errorf("postgres: certificate stats: %w", mapErr(err))
		}
		out = append(out, st)
	}
	return out, mapErr(rows.Err())
}

// RevokeCertificate marks a certificate revoked.
func (s *Store) RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time, audit store.AuditEvent) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, `SELECT status FROM certificates WHERE serial = $1 FOR UPDATE`, serial).Scan(&status); err != nil {
			return mapErr(err)
		}
		if status == store.CertRevoked {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE certificates SET status = $1, revoked_at = $2, revocation_reason = $3 WHERE serial = $4`,
			store.CertRevoked, at, reason, serial); err != nil {
			return mapErr(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE cas SET revocation_gen = revocation_gen + 1 WHERE id = (SELECT ca_id FROM certificates WHERE serial = $1)`, serial); err != nil {
			return mapErr(err)
		}
		return s.appendAudit(ctx, tx, audit)
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke %s: %w", serial, mapErr(err))
	}
	return nil
}

// ListRevoked returns a CA's revoked certificates.
func (s *Store) ListRevoked(ctx context.Context, caID string) ([]store.Revoked, error) {
	rows, err := s.pool.Query(ctx, `SELECT serial, revoked_at, revocation_reason FROM certificates WHERE ca_id = $1 AND status = $2 ORDER BY serial`, caID, store.CertRevoked)
	if err != nil {
		return nil, fmt.Errorf("postgres: list revoked: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Revoked
	for rows.Next() {
		var c store.Revoked
		if err := rows.Scan(&c.Serial, &c.At, &c.Reason); err != nil {
			return nil, fmt.Errorf("postgres: list revoked: %w", mapErr(err))
		}
		c.At = c.At.UTC()
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}

// NextCRLNumber increments and returns the CA's CRL number; the row lock
// makes it monotonic across replicas.
func (s *Store) NextCRLNumber(ctx context.Context, caID string) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `UPDATE cas SET crl_number = crl_number + 1 WHERE id = $1 RETURNING crl_number`, caID).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: CRL number of %q: %w", caID, mapErr(err))
	}
	return n, nil
}

// SaveCRL stores a signed CRL.
func (s *Store) SaveCRL(ctx context.Context, c store.CRL) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO crls (ca_id, number, this_update, next_update, der, revocation_gen) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.CAID, c.Number, c.ThisUpdate, c.NextUpdate, c.DER, c.Generation); err != nil {
		return fmt.Errorf("postgres: save CRL %s/%d: %w", c.CAID, c.Number, mapErr(err))
	}
	return nil
}

// LatestCRL returns the CA's newest CRL.
func (s *Store) LatestCRL(ctx context.Context, caID string) (store.CRL, error) {
	c := store.CRL{CAID: caID}
	err := s.pool.QueryRow(ctx, `SELECT number, this_update, next_update, der, revocation_gen FROM crls WHERE ca_id = $1 ORDER BY number DESC LIMIT 1`, caID).
		Scan(&c.Number, &c.ThisUpdate, &c.NextUpdate, &c.DER, &c.Generation)
	if err != nil {
		return c, fmt.Errorf("postgres: latest CRL of %q: %w", caID, mapErr(err))
	}
	c.ThisUpdate, c.NextUpdate = c.ThisUpdate.UTC(), c.NextUpdate.UTC()
	return c, nil
}

// RevocationGeneration returns the CA's revocation generation.
func (s *Store) RevocationGeneration(ctx context.Context, caID string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT revocation_gen FROM cas WHERE id = $1`, caID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: revocation generation of %q: %w", caID, mapErr(err))
	}
	return n, nil
}

// AppendAudit appends one event to the chained audit log.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.appendAudit(ctx, tx, e) }); err != nil {
		return fmt.Errorf("postgres: audit: %w", mapErr(err))
	}
	return nil
}

// appendAudit chains e onto the newest event. The transaction-scoped
// advisory lock serialises appenders across replicas; it is released at
// commit or rollback.
func (s *Store) appendAudit(ctx context.Context, tx pgx.Tx, e store.AuditEvent) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockAudit); err != nil {
		return fmt.Errorf("audit lock: %w", mapErr(err))
	}
	var head *store.AuditEvent
	h, err := scanAudit(tx.QueryRow(ctx, `SELECT `+auditColumns+` FROM audit_events ORDER BY seq DESC LIMIT 1`))
	switch {
	case err == nil:
		head = &h
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("audit head: %w", mapErr(err))
	}
	// The seq is set here, not by the column's sequence, because the HMAC
	// covers it (and a rolled-back append leaves no gap).
	if err := store.LinkAudit(s.auditKey, &e, head); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	details, _ := json.Marshal(e.Details)
	if _, err := tx.Exec(ctx, `INSERT INTO audit_events (seq, at, actor, action, object, outcome, details, prev_hash, hash, profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.Seq, e.Time, e.Actor, e.Action, e.Object, e.Outcome, string(details), e.PrevHash, e.Hash, store.AuditProfile(e)); err != nil {
		return fmt.Errorf("audit insert: %w", mapErr(err))
	}
	return nil
}

func scanAudit(r pgx.Row) (store.AuditEvent, error) {
	var e store.AuditEvent
	var details string
	if err := r.Scan(&e.Seq, &e.Time, &e.Actor, &e.Action, &e.Object, &e.Outcome, &details, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	e.Time = e.Time.UTC()
	return e, json.Unmarshal([]byte(details), &e.Details)
}

const auditColumns = `seq, at, actor, action, object, outcome, details, prev_hash, hash`

// ListAudit returns the newest events first.
func (s *Store) ListAudit(ctx context.Context, limit int, profiles ...string) ([]store.AuditEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	q, args := `SELECT `+auditColumns+` FROM audit_events ORDER BY seq DESC LIMIT $1`, []any{limit}
	if len(profiles) > 0 {
		q, args = `SELECT `+auditColumns+` FROM audit_events WHERE profile = ANY($2) ORDER BY seq DESC LIMIT $1`, []any{limit, profiles}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list audit: %w", mapErr(err))
		}
		out = append(out, e)
	}
	return out, mapErr(rows.Err())
}

// AuditAfter returns events after a sequence number, oldest first.
func (s *Store) AuditAfter(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit after: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: audit after: %w", mapErr(err))
		}
		out = append(out, e)
	}
	return out, mapErr(rows.Err())
}

// CheckIntegrity verifies cross-record consistency and the audit chain.
func (s *Store) CheckIntegrity(ctx context.Context) (store.IntegrityReport, error) {
	var r store.IntegrityReport
	for _, c := range []struct {
		dst   *int
		query string
	}{
		{&r.Certificates, `SELECT count(*) FROM certificates`},
		{&r.Transactions, `SELECT count(*) FROM transactions`},
		{&r.AuditEvents, `SELECT count(*) FROM audit_events`},
	} {
		if err := s.pool.QueryRow(ctx, c.query).Scan(c.dst); err != nil {
			return r, fmt.Errorf("postgres: integrity: %w", mapErr(err))
		}
	}
	for _, q := range store.IntegrityQueries {
		var n int
		if err := s.pool.QueryRow(ctx, q.Query).Scan(&n); err != nil {
			return r, fmt.Errorf("postgres: integrity: %w", mapErr(err))
		}
		if n > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d %s", n, q.Problem))
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_events ORDER BY seq`)
	if err != nil {
		return r, fmt.Errorf("postgres: integrity: %w", mapErr(err))
	}
	defer rows.Close()
	v := store.ChainVerifier{Key: s.auditKey}
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return r, fmt.Errorf("postgres: integrity: %w", mapErr(err))
		}
		if p := v.Next(e); p != "" {
			r.Problems = append(r.Problems, p)
			return r, nil
		}
	}
	if p := v.Done(); p != "" {
		r.Problems = append(r.Problems, p)
	}
	return r, mapErr(rows.Err())
}

// nullBytes stores an empty value as NULL (which unique indexes ignore).
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nonNilStrings binds an absent list as an empty text[] rather than NULL.
func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CountCertificates counts the certificates f selects, over all pages.
func (s *Store) CountCertificates(ctx context.Context, f store.CertificateFilter) (int, error) {
	q, args := store.CountCertificatesSQL(f, dialect())
	var n int
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count certificates: %w", mapErr(err))
	}
	return n, nil
}

// PendingChallenges lists a profile's pending one-time challenges.
func (s *Store) PendingChallenges(ctx context.Context, profileID string, now time.Time, limit int) ([]store.Challenge, error) {
	rows, err := s.pool.Query(ctx, store.PendingChallengesSQL(dialect()), profileID, now, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: pending challenges: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Challenge
	for rows.Next() {
		c := store.Challenge{ProfileID: profileID}
		var reserved *string
		if err := rows.Scan(&c.Hash, &c.Created, &c.Expires, &reserved, &c.BoundTo, &c.Note); err != nil {
			return nil, fmt.Errorf("postgres: pending challenges: %w", mapErr(err))
		}
		if reserved != nil {
			c.ReservedBy = *reserved
		}
		c.Created, c.Expires = c.Created.UTC(), c.Expires.UTC()
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}

// CancelChallenge deletes a pending one-time challenge no request holds.
func (s *Store) CancelChallenge(ctx context.Context, profileID string, hash []byte) error {
	tag, err := s.pool.Exec(ctx, store.CancelChallengeSQL(dialect()), profileID, hash)
	if err != nil {
		return fmt.Errorf("postgres: cancel challenge: %w", mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: cancel challenge: no pending one of profile %q: %w", profileID, store.ErrNotFound)
	}
	return nil
}

// EnrollFailures counts refused enrollments since a time by failInfo and reason.
func (s *Store) EnrollFailures(ctx context.Context, since time.Time, profiles []string) ([]store.FailureCount, error) {
	q, args := store.EnrollFailuresSQL(since, profiles, dialect())
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: enroll failures: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.FailureCount
	for rows.Next() {
		var f store.FailureCount
		if err := rows.Scan(&f.FailInfo, &f.Reason, &f.Count); err != nil {
			return nil, fmt.Errorf("postgres: enroll failures: %w", err)
		}
		out = append(out, f)
	}
	return out, mapErr(rows.Err())
}

// RequestedBy is the actor of a request's first enrollment audit event.
func (s *Store) RequestedBy(ctx context.Context, profileID, transactionID string) (string, error) {
	var actor string
	err := s.pool.QueryRow(ctx, store.RequestedBySQL(dialect()), "transaction:"+transactionID, profileID).Scan(&actor)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("postgres: requested by: %w", mapErr(err))
	}
	return actor, nil
}
