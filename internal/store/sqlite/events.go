package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// ClaimSink takes or renews a sink's delivery lease.
func (s *Store) ClaimSink(ctx context.Context, name, holder string, now, until time.Time) (int64, bool, error) {
	var cursor int64
	var ok bool
	err := s.tx(ctx, "claim sink "+name, func(tx *sql.Tx) error {
		var cur int64
		var h, lease string
		err := tx.QueryRowContext(ctx, `SELECT delivered_seq, holder, lease_until FROM event_sinks WHERE name = ?`, name).Scan(&cur, &h, &lease)
		if errors.Is(err, sql.ErrNoRows) {
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_events`).Scan(&cur); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO event_sinks (name, delivered_seq, holder, lease_until) VALUES (?, ?, ?, ?)`,
				name, cur, holder, fmtTime(until)); err != nil {
				return mapErr(err)
			}
			cursor, ok = cur, true
			return nil
		}
		if err != nil {
			return err
		}
		if h != holder && lease > fmtTime(now) {
			cursor = cur
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE event_sinks SET holder = ?, lease_until = ? WHERE name = ?`, holder, fmtTime(until), name); err != nil {
			return err
		}
		cursor, ok = cur, true
		return nil
	})
	return cursor, ok, err
}

// AdvanceSink moves a sink's cursor while holder holds its lease.
func (s *Store) AdvanceSink(ctx context.Context, name, holder string, seq int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE event_sinks SET delivered_seq = ? WHERE name = ? AND holder = ? AND delivered_seq <= ?`, seq, name, holder, seq)
	if err != nil {
		return fmt.Errorf("sqlite: advance sink %s: %w", name, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("sqlite: advance sink %s: lease lost: %w", name, store.ErrConflict)
	}
	return nil
}

// DueExpiryNotices lists certificates a threshold's notice is due for.
func (s *Store) DueExpiryNotices(ctx context.Context, profileID string, before time.Duration, now time.Time, limit int) ([]store.Certificate, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+certColumns+` FROM certificates c
		WHERE c.profile_id = ? AND c.status = ? AND c.not_after > ? AND c.not_after <= ?
		AND NOT EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_serial = c.serial)
		AND NOT EXISTS (SELECT 1 FROM expiry_notices n WHERE n.serial = c.serial AND n.before_seconds = ?)
		ORDER BY c.not_after LIMIT ?`,
		profileID, store.CertValid, fmtTime(now), fmtTime(now.Add(before)), int64(before/time.Second), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due expiry notices: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: due expiry notices: %w", err)
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}

// RecordExpiryNotice records a certificate's notices once.
func (s *Store) RecordExpiryNotice(ctx context.Context, serial string, thresholds []time.Duration, at time.Time, audit *store.AuditEvent) (bool, error) {
	var first bool
	err := s.tx(ctx, "expiry notice "+serial, func(tx *sql.Tx) error {
		for i, t := range thresholds {
			res, err := tx.ExecContext(ctx, `INSERT INTO expiry_notices (serial, before_seconds, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				serial, int64(t/time.Second), fmtTime(at))
			if err != nil {
				return mapErr(err)
			}
			if i == 0 {
				n, _ := res.RowsAffected()
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
