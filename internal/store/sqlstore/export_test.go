package sqlstore

import (
	"context"
	"database/sql"
)

// Queued is the number of callers queued for a group and the
// number groups took so far.
func Queued(s *Store) (waiting, taken int) {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue), int(s.group.taken.Load())
}

// Write runs fn as a write transaction of s.
func Write(ctx context.Context, s *Store, fn func(context.Context, *sql.Tx) error) error {
	return s.tx(ctx, fn)
}
