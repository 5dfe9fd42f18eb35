package postgres

import (
	"context"
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
	if _, err := s.pool.Exec(ctx, `INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		se.IDHash, se.TokenID, se.CSRFHash, se.Created, se.Expires, seen); err != nil {
		return fmt.Errorf("postgres: create session: %w", mapErr(err))
	}
	return nil
}

// GetSession returns an unexpired session.
func (s *Store) GetSession(ctx context.Context, idHash []byte, now time.Time) (store.Session, error) {
	se := store.Session{IDHash: idHash}
	err := s.pool.QueryRow(ctx, `SELECT token_id, csrf, created_at, expires_at, COALESCE(last_seen_at, created_at), flash IS NOT NULL
		FROM console_sessions WHERE id_hash = $1 AND expires_at > $2`,
		idHash, now).Scan(&se.TokenID, &se.CSRFHash, &se.Created, &se.Expires, &se.LastSeen, &se.HasFlash)
	if err != nil {
		return se, fmt.Errorf("postgres: session: %w", mapErr(err))
	}
	se.Created, se.Expires, se.LastSeen = se.Created.UTC(), se.Expires.UTC(), se.LastSeen.UTC()
	return se, nil
}

// DeleteSessions removes one session, or the expired ones when idHash is nil.
func (s *Store) DeleteSessions(ctx context.Context, idHash []byte, now time.Time) error {
	var err error
	if idHash != nil {
		_, err = s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash)
	} else {
		_, err = s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, now)
	}
	if err != nil {
		return fmt.Errorf("postgres: delete sessions: %w", mapErr(err))
	}
	return nil
}

// TouchSession records a session's latest request.
func (s *Store) TouchSession(ctx context.Context, idHash []byte, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2`, at, idHash); err != nil {
		return fmt.Errorf("postgres: touch session: %w", mapErr(err))
	}
	return nil
}

// PutSessionFlash keeps a note for a session's next page.
func (s *Store) PutSessionFlash(ctx context.Context, idHash, flash []byte) error {
	if _, err := s.pool.Exec(ctx, `UPDATE console_sessions SET flash = $1 WHERE id_hash = $2`, flash, idHash); err != nil {
		return fmt.Errorf("postgres: session flash: %w", mapErr(err))
	}
	return nil
}

// TakeSessionFlash returns a session's note and removes it in one
// statement: the row lock makes a concurrent taker wait and find none.
func (s *Store) TakeSessionFlash(ctx context.Context, idHash []byte) ([]byte, error) {
	var flash []byte
	err := s.pool.QueryRow(ctx, `UPDATE console_sessions c SET flash = NULL
		FROM (SELECT id_hash, flash FROM console_sessions WHERE id_hash = $1 AND flash IS NOT NULL FOR UPDATE) old
		WHERE c.id_hash = old.id_hash RETURNING old.flash`, idHash).Scan(&flash)
	if err != nil {
		if err = mapErr(err); errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("postgres: take session flash: %w", err)
	}
	return flash, nil
}

// IssuedPerDay counts issued certificates per UTC day and profile.
func (s *Store) IssuedPerDay(ctx context.Context, since time.Time) ([]store.DayCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, profile_id, count(*) FROM certificates
		WHERE created_at >= $1 GROUP BY day, profile_id ORDER BY day, profile_id`, since)
	if err != nil {
		return nil, fmt.Errorf("postgres: issued per day: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.DayCount
	for rows.Next() {
		var d store.DayCount
		if err := rows.Scan(&d.Day, &d.ProfileID, &d.Count); err != nil {
			return nil, fmt.Errorf("postgres: issued per day: %w", mapErr(err))
		}
		out = append(out, d)
	}
	return out, mapErr(rows.Err())
}

// ChallengeCounts counts a profile's one-time challenges by state.
func (s *Store) ChallengeCounts(ctx context.Context, profileID string, now time.Time) (pending, used, expired int, err error) {
	err = s.pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE used_at IS NULL AND expires_at > $2),
		count(*) FILTER (WHERE used_at IS NOT NULL),
		count(*) FILTER (WHERE used_at IS NULL AND expires_at <= $2)
		FROM challenges WHERE profile_id = $1`, profileID, now).Scan(&pending, &used, &expired)
	if err != nil {
		err = fmt.Errorf("postgres: challenge counts: %w", mapErr(err))
	}
	return
}
