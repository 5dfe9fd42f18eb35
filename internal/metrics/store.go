package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scepd/scepd/internal/store"
)

// Instrument wraps a store so every call is timed in
// scepd_store_seconds{op} and unexpected errors are counted in
// scepd_store_errors_total{op}. Domain outcomes (not found, conflict,
// challenge spent, limit, superseded) are answers, not errors, and are not counted.
//
// The type does not embed store.Store: a method added to the interface
// and not wrapped here is a compile error, not a silently unmeasured call.
func (m *Metrics) Instrument(st store.Store) store.Store {
	return &instrumented{st: st, m: m}
}

type instrumented struct {
	st store.Store
	m  *Metrics
}

func (s *instrumented) record(op string, start time.Time, err error) {
	s.m.storeSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) &&
		!errors.Is(err, store.ErrChallengeSpent) && !errors.Is(err, store.ErrLimit) && !errors.Is(err, store.ErrSuperseded) &&
		!errors.Is(err, context.Canceled) {
		s.m.storeErrors.WithLabelValues(op).Inc()
	}
}

func newStoreCollectors() (*prometheus.HistogramVec, *prometheus.CounterVec) {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scepd_store_seconds",
			Help:    "Time of each database operation, by operation.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 5},
		}, []string{"op"}),
		prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scepd_store_errors_total",
			Help: "Database operations that failed (not counting not-found, conflict, spent-challenge and limit answers), by operation.",
		}, []string{"op"})
}

// Close closes the wrapped store.
func (s *instrumented) Close() error { return s.st.Close() }

func (s *instrumented) CreateCA(ctx context.Context, ca store.CA) error {
	start := time.Now()
	err := s.st.CreateCA(ctx, ca)
	s.record("CreateCA", start, err)
	return err
}

func (s *instrumented) GetCA(ctx context.Context, id string) (store.CA, error) {
	start := time.Now()
	r0, err := s.st.GetCA(ctx, id)
	s.record("GetCA", start, err)
	return r0, err
}

func (s *instrumented) ListCAs(ctx context.Context) ([]store.CA, error) {
	start := time.Now()
	r0, err := s.st.ListCAs(ctx)
	s.record("ListCAs", start, err)
	return r0, err
}

func (s *instrumented) CreateProfile(ctx context.Context, p store.Profile) error {
	start := time.Now()
	err := s.st.CreateProfile(ctx, p)
	s.record("CreateProfile", start, err)
	return err
}

func (s *instrumented) GetProfile(ctx context.Context, id string) (store.Profile, error) {
	start := time.Now()
	r0, err := s.st.GetProfile(ctx, id)
	s.record("GetProfile", start, err)
	return r0, err
}

func (s *instrumented) UpdateProfile(ctx context.Context, p store.Profile) error {
	start := time.Now()
	err := s.st.UpdateProfile(ctx, p)
	s.record("UpdateProfile", start, err)
	return err
}

func (s *instrumented) ListProfiles(ctx context.Context) ([]store.Profile, error) {
	start := time.Now()
	r0, err := s.st.ListProfiles(ctx)
	s.record("ListProfiles", start, err)
	return r0, err
}

func (s *instrumented) GetTransaction(ctx context.Context, profileID, transactionID string) (store.Transaction, error) {
	start := time.Now()
	r0, err := s.st.GetTransaction(ctx, profileID, transactionID)
	s.record("GetTransaction", start, err)
	return r0, err
}

func (s *instrumented) ListTransactions(ctx context.Context, f store.TransactionFilter) ([]store.Transaction, error) {
	start := time.Now()
	r0, err := s.st.ListTransactions(ctx, f)
	s.record("ListTransactions", start, err)
	return r0, err
}

func (s *instrumented) LatestRequest(ctx context.Context, profileID, clientID string, keySHA256 []byte) (store.Transaction, error) {
	start := time.Now()
	r0, err := s.st.LatestRequest(ctx, profileID, clientID, keySHA256)
	s.record("LatestRequest", start, err)
	return r0, err
}

func (s *instrumented) RecordPending(ctx context.Context, t store.Transaction, audit store.AuditEvent) error {
	start := time.Now()
	err := s.st.RecordPending(ctx, t, audit)
	s.record("RecordPending", start, err)
	return err
}

func (s *instrumented) RejectPending(ctx context.Context, profileID, transactionID, decidedBy, reason string, at time.Time, audit store.AuditEvent) error {
	start := time.Now()
	err := s.st.RejectPending(ctx, profileID, transactionID, decidedBy, reason, at, audit)
	s.record("RejectPending", start, err)
	return err
}

func (s *instrumented) ExpirePending(ctx context.Context, now time.Time) (int, error) {
	start := time.Now()
	r0, err := s.st.ExpirePending(ctx, now)
	s.record("ExpirePending", start, err)
	return r0, err
}

func (s *instrumented) RecordIssued(ctx context.Context, rec store.Issued) error {
	start := time.Now()
	err := s.st.RecordIssued(ctx, rec)
	s.record("RecordIssued", start, err)
	return err
}

func (s *instrumented) GetCertificate(ctx context.Context, serial string) (store.Certificate, error) {
	start := time.Now()
	r0, err := s.st.GetCertificate(ctx, serial)
	s.record("GetCertificate", start, err)
	return r0, err
}

func (s *instrumented) ListCertificates(ctx context.Context, f store.CertificateFilter) ([]store.Certificate, error) {
	start := time.Now()
	r0, err := s.st.ListCertificates(ctx, f)
	s.record("ListCertificates", start, err)
	return r0, err
}

func (s *instrumented) CountCertificates(ctx context.Context, f store.CertificateFilter) (int, error) {
	start := time.Now()
	r0, err := s.st.CountCertificates(ctx, f)
	s.record("CountCertificates", start, err)
	return r0, err
}

func (s *instrumented) PendingChallenges(ctx context.Context, profileID string, now time.Time, limit int) ([]store.Challenge, error) {
	start := time.Now()
	r0, err := s.st.PendingChallenges(ctx, profileID, now, limit)
	s.record("PendingChallenges", start, err)
	return r0, err
}

func (s *instrumented) CancelChallenge(ctx context.Context, profileID string, hash []byte) error {
	start := time.Now()
	err := s.st.CancelChallenge(ctx, profileID, hash)
	s.record("CancelChallenge", start, err)
	return err
}

func (s *instrumented) EnrollFailures(ctx context.Context, since time.Time, profiles []string) ([]store.FailureCount, error) {
	start := time.Now()
	r0, err := s.st.EnrollFailures(ctx, since, profiles)
	s.record("EnrollFailures", start, err)
	return r0, err
}

func (s *instrumented) RequestedBy(ctx context.Context, profileID, transactionID string) (string, error) {
	start := time.Now()
	r0, err := s.st.RequestedBy(ctx, profileID, transactionID)
	s.record("RequestedBy", start, err)
	return r0, err
}

func (s *instrumented) CertificateStats(ctx context.Context, now time.Time, expiringWithin time.Duration) ([]store.CertificateStat, error) {
	start := time.Now()
	r0, err := s.st.CertificateStats(ctx, now, expiringWithin)
	s.record("CertificateStats", start, err)
	return r0, err
}

func (s *instrumented) RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time, audit store.AuditEvent) error {
	start := time.Now()
	err := s.st.RevokeCertificate(ctx, serial, reason, at, audit)
	s.record("RevokeCertificate", start, err)
	return err
}

func (s *instrumented) ListRevoked(ctx context.Context, caID string) ([]store.Revoked, error) {
	start := time.Now()
	r0, err := s.st.ListRevoked(ctx, caID)
	s.record("ListRevoked", start, err)
	return r0, err
}

func (s *instrumented) NextCRLNumber(ctx context.Context, caID string) (int64, error) {
	start := time.Now()
	r0, err := s.st.NextCRLNumber(ctx, caID)
	s.record("NextCRLNumber", start, err)
	return r0, err
}

func (s *instrumented) SaveCRL(ctx context.Context, c store.CRL) error {
	start := time.Now()
	err := s.st.SaveCRL(ctx, c)
	s.record("SaveCRL", start, err)
	return err
}

func (s *instrumented) LatestCRL(ctx context.Context, caID string) (store.CRL, error) {
	start := time.Now()
	r0, err := s.st.LatestCRL(ctx, caID)
	s.record("LatestCRL", start, err)
	return r0, err
}

func (s *instrumented) RevocationGeneration(ctx context.Context, caID string) (int64, error) {
	start := time.Now()
	r0, err := s.st.RevocationGeneration(ctx, caID)
	s.record("RevocationGeneration", start, err)
	return r0, err
}

func (s *instrumented) CreateChallenge(ctx context.Context, c store.Challenge, maxPending int) error {
	start := time.Now()
	err := s.st.CreateChallenge(ctx, c, maxPending)
	s.record("CreateChallenge", start, err)
	return err
}

func (s *instrumented) GetChallenge(ctx context.Context, profileID string, hash []byte) (store.Challenge, error) {
	start := time.Now()
	r0, err := s.st.GetChallenge(ctx, profileID, hash)
	s.record("GetChallenge", start, err)
	return r0, err
}

func (s *instrumented) PurgeChallenges(ctx context.Context, t time.Time) (int, error) {
	start := time.Now()
	r0, err := s.st.PurgeChallenges(ctx, t)
	s.record("PurgeChallenges", start, err)
	return r0, err
}

func (s *instrumented) PutEntity(ctx context.Context, e store.Entity) error {
	start := time.Now()
	err := s.st.PutEntity(ctx, e)
	s.record("PutEntity", start, err)
	return err
}

func (s *instrumented) GetEntity(ctx context.Context, profileID, username string) (store.Entity, error) {
	start := time.Now()
	r0, err := s.st.GetEntity(ctx, profileID, username)
	s.record("GetEntity", start, err)
	return r0, err
}

func (s *instrumented) ListEntities(ctx context.Context, profileID string) ([]store.Entity, error) {
	start := time.Now()
	r0, err := s.st.ListEntities(ctx, profileID)
	s.record("ListEntities", start, err)
	return r0, err
}

func (s *instrumented) CreateToken(ctx context.Context, t store.Token) error {
	start := time.Now()
	err := s.st.CreateToken(ctx, t)
	s.record("CreateToken", start, err)
	return err
}

func (s *instrumented) GetToken(ctx context.Context, id string) (store.Token, error) {
	start := time.Now()
	r0, err := s.st.GetToken(ctx, id)
	s.record("GetToken", start, err)
	return r0, err
}

func (s *instrumented) ListTokens(ctx context.Context) ([]store.Token, error) {
	start := time.Now()
	r0, err := s.st.ListTokens(ctx)
	s.record("ListTokens", start, err)
	return r0, err
}

func (s *instrumented) RevokeToken(ctx context.Context, id string, at time.Time) error {
	start := time.Now()
	err := s.st.RevokeToken(ctx, id, at)
	s.record("RevokeToken", start, err)
	return err
}

func (s *instrumented) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	start := time.Now()
	err := s.st.AppendAudit(ctx, e)
	s.record("AppendAudit", start, err)
	return err
}

func (s *instrumented) ListAudit(ctx context.Context, limit int, profiles ...string) ([]store.AuditEvent, error) {
	start := time.Now()
	r0, err := s.st.ListAudit(ctx, limit, profiles...)
	s.record("ListAudit", start, err)
	return r0, err
}

func (s *instrumented) AuditAfter(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	start := time.Now()
	r0, err := s.st.AuditAfter(ctx, after, limit)
	s.record("AuditAfter", start, err)
	return r0, err
}

func (s *instrumented) ClaimSink(ctx context.Context, name, holder string, now, until time.Time) (int64, bool, error) {
	start := time.Now()
	r0, r1, err := s.st.ClaimSink(ctx, name, holder, now, until)
	s.record("ClaimSink", start, err)
	return r0, r1, err
}

func (s *instrumented) AdvanceSink(ctx context.Context, name, holder string, seq int64) error {
	start := time.Now()
	err := s.st.AdvanceSink(ctx, name, holder, seq)
	s.record("AdvanceSink", start, err)
	return err
}

func (s *instrumented) DueExpiryNotices(ctx context.Context, profileID string, before time.Duration, now time.Time, limit int) ([]store.Certificate, error) {
	start := time.Now()
	r0, err := s.st.DueExpiryNotices(ctx, profileID, before, now, limit)
	s.record("DueExpiryNotices", start, err)
	return r0, err
}

func (s *instrumented) RecordExpiryNotice(ctx context.Context, serial string, thresholds []time.Duration, at time.Time, audit *store.AuditEvent) (bool, error) {
	start := time.Now()
	r0, err := s.st.RecordExpiryNotice(ctx, serial, thresholds, at, audit)
	s.record("RecordExpiryNotice", start, err)
	return r0, err
}

func (s *instrumented) CreateSession(ctx context.Context, se store.Session) error {
	start := time.Now()
	err := s.st.CreateSession(ctx, se)
	s.record("CreateSession", start, err)
	return err
}

func (s *instrumented) GetSession(ctx context.Context, idHash []byte, now time.Time) (store.Session, error) {
	start := time.Now()
	r0, err := s.st.GetSession(ctx, idHash, now)
	s.record("GetSession", start, err)
	return r0, err
}

func (s *instrumented) DeleteSessions(ctx context.Context, idHash []byte, now time.Time) error {
	start := time.Now()
	err := s.st.DeleteSessions(ctx, idHash, now)
	s.record("DeleteSessions", start, err)
	return err
}

func (s *instrumented) TouchSession(ctx context.Context, idHash []byte, at time.Time) error {
	start := time.Now()
	err := s.st.TouchSession(ctx, idHash, at)
	s.record("TouchSession", start, err)
	return err
}

func (s *instrumented) PutSessionFlash(ctx context.Context, idHash, flash []byte) error {
	start := time.Now()
	err := s.st.PutSessionFlash(ctx, idHash, flash)
	s.record("PutSessionFlash", start, err)
	return err
}

func (s *instrumented) TakeSessionFlash(ctx context.Context, idHash []byte) ([]byte, error) {
	start := time.Now()
	r0, err := s.st.TakeSessionFlash(ctx, idHash)
	s.record("TakeSessionFlash", start, err)
	return r0, err
}

func (s *instrumented) IssuedPerDay(ctx context.Context, since time.Time) ([]store.DayCount, error) {
	start := time.Now()
	r0, err := s.st.IssuedPerDay(ctx, since)
	s.record("IssuedPerDay", start, err)
	return r0, err
}

func (s *instrumented) ChallengeCounts(ctx context.Context, profileID string, now time.Time) (int, int, int, error) {
	start := time.Now()
	r0, r1, r2, err := s.st.ChallengeCounts(ctx, profileID, now)
	s.record("ChallengeCounts", start, err)
	return r0, r1, r2, err
}

func (s *instrumented) CheckIntegrity(ctx context.Context) (store.IntegrityReport, error) {
	start := time.Now()
	r0, err := s.st.CheckIntegrity(ctx)
	s.record("CheckIntegrity", start, err)
	return r0, err
}

func (s *instrumented) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.st.Ping(ctx)
	s.record("Ping", start, err)
	return err
}
