package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// The queries of the console and the API that find and count: their SQL
// is in store (listsql.go), shared with the query-plan tests.

// CountCertificates counts the certificates f selects, over all pages.
func (s *Store) CountCertificates(ctx context.Context, f store.CertificateFilter) (n int, err error) {
	defer s.end("CountCertificates", time.Now(), &err)
	q, args := store.CountCertificatesSQL(f, s.d.List)
	err = s.db.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

// PendingChallenges lists a profile's pending one-time challenges, newest
// first.
func (s *Store) PendingChallenges(ctx context.Context, profileID string, now time.Time, limit int) (out []store.Challenge, err error) {
	defer s.end("PendingChallenges", time.Now(), &err)
	return list(ctx, s, store.PendingChallengesSQL(s.d.List), func(r scanner) (store.Challenge, error) {
		c := store.Challenge{ProfileID: profileID}
		var reserved sql.NullString
		err := r.Scan(&c.Hash, s.tm(&c.Created), s.tm(&c.Expires), &reserved, &c.BoundTo, &c.Note)
		c.ReservedBy = reserved.String
		return c, err
	}, profileID, s.d.Time(now), limit)
}

// CancelChallenge deletes a pending one-time challenge no request holds.
func (s *Store) CancelChallenge(ctx context.Context, profileID string, hash []byte) (err error) {
	defer s.end("CancelChallenge", time.Now(), &err)
	n, err := s.exec(ctx, nil, store.CancelChallengeSQL(s.d.List), profileID, hash)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no pending challenge of profile %q: %w", profileID, store.ErrNotFound)
	}
	return nil
}

// EnrollFailures counts refused enrollments since a time by failInfo and
// reason.
func (s *Store) EnrollFailures(ctx context.Context, since time.Time, profiles []string) (out []store.FailureCount, err error) {
	defer s.end("EnrollFailures", time.Now(), &err)
	q, args := store.EnrollFailuresSQL(since, profiles, s.d.List)
	return list(ctx, s, q, func(r scanner) (store.FailureCount, error) {
		var f store.FailureCount
		err := r.Scan(&f.FailInfo, &f.Reason, &f.Count)
		return f, err
	}, args...)
}

// RequestedBy is the actor of a request's first enrollment audit event
// ("" when none is recorded).
func (s *Store) RequestedBy(ctx context.Context, profileID, transactionID string) (actor string, err error) {
	defer s.end("RequestedBy", time.Now(), &err)
	err = s.db.QueryRowContext(ctx, store.RequestedBySQL(s.d.List), "transaction:"+transactionID, profileID).Scan(&actor)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return actor, err
}
