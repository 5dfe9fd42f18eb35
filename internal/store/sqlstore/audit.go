package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/store"
)

const auditColumns = `seq, at, actor, action, object, outcome, details, prev_hash, hash`

const (
	qAuditHead = `SELECT ` + auditColumns + ` FROM audit_events ORDER BY seq DESC LIMIT 1`
	// qAuditKeyed: whether the chain was keyed. Asked only of a head
	// that is not keyed (a log from an earlier version, once, or a forged
	// head) while the store does not know already (Store.chainKeyed), so
	// it has no index of its own.
	qAuditKeyed  = `SELECT EXISTS (SELECT 1 FROM audit_events WHERE action = $1)`
	qAuditInsert = `INSERT INTO audit_events (` + auditColumns + `, profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
)

func (s *Store) scanAudit(r scanner) (store.AuditEvent, error) {
	e, details, err := s.scanAuditRaw(r)
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal([]byte(details), &e.Details)
}

// scanAuditRaw reads an event's columns, its details as stored (JSON).
func (s *Store) scanAuditRaw(r scanner) (e store.AuditEvent, details string, err error) {
	err = r.Scan(&e.Seq, s.tm(&e.Time), &e.Actor, &e.Action, &e.Object, &e.Outcome, &details, &e.PrevHash, &e.Hash)
	return e, details, err
}

// AppendAudit appends one event to the chained audit log.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) (err error) {
	defer s.end("AppendAudit", time.Now(), &err)
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.appendAudit(ctx, tx, e) })
}

// appendAudit chains e onto the newest event, in a write transaction that
// holds the lock serialising appenders (Dialect.LockAudit, or SQLite's
// write lock taken at BEGIN), so no other appender reads the same head.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, e store.AuditEvent) error {
	return s.appendAudits(ctx, tx, nil, e)
}

// appendAudits runs the transaction's own statements before, then chains
// events onto the newest event, in order, as appendAudit does: in two
// round trips where the dialect batches (before, the lock and the head
// read; then the inserts). The lock is taken after before's statements,
// so a transaction that also locks rows (a certificate it revokes) locks
// them first, as RevokeCertificate does, and holds the chain for no
// longer than its last round trips.
func (s *Store) appendAudits(ctx context.Context, tx *sql.Tx, before []Stmt, events ...store.AuditEvent) error {
	var head *store.AuditEvent
	stmts := before
	if s.d.LockAudit != "" {
		// A statement of its own: the head read after it takes its
		// snapshot once the lock is held (READ COMMITTED).
		stmts = append(stmts, Stmt{Query: s.d.LockAudit, What: "audit lock"})
	}
	verified := false
	stmts = append(stmts, Stmt{Query: qAuditHead, Row: func(r scanner) error {
		h, details, err := s.scanAuditRaw(r)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return fmt.Errorf("audit head: %w", err)
		}
		head = &h
		// Its details matter only to check its HMAC, which a head this
		// store appended and finds unchanged needs no more.
		if verified = s.auditKey == nil || s.appended.Load().is(s.auditKey, &h, details); !verified {
			if err := json.Unmarshal([]byte(details), &h.Details); err != nil {
				return fmt.Errorf("audit head: %w", err)
			}
		} else if s.auditKey != nil && !s.chainKeyed.Load() {
			s.chainKeyed.Store(true) // once: a load per append, no shared write
		}
		return nil
	}})
	if err := s.batch(ctx, tx, stmts...); err != nil {
		return err
	}
	inserts := make([]Stmt, len(events))
	var last *appendedAudit
	for i := range events {
		e := &events[i]
		// The seq is set here, not by the database, because the HMAC
		// covers it (and a rolled-back append leaves no gap).
		var err error
		if verified {
			err = store.LinkAuditVerified(s.auditKey, e, head)
		} else {
			err = store.LinkAudit(s.auditKey, e, head, func() (bool, error) {
				if s.chainKeyed.Load() {
					return true, nil
				}
				var keyed bool
				err := s.row(ctx, tx, qAuditKeyed, store.ActionChainKeyed).Scan(&keyed)
				if keyed {
					s.chainKeyed.Store(true)
				}
				return keyed, err
			})
		}
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		details, _ := json.Marshal(e.Details)
		inserts[i] = Stmt{Query: qAuditInsert, What: "audit insert",
			Args: []any{e.Seq, s.d.Time(e.Time), e.Actor, e.Action, e.Object, e.Outcome, string(details), e.PrevHash, e.Hash, store.AuditProfile(*e)}}
		head, verified = e, true
		last = &appendedAudit{key: s.auditKey, e: *e, details: string(details)}
	}
	if err := s.batch(ctx, tx, inserts...); err != nil {
		return err
	}
	// Rolled back later (a group's savepoint), it is not the head the
	// next append reads, which is then checked.
	s.appended.Store(last)
	return nil
}

// appendedAudit is the newest audit event a store appended, as it wrote
// it, and the key it was hashed with.
type appendedAudit struct {
	key     []byte
	e       store.AuditEvent
	details string
}

// is reports whether head, read back with its details' JSON, is a's
// event field for field, hashed with key.
func (a *appendedAudit) is(key []byte, head *store.AuditEvent, details string) bool {
	return a != nil && bytes.Equal(a.key, key) && head.Seq == a.e.Seq && head.Time.Equal(a.e.Time) && head.Actor == a.e.Actor &&
		head.Action == a.e.Action && head.Object == a.e.Object && head.Outcome == a.e.Outcome &&
		details == a.details && bytes.Equal(head.PrevHash, a.e.PrevHash) && bytes.Equal(head.Hash, a.e.Hash)
}

// ListAudit returns the newest events first.
func (s *Store) ListAudit(ctx context.Context, limit int, profiles ...string) (out []store.AuditEvent, err error) {
	defer s.end("ListAudit", time.Now(), &err)
	if limit <= 0 {
		limit = 100
	}
	p := params{args: []any{limit}}
	where := ""
	if len(profiles) > 0 {
		where = ` WHERE profile IN (` + store.InList(profiles, p.add) + `)`
	}
	return list(ctx, s, `SELECT `+auditColumns+` FROM audit_events`+where+` ORDER BY seq DESC LIMIT $1`, s.scanAudit, p.args...)
}

// AuditAfter returns events after a sequence number, oldest first.
func (s *Store) AuditAfter(ctx context.Context, after int64, limit int) (out []store.AuditEvent, err error) {
	defer s.end("AuditAfter", time.Now(), &err)
	return list(ctx, s, `SELECT `+auditColumns+` FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`, s.scanAudit, after, limit)
}

// CheckIntegrity verifies cross-record consistency and the audit chain.
func (s *Store) CheckIntegrity(ctx context.Context) (r store.IntegrityReport, err error) {
	defer s.end("CheckIntegrity", time.Now(), &err)
	for _, c := range []struct {
		dst   *int
		query string
	}{
		{&r.Certificates, `SELECT count(*) FROM certificates`},
		{&r.Transactions, `SELECT count(*) FROM transactions`},
		{&r.AuditEvents, `SELECT count(*) FROM audit_events`},
	} {
		if err := s.row(ctx, nil, c.query).Scan(c.dst); err != nil {
			return r, fmt.Errorf("integrity: %w", err)
		}
	}
	for _, q := range store.IntegrityQueries {
		var n int
		if err := s.row(ctx, nil, q.Query).Scan(&n); err != nil {
			return r, fmt.Errorf("integrity: %w", err)
		}
		if n > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d %s", n, q.Problem))
		}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events ORDER BY seq`)
	if err != nil {
		return r, fmt.Errorf("integrity: %w", err)
	}
	defer rows.Close()
	v := store.ChainVerifier{Key: s.auditKey}
	for rows.Next() {
		e, err := s.scanAudit(rows)
		if err != nil {
			return r, fmt.Errorf("integrity: %w", err)
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

// ClaimSink takes or renews a sink's delivery lease. Replicas race on one
// conditional UPDATE: exactly one of them gets the row.
func (s *Store) ClaimSink(ctx context.Context, name, holder string, now, until time.Time) (cursor int64, ok bool, err error) {
	defer s.end("ClaimSink", time.Now(), &err)
	err = s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// WHERE true: SQLite reads ON CONFLICT after a bare SELECT as a join.
		if _, err := s.exec(ctx, tx, `INSERT INTO event_sinks (name, delivered_seq)
			SELECT $1, COALESCE(MAX(seq), 0) FROM audit_events WHERE true ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		err := s.row(ctx, tx, `UPDATE event_sinks SET holder = $2, lease_until = $3
			WHERE name = $1 AND (holder = $2 OR lease_until <= $4) RETURNING delivered_seq`, name, holder, s.d.Time(until), s.d.Time(now)).Scan(&cursor)
		if errors.Is(err, sql.ErrNoRows) { // held by another replica
			return s.row(ctx, tx, `SELECT delivered_seq FROM event_sinks WHERE name = $1`, name).Scan(&cursor)
		}
		ok = err == nil
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("claim sink %s: %w", name, err)
	}
	return cursor, ok, nil
}

// AdvanceSink moves a sink's cursor while holder holds its lease.
func (s *Store) AdvanceSink(ctx context.Context, name, holder string, seq int64) (err error) {
	defer s.end("AdvanceSink", time.Now(), &err)
	n, err := s.exec(ctx, nil, `UPDATE event_sinks SET delivered_seq = $3 WHERE name = $1 AND holder = $2 AND delivered_seq <= $3`, name, holder, seq)
	if err != nil {
		return fmt.Errorf("advance sink %s: %w", name, err)
	}
	if n != 1 {
		return fmt.Errorf("advance sink %s: lease lost: %w", name, store.ErrConflict)
	}
	return nil
}

// CreateSession stores a console session.
func (s *Store) CreateSession(ctx context.Context, se store.Session) (err error) {
	defer s.end("CreateSession", time.Now(), &err)
	seen := se.LastSeen
	if seen.IsZero() {
		seen = se.Created
	}
	_, err = s.exec(ctx, nil, `INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		se.IDHash, se.TokenID, se.CSRFHash, s.d.Time(se.Created), s.d.Time(se.Expires), s.d.Time(seen))
	return err
}

// GetSession returns an unexpired session.
func (s *Store) GetSession(ctx context.Context, idHash []byte, now time.Time) (se store.Session, err error) {
	defer s.end("GetSession", time.Now(), &err)
	se = store.Session{IDHash: idHash}
	err = s.row(ctx, nil, `SELECT token_id, csrf, created_at, expires_at, COALESCE(last_seen_at, created_at), flash IS NOT NULL
		FROM console_sessions WHERE id_hash = $1 AND expires_at > $2`, idHash, s.d.Time(now)).
		Scan(&se.TokenID, &se.CSRFHash, s.tm(&se.Created), s.tm(&se.Expires), s.tm(&se.LastSeen), &se.HasFlash)
	return se, err
}

// DeleteSessions removes one session, or the expired ones when idHash is nil.
func (s *Store) DeleteSessions(ctx context.Context, idHash []byte, now time.Time) (err error) {
	defer s.end("DeleteSessions", time.Now(), &err)
	if idHash != nil {
		_, err = s.exec(ctx, nil, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash)
	} else {
		_, err = s.exec(ctx, nil, `DELETE FROM console_sessions WHERE expires_at <= $1`, s.d.Time(now))
	}
	return err
}

// TouchSession records a session's latest request.
func (s *Store) TouchSession(ctx context.Context, idHash []byte, at time.Time) (err error) {
	defer s.end("TouchSession", time.Now(), &err)
	_, err = s.exec(ctx, nil, `UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2`, s.d.Time(at), idHash)
	return err
}

// PutSessionFlash keeps a note for a session's next page.
func (s *Store) PutSessionFlash(ctx context.Context, idHash, flash []byte) (err error) {
	defer s.end("PutSessionFlash", time.Now(), &err)
	_, err = s.exec(ctx, nil, `UPDATE console_sessions SET flash = $1 WHERE id_hash = $2`, flash, idHash)
	return err
}

// TakeSessionFlash returns a session's note and removes it, in one write
// transaction: a concurrent taker waits for the row and finds none.
func (s *Store) TakeSessionFlash(ctx context.Context, idHash []byte) (flash []byte, err error) {
	defer s.end("TakeSessionFlash", time.Now(), &err)
	err = s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		err := s.row(ctx, tx, `SELECT flash FROM console_sessions WHERE id_hash = $1 AND flash IS NOT NULL`+s.d.ForUpdate, idHash).Scan(&flash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `UPDATE console_sessions SET flash = NULL WHERE id_hash = $1`, idHash)
		return err
	})
	return flash, err
}
