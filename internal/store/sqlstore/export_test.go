package sqlstore

import (
	"context"
	"database/sql"
	"time"
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

// SetCommitWait sets the group's usual time from an announced write to
// its arrival, and the longest wait for one.
func SetCommitWait(s *Store, lag, max time.Duration) {
	s.group.lag.Store(int64(lag))
	s.group.maxWait = max
}

// Leading reports whether a caller leads a group (or waits to begin one).
func Leading(s *Store) bool {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return s.group.leading
}

// Announced is the number of writes announced and of those settled.
func Announced(s *Store) (announced, settled int64) {
	return s.group.announced.Load(), s.group.settled.Load()
}
