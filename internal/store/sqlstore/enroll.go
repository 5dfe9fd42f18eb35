package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scepd/scepd/internal/store"
)

const txColumns = `profile_id, transaction_id, status, public_key_sha256, csr_der, cert_serial, challenge_hash, expires_at, decided_by, reason,
	created_at, updated_at, client_transaction_id, signer_key_sha256, renews_serial, upstream_poll`

// CertColumns are the certificate columns scanCert reads, in its order.
const CertColumns = `serial, profile_id, transaction_id, subject, sans, not_before, not_after, der, status, ca_id, renewed_serial,
	revoked_at, revocation_reason, created_at, upstream`

// Statements of the enrollment path (see hotStatements).
const (
	qGetTransaction = `SELECT ` + txColumns + ` FROM transactions WHERE profile_id = $1 AND transaction_id = $2`
	qGetCertificate = `SELECT ` + CertColumns + ` FROM certificates WHERE serial = $1`
	qInsertCert     = `INSERT INTO certificates (` + CertColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, 0, $12, $13)`
	qInsertTx       = `INSERT INTO transactions (` + txColumns + `, sender_nonce)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`
)

func (s *Store) scanTx(r scanner) (store.Transaction, error) {
	var t store.Transaction
	var serial, clientID sql.NullString
	err := r.Scan(&t.ProfileID, &t.TransactionID, &t.Status, &t.PublicKeySHA256, &t.CSRDER, &serial, &t.ChallengeHash, s.tm(&t.Expires),
		&t.DecidedBy, &t.Reason, s.tm(&t.Created), s.tm(&t.Updated), &clientID, &t.SignerKeySHA256, &t.RenewsSerial, &t.UpstreamPoll)
	t.CertSerial = serial.String
	t.ClientTransactionID = clientID.String
	if !clientID.Valid {
		t.ClientTransactionID = t.TransactionID
	}
	return t, err
}

func (s *Store) scanCert(r scanner) (store.Certificate, error) {
	var c store.Certificate
	err := r.Scan(&c.Serial, &c.ProfileID, &c.TransactionID, &c.Subject, s.d.ScanStrings(&c.SANs), s.tm(&c.NotBefore), s.tm(&c.NotAfter), &c.DER, &c.Status,
		&c.CAID, &c.RenewedSerial, s.tm(&c.RevokedAt), &c.RevocationReason, s.tm(&c.Created), &c.Upstream)
	return c, err
}

// insertTx is the statement inserting a transaction row (see qInsertTx).
// The client's transactionID is stored only when it is not the row's own
// (a renewal, a changed CSR under a used ID): the partial index
// transactions_client_id then holds only those, and the rest are found by
// the primary key (LatestRequest, ListTransactions and scanTx read NULL as
// the row's ID).
func (s *Store) insertTx(t store.Transaction) Stmt {
	var clientID sql.NullString
	if id := t.ClientID(); id != t.TransactionID {
		clientID = sql.NullString{String: id, Valid: true}
	}
	return Stmt{Query: qInsertTx, What: fmt.Sprintf("insert transaction %q", t.TransactionID), Args: []any{
		t.ProfileID, t.TransactionID, t.Status, t.PublicKeySHA256, t.CSRDER, nullString(t.CertSerial), nullBytes(t.ChallengeHash), s.nullTime(t.Expires),
		t.DecidedBy, t.Reason, s.d.Time(t.Created), s.d.Time(t.Updated),
		clientID, t.SignerKeySHA256, t.RenewsSerial, nullBytes(t.UpstreamPoll), nullBytes(t.SenderNonce)}}
}

// GetTransaction returns one enrollment transaction.
func (s *Store) GetTransaction(ctx context.Context, profileID, txID string) (t store.Transaction, err error) {
	defer s.end("GetTransaction", time.Now(), &err)
	t, err = s.scanTx(s.row(ctx, nil, qGetTransaction, profileID, txID))
	if err != nil {
		return t, fmt.Errorf("get transaction %q/%q: %w", profileID, txID, err)
	}
	return t, nil
}

// ListTransactions returns transactions, oldest first (f.Newest: newest first).
func (s *Store) ListTransactions(ctx context.Context, f store.TransactionFilter) (out []store.Transaction, err error) {
	defer s.end("ListTransactions", time.Now(), &err)
	q, args := store.ListTransactionsSQL(txColumns, f, s.d.List)
	return list(ctx, s, q, s.scanTx, args...)
}

// LatestRequestQuery is LatestRequest's query in the dialect.
func LatestRequestQuery(d Dialect) string { return store.LatestRequestSQL(txColumns, d.List) }

// LatestRequest returns the newest request of a client transactionID and key.
func (s *Store) LatestRequest(ctx context.Context, profileID, clientID string, keySHA256 []byte) (t store.Transaction, err error) {
	defer s.end("LatestRequest", time.Now(), &err)
	t, err = s.scanTx(s.row(ctx, nil, s.qLatest, profileID, clientID, keySHA256))
	if err != nil {
		return t, fmt.Errorf("latest request %q/%q: %w", profileID, clientID, err)
	}
	return t, nil
}

// RecordPending stores a pending request and reserves its challenge.
func (s *Store) RecordPending(ctx context.Context, t store.Transaction, entityUser string, audit store.AuditEvent) (err error) {
	defer s.end("RecordPending", time.Now(), &err)
	t.Status, t.CertSerial, t.DecidedBy, t.Reason = store.StatusPending, "", "", ""
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		stmts := []Stmt{s.insertTx(t)}
		if t.ChallengeHash != nil {
			stmts = append(stmts, Stmt{Query: `UPDATE challenges SET reserved_by = $1 WHERE hash = $2 AND profile_id = $3 AND used_at IS NULL
				AND reserved_by IS NULL AND expires_at > $4`, Args: []any{t.TransactionID, t.ChallengeHash, t.ProfileID, s.d.Time(t.Created)},
				What: "reserve challenge", Done: one(store.ErrChallengeSpent)})
		}
		if entityUser != "" {
			stmts = append(stmts, spendEntity(t.ProfileID, entityUser, s.d.Time(t.Created)))
		}
		return s.appendAudits(ctx, tx, stmts, audit)
	})
}

// spendEntity spends one use of an end entity's code, unless none is
// left or it expired (ErrChallengeSpent): of two requests taking its last
// use at once, one does.
func spendEntity(profileID, username string, now any) Stmt {
	return Stmt{Query: `UPDATE entities SET uses_left = uses_left - 1 WHERE profile_id = $1 AND username = $2 AND uses_left > 0 AND expires_at > $3`,
		Args: []any{profileID, username, now}, What: "spend entity code", Done: one(store.ErrChallengeSpent)}
}

// RejectPending rejects a pending request and frees its challenge.
func (s *Store) RejectPending(ctx context.Context, profileID, txID, decidedBy, reason string, at time.Time, audit store.AuditEvent) (err error) {
	defer s.end("RejectPending", time.Now(), &err)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `UPDATE transactions SET status = $1, decided_by = $2, reason = $3, updated_at = $4, upstream_poll = NULL
			WHERE profile_id = $5 AND transaction_id = $6 AND status = $7`, store.StatusRejected, decidedBy, reason, s.d.Time(at), profileID, txID, store.StatusPending)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("reject %q: %w", txID, store.ErrNotFound)
		}
		if _, err := s.exec(ctx, tx, `UPDATE challenges SET reserved_by = NULL WHERE profile_id = $1 AND reserved_by = $2 AND used_at IS NULL`, profileID, txID); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// SetUpstreamPoll replaces a pending request's upstream token old by
// token.
func (s *Store) SetUpstreamPoll(ctx context.Context, profileID, txID string, old, token []byte) (err error) {
	defer s.end("SetUpstreamPoll", time.Now(), &err)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `UPDATE transactions SET upstream_poll = $1
			WHERE profile_id = $2 AND transaction_id = $3 AND status = $4 AND upstream_poll = $5`,
			token, profileID, txID, store.StatusPending, old)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("upstream token of %q: %w", txID, store.ErrConflict)
		}
		return nil
	})
}

// expireBatch bounds the requests one transaction of ExpirePending
// rejects: it holds the audit chain's lock (SQLite: the write lock, and
// the group commit it joins) while it appends their events, so a backlog
// (a server stopped for days) is worked off in short transactions.
const expireBatch = 100

// expiredReason is the reason of a request rejected by ExpirePending.
const expiredReason = "expired before a decision"

// qExpirePending rejects up to $4 pending requests that expired before
// $2, oldest expiry first, and returns them. The status is written out,
// not bound, so that both reads of the pending requests may use the
// partial index transactions_pending. The outer condition is what makes
// RETURNING exact: under READ COMMITTED (PostgreSQL) an UPDATE that
// finds a row changed by a transaction that committed meanwhile checks
// it again, so a request approved or rejected concurrently is neither
// changed nor returned.
const qExpirePending = `UPDATE transactions SET status = $1, reason = $3, updated_at = $2, upstream_poll = NULL
	WHERE status = 'pending' AND expires_at < $2 AND (profile_id, transaction_id) IN
	(SELECT profile_id, transaction_id FROM transactions WHERE status = 'pending' AND expires_at < $2
	 ORDER BY expires_at, profile_id, transaction_id LIMIT $4)
	RETURNING profile_id, transaction_id, expires_at`

// ExpirePending rejects pending requests past their expiry, freeing their
// challenges, with a request.reject event by scepd for each in the same
// transaction, up to expireBatch requests a transaction.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) (n int, err error) {
	defer s.end("ExpirePending", time.Now(), &err)
	for {
		k, err := s.expirePending(ctx, now, expireBatch)
		n += k
		// Until a transaction finds none: one that lost rows to
		// concurrent decisions returns fewer than it selected while more
		// may wait. (Requests that expire before now are not added, so
		// this ends; were every row of one batch decided concurrently,
		// the rest would wait for the next call.)
		if err != nil || k == 0 {
			return n, err
		}
	}
}

// expirePending rejects up to limit expired requests in one transaction.
func (s *Store) expirePending(ctx context.Context, now time.Time, limit int) (n int, err error) {
	type expired struct {
		profileID, txID string
		expires         time.Time
	}
	err = s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		n = 0
		rows, err := tx.QueryContext(ctx, qExpirePending, store.StatusRejected, s.d.Time(now), expiredReason, limit)
		if err != nil {
			return fmt.Errorf("expire pending requests: %w", err)
		}
		var done []expired
		for rows.Next() {
			var e expired
			if err := rows.Scan(&e.profileID, &e.txID, s.tm(&e.expires)); err != nil {
				rows.Close()
				return fmt.Errorf("expire pending requests: %w", err)
			}
			done = append(done, e)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("expire pending requests: %w", err)
		}
		if len(done) == 0 {
			return nil
		}
		// RETURNING's order is the database's: the events follow the
		// expiries.
		slices.SortFunc(done, func(a, b expired) int {
			return cmp.Or(a.expires.Compare(b.expires), cmp.Compare(a.profileID, b.profileID), cmp.Compare(a.txID, b.txID))
		})
		// After the requests' rows, as RejectPending and an approval lock
		// them: a request's row, then its challenge's, then the chain.
		stmts := make([]Stmt, len(done))
		events := make([]store.AuditEvent, len(done))
		for i, e := range done {
			stmts[i] = Stmt{Query: `UPDATE challenges SET reserved_by = NULL WHERE profile_id = $1 AND reserved_by = $2 AND used_at IS NULL`,
				Args: []any{e.profileID, e.txID}, What: fmt.Sprintf("free the challenge of %q", e.txID)}
			events[i] = store.AuditEvent{Time: now, Actor: "scepd", Action: "request.reject", Object: "transaction:" + e.txID, Outcome: "ok",
				Details: map[string]string{"profile": e.profileID, "reason": expiredReason}}
		}
		if err := s.appendAudits(ctx, tx, stmts, events...); err != nil {
			return err
		}
		n = len(done)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// RecordIssued commits certificate, transaction, consumed challenge and
// audit event in one transaction.
func (s *Store) RecordIssued(ctx context.Context, rec store.Issued) (err error) {
	defer s.end("RecordIssued", time.Now(), &err)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.recordIssued(ctx, tx, rec) })
}

// recordIssued sends its writes and the audit chain's lock and head read
// together, then the audit events (see appendAudits): two round trips
// where the dialect batches.
func (s *Store) recordIssued(ctx context.Context, tx *sql.Tx, rec store.Issued) error {
	c, t := rec.Certificate, rec.Transaction
	// The certificate row goes in first (the challenge references it), but
	// a spent challenge rolls everything back.
	stmts := make([]Stmt, 0, 6)
	stmts = append(stmts, Stmt{Query: qInsertCert, What: "insert certificate " + c.Serial, Args: []any{
		c.Serial, c.ProfileID, c.TransactionID, c.Subject, s.d.Strings(nonNil(c.SANs)), s.d.Time(c.NotBefore), s.d.Time(c.NotAfter), c.DER, c.Status,
		c.CAID, c.RenewedSerial, s.d.Time(c.Created), c.Upstream}})
	if rec.FromPending {
		stmts = append(stmts, Stmt{Query: `UPDATE transactions SET status = $1, cert_serial = $2, decided_by = $3, updated_at = $4, upstream_poll = NULL
			WHERE profile_id = $5 AND transaction_id = $6 AND status = $7`,
			Args: []any{store.StatusIssued, c.Serial, t.DecidedBy, s.d.Time(t.Updated), t.ProfileID, t.TransactionID, store.StatusPending},
			What: fmt.Sprintf("approve transaction %q", t.TransactionID),
			Done: one(fmt.Errorf("transaction %q is no longer pending: %w", t.TransactionID, store.ErrConflict))})
	} else {
		t.ChallengeHash, t.Expires, t.Reason = nil, time.Time{}, ""
		stmts = append(stmts, s.insertTx(t))
	}
	if rec.ChallengeHash != nil {
		// Under READ COMMITTED a concurrent consumer blocks on the row and
		// then re-checks used_at IS NULL, so exactly one succeeds (SQLite
		// serialises writers). A challenge reserved by this (approved)
		// request is its own even if its expiry passed while it waited.
		stmts = append(stmts, Stmt{Query: `UPDATE challenges SET used_at = $1, used_serial = $2, reserved_by = NULL
			WHERE hash = $3 AND profile_id = $4 AND used_at IS NULL
			AND ((reserved_by IS NULL AND expires_at > $1) OR reserved_by = $5)`,
			Args: []any{s.d.Time(c.Created), c.Serial, rec.ChallengeHash, c.ProfileID, t.TransactionID},
			What: "consume challenge", Done: one(store.ErrChallengeSpent)})
	}
	if rec.EntityUser != "" {
		stmts = append(stmts, spendEntity(c.ProfileID, rec.EntityUser, s.d.Time(c.Created)))
	}
	events := []store.AuditEvent{rec.Audit}
	if sp := rec.Supersede; sp != nil {
		// A concurrent renewal of the same certificate blocks on its row
		// and then re-checks the status: exactly one revokes it. (Before
		// the audit lock: row locks first, as in RevokeCertificate.)
		stmts = append(stmts, Stmt{Query: `UPDATE certificates SET status = $1, revoked_at = $2, revocation_reason = $3 WHERE serial = $4 AND status = $5`,
			Args: []any{store.CertRevoked, s.d.Time(c.Created), sp.Reason, sp.Serial, store.CertValid},
			What: "supersede " + sp.Serial, Done: one(fmt.Errorf("supersede %s: %w", sp.Serial, store.ErrSuperseded))},
			bumpGeneration(sp.Serial, "supersede "+sp.Serial))
		events = append(events, sp.Audit)
	}
	return s.appendAudits(ctx, tx, stmts, events...)
}

// bumpGeneration counts a revocation in the certificate's CA.
func bumpGeneration(serial, what string) Stmt {
	return Stmt{Query: `UPDATE cas SET revocation_gen = revocation_gen + 1 WHERE id = (SELECT ca_id FROM certificates WHERE serial = $1)`,
		Args: []any{serial}, What: what}
}

// GetCertificate returns a certificate by serial.
func (s *Store) GetCertificate(ctx context.Context, serial string) (c store.Certificate, err error) {
	defer s.end("GetCertificate", time.Now(), &err)
	c, err = s.scanCert(s.row(ctx, nil, qGetCertificate, serial))
	if err != nil {
		return c, fmt.Errorf("get certificate %s: %w", serial, err)
	}
	return c, nil
}

// ListCertificatesQuery is the listing query for f in the dialect.
func ListCertificatesQuery(d Dialect, f store.CertificateFilter) (string, []any) {
	return store.ListCertificatesSQL(CertColumns, f, d.List)
}

// ListCertificates returns certificates, newest first.
func (s *Store) ListCertificates(ctx context.Context, f store.CertificateFilter) (out []store.Certificate, err error) {
	defer s.end("ListCertificates", time.Now(), &err)
	q, args := ListCertificatesQuery(s.d, f)
	return list(ctx, s, q, s.scanCert, args...)
}

// CertificateStats counts certificates per profile.
func (s *Store) CertificateStats(ctx context.Context, now time.Time, within time.Duration) (out []store.CertificateStat, err error) {
	defer s.end("CertificateStats", time.Now(), &err)
	return list(ctx, s, `SELECT profile_id,
		count(*) FILTER (WHERE status = 'valid' AND not_after > $1),
		count(*) FILTER (WHERE status = 'revoked'),
		count(*) FILTER (WHERE status = 'valid' AND not_after > $1 AND not_after <= $2)
		FROM certificates GROUP BY profile_id ORDER BY profile_id`, func(r scanner) (store.CertificateStat, error) {
		var st store.CertificateStat
		return st, r.Scan(&st.ProfileID, &st.Valid, &st.Revoked, &st.Expiring)
	}, s.d.Time(now), s.d.Time(now.Add(within)))
}

// RevokeCertificate marks a certificate revoked; with keySHA256 its key
// is recorded as compromised, also when it was revoked already.
func (s *Store) RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time, keySHA256 []byte, audit store.AuditEvent) (err error) {
	defer s.end("RevokeCertificate", time.Now(), &err)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var status string
		var was int
		if err := s.row(ctx, tx, `SELECT status, revocation_reason FROM certificates WHERE serial = $1`+s.d.ForUpdate, serial).Scan(&status, &was); err != nil {
			return fmt.Errorf("revoke %s: %w", serial, err)
		}
		var stmts []Stmt
		if keySHA256 != nil {
			stmts = append(stmts, Stmt{Query: `INSERT INTO compromised_keys (key_sha256, serial, at) VALUES ($1, $2, $3) ON CONFLICT (key_sha256) DO NOTHING`,
				Args: []any{keySHA256, serial, s.d.Time(at)}, What: "compromised key of " + serial})
		}
		switch {
		case status != store.CertRevoked:
			stmts = append(stmts, Stmt{Query: `UPDATE certificates SET status = $1, revoked_at = $2, revocation_reason = $3 WHERE serial = $4`,
				Args: []any{store.CertRevoked, s.d.Time(at), reason, serial}, What: "revoke " + serial},
				bumpGeneration(serial, "revoke "+serial))
		case keySHA256 != nil && was != reason:
			// Found compromised after a revocation for another reason:
			// CRLs and OCSP say so from now on (RFC 5280 §5.3.1), the
			// revocation time staying.
			stmts = append(stmts, Stmt{Query: `UPDATE certificates SET revocation_reason = $1 WHERE serial = $2`,
				Args: []any{reason, serial}, What: "revocation reason of " + serial},
				bumpGeneration(serial, "revoke "+serial))
		}
		if len(stmts) == 0 {
			return nil
		}
		return s.appendAudits(ctx, tx, stmts, audit)
	})
}

// KeyCompromised returns the serial of the certificate whose revocation
// recorded keySHA256 as compromised; store.ErrNotFound when none did.
func (s *Store) KeyCompromised(ctx context.Context, keySHA256 []byte) (serial string, err error) {
	defer s.end("KeyCompromised", time.Now(), &err)
	err = s.row(ctx, nil, qKeyCompromised, keySHA256).Scan(&serial)
	return serial, err
}

// qKeyCompromised is asked before every issuance.
const qKeyCompromised = `SELECT serial FROM compromised_keys WHERE key_sha256 = $1`

// ListRevokedQuery reads a CA's revoked certificates for its CRL, from the
// covering index certificates_revoked alone.
// The status is written out, not bound: a partial index serves a query
// only when its condition is in the query's text.
const ListRevokedQuery = `SELECT serial, revoked_at, revocation_reason FROM certificates WHERE ca_id = $1 AND status = '` + store.CertRevoked + `' ORDER BY serial`

// ListRevoked returns a CA's revoked certificates.
func (s *Store) ListRevoked(ctx context.Context, caID string) (out []store.Revoked, err error) {
	defer s.end("ListRevoked", time.Now(), &err)
	return list(ctx, s, ListRevokedQuery,
		func(r scanner) (store.Revoked, error) {
			var c store.Revoked
			return c, r.Scan(&c.Serial, s.tm(&c.At), &c.Reason)
		}, caID)
}

// IssuedPerDay counts issued certificates per UTC day and profile.
func (s *Store) IssuedPerDay(ctx context.Context, since time.Time) (out []store.DayCount, err error) {
	defer s.end("IssuedPerDay", time.Now(), &err)
	return list(ctx, s, `SELECT `+s.d.DayUTC+` AS day, profile_id, count(*) FROM certificates
		WHERE created_at >= $1 GROUP BY day, profile_id ORDER BY day, profile_id`, func(r scanner) (store.DayCount, error) {
		var d store.DayCount
		return d, r.Scan(&d.Day, &d.ProfileID, &d.Count)
	}, s.d.Time(since))
}

// DueExpiryNotices lists certificates a threshold's notice is due for.
func (s *Store) DueExpiryNotices(ctx context.Context, profileID string, before time.Duration, now time.Time, limit int) (out []store.Certificate, err error) {
	defer s.end("DueExpiryNotices", time.Now(), &err)
	if limit <= 0 {
		limit = 100
	}
	return list(ctx, s, `SELECT `+CertColumns+` FROM certificates c
		WHERE c.profile_id = $1 AND c.status = $2 AND c.not_after > $3 AND c.not_after <= $4
		AND NOT EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_serial = c.serial)
		AND NOT EXISTS (SELECT 1 FROM expiry_notices n WHERE n.serial = c.serial AND n.before_seconds = $5)
		ORDER BY c.not_after LIMIT $6`, s.scanCert,
		profileID, store.CertValid, s.d.Time(now), s.d.Time(now.Add(before)), int64(before/time.Second), limit)
}

// RecordExpiryNotice records a certificate's notices once; concurrent
// replicas conflict on the primary key and only one appends the event.
func (s *Store) RecordExpiryNotice(ctx context.Context, serial string, thresholds []time.Duration, at time.Time, audit *store.AuditEvent) (first bool, err error) {
	defer s.end("RecordExpiryNotice", time.Now(), &err)
	err = s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for i, t := range thresholds {
			n, err := s.exec(ctx, tx, `INSERT INTO expiry_notices (serial, before_seconds, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				serial, int64(t/time.Second), s.d.Time(at))
			if err != nil {
				return err
			}
			if i == 0 {
				first = n == 1
			}
		}
		if first && audit != nil {
			return s.appendAudit(ctx, tx, *audit)
		}
		return nil
	})
	return first, err
}
