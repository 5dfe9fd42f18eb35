package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepd/scepd/internal/store"
)

// ClaimSink takes or renews a sink's delivery lease. Replicas race on one
// conditional UPDATE: exactly one of them gets the row.
func (s *Store) ClaimSink(ctx context.Context, name, holder string, now, until time.Time) (int64, bool, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO event_sinks (name, delivered_seq)
		SELECT $1, COALESCE(MAX(seq), 0) FROM audit_events ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return 0, false, fmt.Errorf("postgres: claim sink %s: %w", name, mapErr(err))
	}
	var cursor int64
	err := s.pool.QueryRow(ctx, `UPDATE event_sinks SET holder = $2, lease_until = $3
		WHERE name = $1 AND (holder = $2 OR lease_until <= $4) RETURNING delivered_seq`, name, holder, until, now).Scan(&cursor)
	if errors.Is(err, pgx.ErrNoRows) { // held by another replica
		if err := s.pool.QueryRow(ctx, `SELECT delivered_seq FROM event_sinks WHERE name = $1`, name).Scan(&cursor); err != nil {
			return 0, false, fmt.Errorf("postgres: claim sink %s: %w", name, mapErr(err))
		}
		return cursor, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres: claim sink %s: %w", name, mapErr(err))
	}
	return cursor, true, nil
}

// AdvanceSink moves a sink's cursor while holder holds its lease.
func (s *Store) AdvanceSink(ctx context.Context, name, holder string, seq int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE event_sinks SET delivered_seq = $3 WHERE name = $1 AND holder = $2 AND delivered_seq <= $3`, name, holder, seq)
	if err != nil {
		return fmt.Errorf("postgres: advance sink %s: %w", name, mapErr(err))
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("postgres: advance sink %s: lease lost: %w", name, store.ErrConflict)
	}
	return nil
}

// DueExpiryNotices lists certificates a threshold's notice is due for.
func (s *Store) DueExpiryNotices(ctx context.Context, profileID string, before time.Duration, now time.Time, limit int) ([]store.Certificate, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+certColumns+` FROM certificates c
		WHERE c.profile_id = $1 AND c.status = $2 AND c.not_after > $3 AND c.not_after <= $4
		AND NOT EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_serial = c.serial)
		AND NOT EXISTS (SELECT 1 FROM expiry_notices n WHERE n.serial = c.serial AND n.before_seconds = $5)
		ORDER BY c.not_after LIMIT $6`,
		profileID, store.CertValid, now, now.Add(before), int64(before/time.Second), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due expiry notices: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: due expiry notices: %w", mapErr(err))
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}

// RecordExpiryNotice records a certificate's notices once; concurrent
// replicas conflict on the primary key and only one appends the event.
func (s *Store) RecordExpiryNotice(ctx context.Context, serial string, thresholds []time.Duration, at time.Time, audit *store.AuditEvent) (bool, error) {
	var first bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i, t := range thresholds {
			tag, err := tx.Exec(ctx, `INSERT INTO expiry_notices (serial, before_seconds, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				serial, int64(t/time.Second), at)
			if err != nil {
				return err
			}
			if i == 0 {
				first = tag.RowsAffected() == 1
			}
		}
		if first && audit != nil {
			return s.appendAudit(ctx, tx, *audit)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres: expiry notice %s: %w", serial, mapErr(err))
	}
	return first, nil
}
