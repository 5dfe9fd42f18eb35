// Package enroll is the enrollment use case: a decrypted SCEP request in,
// a decision and a certificate out. It ties challenge validation, policy,
// signing and storage together; the HTTP layer stays thin around it.
package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"sync"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/ratelimit"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/store"
)

// Store is the persistence enrollment needs.
type Store interface {
	GetTransaction(ctx context.Context, profileID, transactionID string) (store.Transaction, error)
	GetCertificate(ctx context.Context, serial string) (store.Certificate, error)
	RecordIssued(ctx context.Context, rec store.Issued) error
	RecordPending(ctx context.Context, t store.Transaction, audit store.AuditEvent) error
	RejectPending(ctx context.Context, profileID, transactionID, decidedBy, reason string, at time.Time, audit store.AuditEvent) error
	RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time, audit store.AuditEvent) error
	AppendAudit(ctx context.Context, e store.AuditEvent) error
}

// Profile is what enrollment knows of one SCEP endpoint.
type Profile struct {
	ID   string
	CAID string
	CA   *ca.CA
	// Predecessor is the CA the profile issued under before a rollover;
	// its certificates still authenticate renewals.
	Predecessor *ca.CA
	Policy      *ca.Policy
	Challenge   challenge.Validator
	Renewal     Renewal
	// Manual approval: valid requests wait as PENDING for an operator.
	Manual     bool
	PendingTTL time.Duration
}

// Renewal is a profile's renewal policy (see config.Renewal).
type Renewal struct {
	Disabled           bool
	Window             float64
	AllowKeyReuse      bool
	RevokeOld          bool
	AllowSubjectChange bool
}

// Request is one decrypted PKCSReq or RenewalReq.
type Request struct {
	TransactionID string
	CSR           *x509.CertificateRequest
	// Password is the CSR's challengePassword; it is never logged or stored.
	Password string
	// Renewal is set for a RenewalReq; Signer is the certificate that
	// signed the request. A PKCSReq signed with a certificate this profile's
	// CA issued is a renewal too (sscep renews that way).
	Renewal    bool
	Signer     *x509.Certificate
	RemoteAddr string
	// SenderNonce is the message's senderNonce: a transaction is refused if
	// another one was created by a message with the same nonce (a replay).
	SenderNonce []byte
}

// errNonceReused is what a client hears when its senderNonce created
// another transaction: a replayed or forged message, or a broken RNG.
var errNonceReused = reject(scep.BadRequest, "senderNonce was already used by another transaction (replayed message?)")

// Rejection is an enrollment refused for a reason the client may be told:
// the HTTP layer turns it into a signed CertRep FAILURE.
type Rejection struct {
	FailInfo scep.FailInfo
	// Reason is safe to send to the client and to log: no secrets.
	Reason string
}

func (r *Rejection) Error() string { return "enrollment rejected: " + r.Reason }

func reject(fi scep.FailInfo, format string, args ...any) *Rejection {
	return &Rejection{FailInfo: fi, Reason: fmt.Sprintf(format, args...)}
}

// Service runs enrollments.
type Service struct {
	store    Store
	now      func() time.Time
	log      *slog.Logger
	failures *ratelimit.Window
	// OnLimit, when set, is told each time an address uses up its
	// failed-attempt budget on a profile (kind "lockout") and each attempt
	// refused unchecked while it is locked out ("blocked"), for metrics.
	OnLimit func(profile, kind string)

	notes notifications
}

// DefaultMaxFailures and DefaultFailureWindow bound failed challenge
// attempts per profile and client address (per replica).
const (
	DefaultMaxFailures   = 10
	DefaultFailureWindow = 15 * time.Minute
)

// New returns a Service. now is the clock (time.Now in production).
func New(s Store, now func() time.Time, log *slog.Logger) *Service {
	return &Service{store: s, now: now, log: log, failures: ratelimit.NewWindow(DefaultMaxFailures, DefaultFailureWindow)}
}

// LimitFailures changes the failed-attempt limit (max <= 0 disables it).
func (s *Service) LimitFailures(max int, window time.Duration) {
	s.failures = ratelimit.NewWindow(max, window)
}

func clientKey(p *Profile, remote string) string {
	return p.ID + "|" + ratelimit.Host(remote)
}

// Result is an enrollment's outcome: a certificate, or Pending.
type Result struct {
	Cert *x509.Certificate
	// Pending: the request waits for an operator; the client polls.
	Pending bool
	// Replayed is set when a retransmission was answered from the store.
	Replayed bool
	// Renewed is the serial of the certificate this one renewed.
	Renewed string
}

// PKCSReq decides an enrollment: a first one (authorised by the challenge)
// or a renewal (authorised by the old certificate). It returns a
// *Rejection for every refusal the client should hear about, and any other
// error for internal failures. On success the certificate is committed
// before it returns.
func (s *Service) PKCSReq(ctx context.Context, p *Profile, r Request) (Result, error) {
	keyHash := sha256.Sum256(r.CSR.RawSubjectPublicKeyInfo)
	old, err := s.issuedBySigner(ctx, p, r.Signer)
	if err != nil {
		return Result{}, err
	}
	if old != nil {
		return s.renew(ctx, p, r, old, keyHash[:])
	}
	if res, err := s.replay(ctx, p, r, keyHash[:]); err != nil || res.Cert != nil || res.Pending {
		return res, err
	}
	if r.Renewal {
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "a RenewalReq must be signed with a valid certificate this profile's CA issued"))
	}
	now := s.now()
	// Cheap checks first; the challenge (possibly a slow KDF or a remote
	// call) only for requests policy would accept.
	tmpl, err := p.Policy.Evaluate(r.CSR, p.CA.Cert, p.ID, now)
	if err != nil {
		return Result{}, s.policyRejection(ctx, p, r, err)
	}
	key := clientKey(p, r.RemoteAddr)
	if s.failures.Blocked(key, now) {
		s.limited(p, "blocked")
		// Refused without checking: a guesser learns nothing more.
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "too many failed attempts from this address; retry later"))
	}
	creq := challenge.Request{ProfileID: p.ID, TransactionID: r.TransactionID, Password: r.Password, CSR: r.CSR, RemoteAddr: r.RemoteAddr}
	grant, err := p.Challenge.Validate(ctx, creq)
	if err != nil {
		var why *challenge.Rejected
		switch {
		case errors.As(err, &why):
			s.failed(ctx, p, r, key, now)
			return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "%s", why.Reason))
		case errors.Is(err, challenge.ErrInvalid):
			s.failed(ctx, p, r, key, now)
			return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "challenge password is missing or wrong"))
		}
		return Result{}, fmt.Errorf("enroll: challenge: %w", err)
	}
	if p.Manual {
		return s.hold(ctx, p, r, keyHash[:], grant, now)
	}
	res, err := s.issueGranted(ctx, p, r, tmpl, keyHash[:], grant, now)
	if n, ok := p.Challenge.(challenge.Notifier); ok {
		// Reported after the answer is decided, off the client's path.
		s.notify(ctx, func(nctx context.Context) {
			if err != nil {
				n.Failed(nctx, creq, err.Error())
			} else if res.Cert != nil && !res.Replayed {
				n.Issued(nctx, creq, res.Cert)
			}
		})
	}
	return res, err
}

// notifyTimeout bounds one outcome notification.
const notifyTimeout = 30 * time.Second

// notifications tracks the outcome notifications (Intune, webhook) sent
// after an answer, so that shutdown waits for them (see Service.Close).
type notifications struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	// stop cancels those still running when Close gives up waiting.
	stop   context.Context
	cancel context.CancelFunc
}

// notify runs send in a goroutine Close waits for, with its own timeout
// and the values (not the cancellation) of the request's ctx.
func (s *Service) notify(ctx context.Context, send func(context.Context)) {
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	s.notes.mu.Lock()
	if s.notes.closed {
		s.notes.mu.Unlock()
		// Nothing waits any more: send on the caller's path, not lost.
		defer cancel()
		send(nctx)
		return
	}
	if s.notes.stop == nil {
		s.notes.stop, s.notes.cancel = context.WithCancel(context.Background())
	}
	stop := s.notes.stop
	s.notes.wg.Add(1)
	s.notes.mu.Unlock()
	go func() {
		defer s.notes.wg.Done()
		defer context.AfterFunc(stop, cancel)()
		defer cancel()
		send(nctx)
	}()
}

// Close waits for the outcome notifications still being sent until ctx
// ends; then it cancels those left and waits for them to return (the
// notifiers honour their context), and returns ctx's error. Call it once
// enrollments have stopped: a notification that comes after Close is
// sent on the enrollment's path instead.
func (s *Service) Close(ctx context.Context) error {
	s.notes.mu.Lock()
	s.notes.closed = true
	cancel := s.notes.cancel
	s.notes.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.notes.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	if cancel != nil {
		cancel()
	}
	<-done
	return fmt.Errorf("enroll: outcome notifications cut off: %w", ctx.Err())
}

func (s *Service) issueGranted(ctx context.Context, p *Profile, r Request, tmpl *x509.Certificate, keyHash []byte, g challenge.Grant, now time.Time) (Result, error) {
	return s.issueWith(ctx, p, r, tmpl, keyHash, g.OneTime, g.EntityUser, "", false, now)
}

func (s *Service) policyRejection(ctx context.Context, p *Profile, r Request, err error) error {
	fi := scep.BadRequest
	switch {
	case errors.Is(err, ca.ErrAlgorithm):
		fi = scep.BadAlg
	case errors.Is(err, ca.ErrCSRSignature):
		fi = scep.BadMessageCheck
	case !errors.Is(err, ca.ErrPolicy):
		return fmt.Errorf("enroll: policy: %w", err)
	}
	return s.rejected(ctx, p, r, reject(fi, "%v", err))
}

// hold stores a valid request as PENDING for an operator, reserving its
// one-time challenge (not consuming it).
func (s *Service) hold(ctx context.Context, p *Profile, r Request, keyHash []byte, grant challenge.Grant, now time.Time) (Result, error) {
	ttl := p.PendingTTL
	if ttl <= 0 {
		ttl = 72 * time.Hour
	}
	tx := store.Transaction{ProfileID: p.ID, TransactionID: r.TransactionID, Status: store.StatusPending, PublicKeySHA256: keyHash,
		CSRDER: storedCSR(r.CSR), ChallengeHash: grant.OneTime, Expires: now.Add(ttl), Created: now, Updated: now, SenderNonce: r.SenderNonce}
	err := s.store.RecordPending(ctx, tx, store.AuditEvent{Time: now, Actor: "device:" + r.RemoteAddr, Action: "enroll", Object: "transaction:" + r.TransactionID,
		Outcome: "pending", Details: map[string]string{"profile": p.ID, "subject": r.CSR.Subject.String()}})
	switch {
	case errors.Is(err, store.ErrChallengeSpent):
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "challenge password is missing or wrong"))
	case errors.Is(err, store.ErrNonceReused):
		return Result{}, s.rejected(ctx, p, r, errNonceReused)
	case errors.Is(err, store.ErrConflict):
		return s.replay(ctx, p, r, keyHash)
	case err != nil:
		return Result{}, fmt.Errorf("enroll: storing pending request: %w", err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "request pending approval", slog.String("profile", p.ID),
		slog.String("transaction_id", r.TransactionID), slog.String("subject", r.CSR.Subject.String()))
	return Result{Pending: true}, nil
}

// issue signs tmpl and commits certificate, transaction, consumed challenge
// and audit event together.
func (s *Service) issue(ctx context.Context, p *Profile, r Request, tmpl *x509.Certificate, keyHash, oneTime []byte, renewed string, fromPending bool, now time.Time) (Result, error) {
	return s.issueWith(ctx, p, r, tmpl, keyHash, oneTime, "", renewed, fromPending, now)
}

func (s *Service) issueWith(ctx context.Context, p *Profile, r Request, tmpl *x509.Certificate, keyHash, oneTime []byte, entity, renewed string, fromPending bool, now time.Time) (Result, error) {
	cert, err := p.CA.Sign(tmpl, r.CSR.PublicKey)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: signing: %w", err)
	}
	serial := cert.SerialNumber.Text(16)
	details := map[string]string{"profile": p.ID, "transaction_id": r.TransactionID, "subject": cert.Subject.String()}
	if renewed != "" {
		details["renewed"] = renewed
	}
	actor := "device:" + r.RemoteAddr
	if fromPending {
		actor = r.RemoteAddr // the approving operator
	}
	rec := store.Issued{
		Certificate: store.Certificate{
			Serial: serial, ProfileID: p.ID, TransactionID: r.TransactionID,
			Subject: cert.Subject.String(), SANs: ca.SANs(cert),
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw,
			Status: store.CertValid, CAID: p.CAID, RenewedSerial: renewed, Created: now,
		},
		Transaction: store.Transaction{
			ProfileID: p.ID, TransactionID: r.TransactionID, Status: store.StatusIssued,
			PublicKeySHA256: keyHash, CSRDER: storedCSR(r.CSR), CertSerial: serial, Created: now, Updated: now,
		},
		Audit:         store.AuditEvent{Time: now, Actor: actor, Action: "enroll", Object: "certificate:" + serial, Outcome: "issued", Details: details},
		ChallengeHash: oneTime,
		EntityUser:    entity,
		FromPending:   fromPending,
	}
	if fromPending {
		rec.Transaction.DecidedBy = r.RemoteAddr
	} else {
		rec.Transaction.SenderNonce = r.SenderNonce
	}
	if err := s.store.RecordIssued(ctx, rec); err != nil {
		if !fromPending && (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrChallengeSpent)) {
			// The same transaction may have committed concurrently (a client
			// resent while we worked): answer with what was stored.
			if res, rerr := s.replay(ctx, p, r, keyHash); rerr != nil || res.Cert != nil {
				return res, rerr
			}
		}
		if errors.Is(err, store.ErrNonceReused) {
			return Result{}, s.rejected(ctx, p, r, errNonceReused)
		}
		if errors.Is(err, store.ErrChallengeSpent) {
			// Another request used the one-time challenge first (or it
			// expired meanwhile): nothing of this one was written.
			return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "challenge password is missing or wrong"))
		}
		return Result{}, fmt.Errorf("enroll: storing certificate %s: %w", serial, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "certificate issued",
		slog.String("profile", p.ID), slog.String("transaction_id", r.TransactionID),
		slog.String("serial", serial), slog.String("subject", cert.Subject.String()),
		slog.String("key", ca.PublicKeyAlgorithm(r.CSR.PublicKey)), slog.String("renewed", renewed), slog.String("remote", r.RemoteAddr))
	return Result{Cert: cert, Renewed: renewed}, nil
}

// issuedBySigner returns the stored certificate a request was signed
// with, when it is one this profile's CA issued (the bytes must match: a
// self-signed certificate copying our issuer name and a serial is not ours).
func (s *Service) issuedBySigner(ctx context.Context, p *Profile, signer *x509.Certificate) (*store.Certificate, error) {
	if signer == nil {
		return nil, nil
	}
	ours := bytes.Equal(signer.RawIssuer, p.CA.Cert.RawSubject)
	if p.Predecessor != nil {
		ours = ours || bytes.Equal(signer.RawIssuer, p.Predecessor.Cert.RawSubject)
	}
	if !ours {
		return nil, nil
	}
	c, err := s.store.GetCertificate(ctx, signer.SerialNumber.Text(16))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: looking up the signer certificate: %w", err)
	}
	if !bytes.Equal(c.DER, signer.Raw) {
		return nil, nil
	}
	return &c, nil
}

// renew issues a new certificate on the authority of the old one (RFC 8894
// §3.3.1.2): no challenge, but the old certificate must be valid and the
// profile's renewal policy met.
func (s *Service) renew(ctx context.Context, p *Profile, r Request, old *store.Certificate, keyHash []byte) (Result, error) {
	// Clients derive the transactionID from the key, so a renewal that
	// keeps its key repeats the first enrollment's ID. A renewal is stored
	// under the ID qualified by the certificate it renews: retransmissions
	// of it are idempotent, and it is never mistaken for a retransmission
	// of the first enrollment.
	r.TransactionID += "@" + old.Serial
	if res, err := s.replay(ctx, p, r, keyHash); err != nil || res.Cert != nil {
		return res, err
	}
	now := s.now()
	refuse := func(format string, args ...any) (Result, error) {
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, format, args...))
	}
	switch {
	case p.Renewal.Disabled:
		return refuse("renewal with a certificate is disabled on this profile")
	case old.Status == store.CertRevoked:
		return refuse("the signing certificate %s is revoked", old.Serial)
	case !now.Before(old.NotAfter):
		return refuse("the signing certificate %s has expired", old.Serial)
	case now.Before(old.NotBefore):
		return refuse("the signing certificate %s is not valid yet", old.Serial)
	}
	if w := p.Renewal.Window; w > 0 {
		life := old.NotAfter.Sub(old.NotBefore)
		earliest := old.NotBefore.Add(time.Duration(float64(life) * w))
		if now.Before(earliest) {
			return refuse("renewal is allowed from %s (%.0f%% of the certificate's lifetime)", earliest.UTC().Format(time.RFC3339), w*100)
		}
	}
	if !p.Renewal.AllowKeyReuse && bytes.Equal(r.Signer.RawSubjectPublicKeyInfo, r.CSR.RawSubjectPublicKeyInfo) {
		return refuse("renewal must use a new key")
	}
	tmpl, err := p.Policy.Evaluate(r.CSR, p.CA.Cert, p.ID, now)
	if err != nil {
		return Result{}, s.policyRejection(ctx, p, r, err)
	}
	if !p.Renewal.AllowSubjectChange && tmpl.Subject.String() != old.Subject {
		return refuse("renewal must keep the subject %q (got %q)", old.Subject, tmpl.Subject.String())
	}
	res, err := s.issue(ctx, p, r, tmpl, keyHash, nil, old.Serial, false, now)
	if err != nil || !p.Renewal.RevokeOld || res.Replayed {
		return res, err
	}
	if err := s.store.RevokeCertificate(ctx, old.Serial, ca.ReasonSuperseded, now, store.AuditEvent{Time: now, Actor: "scepd", Action: "certificate.revoke",
		Object: "certificate:" + old.Serial, Outcome: "ok", Details: map[string]string{"profile": old.ProfileID, "subject": old.Subject,
			"reason": ca.ReasonName(ca.ReasonSuperseded), "by": res.Cert.SerialNumber.Text(16)}}); err != nil {
		// The new certificate is issued and stored; the old one stays valid
		// until an operator revokes it. Not the client's failure.
		s.log.LogAttrs(ctx, slog.LevelError, "revoking the renewed certificate failed", slog.String("serial", old.Serial), slog.String("error", err.Error()))
	}
	return res, nil
}

// Poll answers CertPoll (GetCertInitial, RFC 8894 §3.3.3): the state of a
// transaction.
func (s *Service) Poll(ctx context.Context, p *Profile, transactionID string) (Result, error) {
	tx, err := s.store.GetTransaction(ctx, p.ID, transactionID)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, reject(scep.BadCertID, "no request with transactionID %q", transactionID)
	}
	if err != nil {
		return Result{}, fmt.Errorf("enroll: poll: %w", err)
	}
	switch tx.Status {
	case store.StatusPending:
		if !tx.Expires.IsZero() && s.now().After(tx.Expires) {
			return Result{}, reject(scep.BadRequest, "the request expired before a decision")
		}
		return Result{Pending: true}, nil
	case store.StatusRejected:
		reason := tx.Reason
		if reason == "" {
			reason = "rejected"
		}
		return Result{}, reject(scep.BadRequest, "the request was rejected: %s", reason)
	}
	c, err := s.store.GetCertificate(ctx, tx.CertSerial)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: poll: %w", err)
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: poll: %w", err)
	}
	return Result{Cert: cert}, nil
}

// Approve issues a pending request on an operator's decision. The policy
// runs again (it may have changed); the reserved challenge is consumed.
func (s *Service) Approve(ctx context.Context, p *Profile, transactionID, actor string) (*x509.Certificate, error) {
	tx, err := s.store.GetTransaction(ctx, p.ID, transactionID)
	if err != nil {
		return nil, err
	}
	if tx.Status != store.StatusPending {
		return nil, fmt.Errorf("%w: request %q is %s, not pending", store.ErrConflict, transactionID, tx.Status)
	}
	csr, err := x509.ParseCertificateRequest(tx.CSRDER)
	if err != nil {
		return nil, fmt.Errorf("enroll: stored CSR of %q: %w", transactionID, err)
	}
	now := s.now()
	tmpl, err := p.Policy.EvaluateVerified(csr, p.CA.Cert, p.ID, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotApprovable, err)
	}
	res, err := s.issue(ctx, p, Request{TransactionID: transactionID, CSR: csr, RemoteAddr: actor}, tmpl, tx.PublicKeySHA256, tx.ChallengeHash, "", true, now)
	if err != nil {
		return nil, err
	}
	return res.Cert, nil
}

// ErrNotApprovable: the policy refuses a pending request now.
var ErrNotApprovable = errors.New("the policy refuses this request now")

// Reject refuses a pending request on an operator's decision.
func (s *Service) Reject(ctx context.Context, p *Profile, transactionID, actor, reason string) error {
	now := s.now()
	return s.store.RejectPending(ctx, p.ID, transactionID, actor, reason, now, store.AuditEvent{Time: now, Actor: actor, Action: "request.reject",
		Object: "transaction:" + transactionID, Outcome: "ok", Details: map[string]string{"profile": p.ID, "reason": reason}})
}

// GetCert answers GetCert (RFC 8894 §3.3.4): a certificate this CA issued,
// to a requester authenticated by a valid certificate of ours.
func (s *Service) GetCert(ctx context.Context, p *Profile, issuer []byte, serial *big.Int, requester *x509.Certificate) (*x509.Certificate, error) {
	who, err := s.issuedBySigner(ctx, p, requester)
	if err != nil {
		return nil, err
	}
	if who == nil || who.Status != store.CertValid || !s.now().Before(who.NotAfter) {
		return nil, reject(scep.BadRequest, "GetCert must be signed with a valid certificate this CA issued")
	}
	if !bytes.Equal(issuer, p.CA.Cert.RawSubject) && (p.Predecessor == nil || !bytes.Equal(issuer, p.Predecessor.Cert.RawSubject)) {
		return nil, reject(scep.BadCertID, "the issuer is not this profile's CA")
	}
	c, err := s.store.GetCertificate(ctx, serial.Text(16))
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(scep.BadCertID, "no certificate with serial %s", serial.Text(16))
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: GetCert: %w", err)
	}
	return x509.ParseCertificate(c.DER)
}

// replay answers a retransmitted transaction (RFC 8894 §3.3.1: the same
// transactionID must get the same answer, never a second certificate).
func (s *Service) replay(ctx context.Context, p *Profile, r Request, keyHash []byte) (Result, error) {
	tx, err := s.store.GetTransaction(ctx, p.ID, r.TransactionID)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("enroll: looking up transaction: %w", err)
	}
	if !bytes.Equal(tx.PublicKeySHA256, keyHash) {
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "transactionID %q was already used with a different key", r.TransactionID))
	}
	switch tx.Status {
	case store.StatusPending:
		return Result{Pending: true, Replayed: true}, nil
	case store.StatusRejected:
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "transactionID %q was rejected: %s", r.TransactionID, tx.Reason))
	}
	c, err := s.store.GetCertificate(ctx, tx.CertSerial)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: certificate of transaction %q: %w", r.TransactionID, err)
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: stored certificate %s: %w", c.Serial, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "retransmission answered with the stored certificate",
		slog.String("profile", p.ID), slog.String("transaction_id", r.TransactionID), slog.String("serial", c.Serial))
	return Result{Cert: cert, Replayed: true}, nil
}

// rejected logs and audits a refusal and returns it. Nothing else is stored.
// failed counts a failed challenge; the failure that uses up an address's
// budget is audited once as a lockout (the repeated-failures event).
func (s *Service) failed(ctx context.Context, p *Profile, r Request, key string, now time.Time) {
	if !s.failures.Fail(key, now) {
		return
	}
	s.limited(p, "lockout")
	s.log.LogAttrs(ctx, slog.LevelWarn, "repeated failed enrollments; address locked out",
		slog.String("profile", p.ID), slog.String("remote", r.RemoteAddr), slog.Int("failures", s.failures.Max()),
		slog.Duration("window", s.failures.Span()))
	if err := s.store.AppendAudit(ctx, store.AuditEvent{
		Time: now, Actor: "device:" + r.RemoteAddr, Action: "enroll.lockout", Object: "profile:" + p.ID, Outcome: "blocked",
		Details: map[string]string{"profile": p.ID, "client_ip": r.RemoteAddr, "failures": strconv.Itoa(s.failures.Max()), "window": s.failures.Span().String()},
	}); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit append failed", slog.String("error", err.Error()))
	}
}

// limited tells OnLimit, if set.
func (s *Service) limited(p *Profile, kind string) {
	if s.OnLimit != nil {
		s.OnLimit(p.ID, kind)
	}
}

func (s *Service) rejected(ctx context.Context, p *Profile, r Request, rej *Rejection) error {
	subject := ""
	if r.CSR != nil {
		subject = r.CSR.Subject.String()
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "enrollment rejected",
		slog.String("profile", p.ID), slog.String("transaction_id", r.TransactionID),
		slog.String("subject", subject), slog.String("fail_info", rej.FailInfo.String()),
		slog.String("reason", rej.Reason), slog.String("remote", r.RemoteAddr))
	err := s.store.AppendAudit(ctx, store.AuditEvent{
		Time: s.now(), Actor: "device:" + r.RemoteAddr, Action: "enroll", Object: "transaction:" + r.TransactionID, Outcome: "rejected",
		Details: map[string]string{"profile": p.ID, "subject": subject, "fail_info": rej.FailInfo.String(), "reason": rej.Reason},
	})
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit append failed", slog.String("error", err.Error()))
	}
	return rej
}

// storedCSR is the request as stored: without its challengePassword.
func storedCSR(csr *x509.CertificateRequest) []byte {
	der, err := scep.RedactChallenge(csr.Raw)
	if err != nil {
		return nil // never store what could not be cleaned
	}
	return der
}
