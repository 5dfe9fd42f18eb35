package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// CreateSession stores a console session.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	seen := se.LastSeen
	if seen.IsZero() {
		seen = se.Created
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)`,
		se.IDHash, se.TokenID, se.CSRFHash, fmtTime(se.Created), fmtTime(se.Expires), fmtTime(seen)); err != nil {
		return fmt.Errorf("sqlite: create session: %w", mapErr(err))
	}
	return nil
}

// GetSession returns an unexpired session.
func (s *Store) GetSession(ctx context.Context, idHash []byte, now time.Time) (store.Session, error) {
	se := store.Session{IDHash: idHash}
	var created, expires, seen string
	err := s.db.QueryRowContext(ctx, `SELECT token_id, csrf, created_at, expires_at, COALESCE(last_seen_at, created_at), flash IS NOT NULL
		FROM console_sessions WHERE id_hash = ? AND expires_at > ?`,
		idHash, fmtTime(now)).Scan(&se.TokenID, &se.CSRFHash, &created, &expires, &seen, &se.HasFlash)
	if err != nil {
		return se, fmt.Errorf("sqlite: session: %w", mapErr(err))
	}
	if se.Created, err = parseTime(created); err == nil {
		if se.Expires, err = parseTime(expires); err == nil {
			se.LastSeen, err = parseTime(seen)
		}
	}
	return se, err
}

// DeleteSessions removes one session, or the expired ones when idHash is nil.
func (s *Store) DeleteSessions(ctx context.Context, idHash []byte, now time.Time) error {
	var err error
	if idHash != nil {
		_, err = s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash)
	} else {
		_, err = s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at <= ?`, fmtTime(now))
	}
	if err != nil {
		return fmt.Errorf("sqlite: delete sessions: %w", mapErr(err))
	}
	return nil
}

// TouchSession records a session's latest request.
func (s *Store) TouchSession(ctx context.Context, idHash []byte, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?`, fmtTime(at), idHash); err != nil {
		return fmt.Errorf("sqlite: touch session: %w", mapErr(err))
	}
	return nil
}

// PutSessionFlash keeps a note for a session's next page.
func (s *Store) PutSessionFlash(ctx context.Context, idHash, flash []byte) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE console_sessions SET flash = ? WHERE id_hash = ?`, flash, idHash); err != nil {
		return fmt.Errorf("sqlite: session flash: %w", mapErr(err))
	}
	return nil
}

// TakeSessionFlash returns a session's note and removes it, in one write
// transaction.
func (s *Store) TakeSessionFlash(ctx context.Context, idHash []byte) ([]byte, error) {
	var flash []byte
	err := s.tx(ctx, "take session flash", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT flash FROM console_sessions WHERE id_hash = ? AND flash IS NOT NULL`, idHash).Scan(&flash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return mapErr(err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE console_sessions SET flash = NULL WHERE id_hash = ?`, idHash)
		return mapErr(err)
	})
	return flash, err
}

// IssuedPerDay counts issued certificates per UTC day and profile.
func (s *Store) IssuedPerDay(ctx context.Context, since time.Time) ([]store.DayCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT substr(created_at, 1, 10) AS day, profile_id, count(*) FROM certificates
		WHERE created_at >= ? GROUP BY day, profile_id ORDER BY day, profile_id`, fmtTime(since))
	if err != nil {
		return nil, fmt.Errorf("sqlite: issued per day: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.DayCount
	for rows.Next() {
		var d store.DayCount
		if err := rows.Scan(&d.Day, &d.ProfileID, &d.Count); err != nil {
			return nil, fmt.Errorf("sqlite: issued per day: %w", err)
		}
		out = append(out, d)
	}
	return out, mapErr(rows.Err())
}

// ChallengeCounts counts a profile's one-time challenges by state.
func (s *Store) ChallengeCounts(ctx context.Context, profileID string, now time.Time) (pending, used, expired int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN used_at IS NULL AND expires_at > ? THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN used_at IS NOT NULL THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN used_at IS NULL AND expires_at <= ? THEN 1 ELSE 0 END), 0)
		FROM challenges WHERE profile_id = ?`, fmtTime(now), fmtTime(now), profileID).Scan(&pending, &used, &expired)
	if err != nil {
		err = fmt.Errorf("sqlite: challenge counts: %w", mapErr(err))
	}
	return
}
