// Package enroll is the enrollment use case: a decrypted SCEP request in,
// a decision and a certificate out. It ties challenge validation, policy,
// signing and storage together; the HTTP layer stays thin around it.
package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
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
	LatestRequest(ctx context.Context, profileID, clientID string, keySHA256 []byte) (store.Transaction, error)
	RecordIssued(ctx context.Context, rec store.Issued) error
	Expect(ctx context.Context) (_ context.Context, done func())
	RecordPending(ctx context.Context, t store.Transaction, entityUser string, audit store.AuditEvent) error
	RejectPending(ctx context.Context, profileID, transactionID, decidedBy, reason string, at time.Time, audit store.AuditEvent) error
	SetUpstreamPoll(ctx context.Context, profileID, transactionID string, old, token []byte) error
	KeyCompromised(ctx context.Context, keySHA256 []byte) (string, error)
	AppendAudit(ctx context.Context, e store.AuditEvent) error
}

// Profile is what enrollment knows of one SCEP endpoint. It bounds every
// decision: a certificate renews only in the profile that issued it.
type Profile struct {
	ID   string
	CAID string
	CA   *ca.CA
	// Predecessor is the CA the profile issued under before a rollover;
	// its certificates (of this profile) still authenticate renewals.
	Predecessor   *ca.CA
	PredecessorID string
	// Successor is the next CA of a rollover not yet reached; GetCert
	// answers for it too.
	Successor   *ca.CA
	SuccessorID string
	// RASubject is the profile's RA certificate subject: sscep names it as
	// the issuer in GetCert (it takes the RA for the CA), and here it names
	// this profile's CA.
	RASubject []byte
	Policy    *ca.Policy
	Challenge challenge.Validator
	Renewal   Renewal
	// Manual approval: valid requests wait as PENDING for an operator.
	Manual     bool
	PendingTTL time.Duration
	// NoPending: a request is issued or refused, never PENDING (Intune
	// validates the request and expects to be told its outcome; it has
	// no pending state). An upstream's PENDING answer is then a refusal.
	NoPending bool
	// Issuer obtains authorised certificates; nil means CA signs them. In
	// RA mode it is the upstream CA, and CA is the local RA issuer (which
	// issued the profile's RA certificate, and whose certificate the
	// policy is evaluated against).
	Issuer Issuer
	// HoldWhenUpstreamDown: while the upstream cannot be reached, a request
	// is held PENDING and submitted again at each poll of the device,
	// instead of failing (config upstream.scep.when_unavailable: pending).
	HoldWhenUpstreamDown bool
	// Sealer keeps the CSR of a request held that way unreadable at rest
	// until it is submitted (it carries the device's challengePassword,
	// which the stored CSR otherwise never does). Without one, requests
	// are not held.
	Sealer Sealer
}

// Sealer encrypts data for this server alone (the profile's RA encrypts
// it to itself) and decrypts it again.
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// Renewal is a profile's renewal policy (see config.Renewal).
type Renewal struct {
	Disabled           bool
	Window             float64
	AllowKeyReuse      bool
	RevokeOld          bool
	AllowSubjectChange bool
	// FromProfiles lists other profiles whose certificates renew here.
	FromProfiles []string
	// Approval "manual" holds renewals PENDING on a Manual profile.
	Approval string
}

// Request is one decrypted PKCSReq or RenewalReq.
type Request struct {
	TransactionID string
	CSR           *x509.CertificateRequest
	// Password is the CSR's challengePassword; it is never logged or stored.
	Password string
	// Renewal is set for a RenewalReq; Signer is the certificate that
	// signed the request. A PKCSReq signed with a certificate this profile
	// issued is a renewal too (sscep renews that way).
	Renewal bool
	Signer  *x509.Certificate
	// SignerKey is the public key that signed the request (also when
	// crypto/x509 could not parse its certificate); it may poll.
	SignerKey  crypto.PublicKey
	RemoteAddr string
	// SenderNonce is the message's senderNonce: a transaction is refused if
	// another one was created by a message with the same nonce (a replay).
	SenderNonce []byte

	// grantDetails name who authorised the request (challenge.Grant's
	// Details) in its audit event.
	grantDetails map[string]string
	// decider is who decided a pending request that is now issued: the
	// approving operator, or the upstream CA that issued it. It is the
	// audit event's actor; RemoteAddr is then the device that polled (none
	// for an approval).
	decider string
	// clientID is the transactionID as the client sent it; TransactionID
	// becomes the ID the request is stored under (qualified for a renewal
	// or a changed CSR).
	clientID string
}

// qualifier separates the transactionID a client sent from what qualifies
// it when the client reused it (a renewal's "@<old serial>", a changed
// CSR's "@csr-<digest>"). A client's own ID never contains it, so no
// client can take the ID another client's request will be stored under.
// RFC 8894 §3.2.1.1 makes the transactionID a PrintableString, which has
// no '@'; real clients send hex or decimal digests or other printable
// strings.
const qualifier = "@"

func errQualifiedID(id string) *Rejection {
	return reject(scep.BadRequest, "transactionID %q contains '@', which is not a PrintableString character (RFC 8894 §3.2.1.1)", id)
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
	// unnotified: certificates whose validator was not told (see there).
	unnotified unnotified
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
	// DER is the issued certificate (a retransmission's: the stored one).
	DER []byte
	// Pending: the request waits for an operator; the client polls.
	Pending bool
	// Replayed is set when a retransmission was answered from the store.
	Replayed bool
	// Renewed is the serial of the certificate this one renewed.
	Renewed string
}

// Certificate parses the issued certificate (nil when none was issued).
func (r Result) Certificate() (*x509.Certificate, error) {
	if r.DER == nil {
		return nil, nil
	}
	return x509.ParseCertificate(r.DER)
}

// Expect announces the enrollment request about to be decrypted and
// decided on the returned context: its outcome (the certificate issued,
// the request held, the refusal audited) is written within milliseconds,
// so a commit about to begin may wait for it to join (see
// store.Store.Expect). Not in RA mode, where an issuance waits for the
// upstream CA. Call done when the request is answered.
func (s *Service) Expect(ctx context.Context, p *Profile) (_ context.Context, done func()) {
	if p.Issuer != nil {
		return ctx, func() {}
	}
	ctx, done = s.store.Expect(ctx)
	return context.WithValue(ctx, expectKey{}, done), done
}

// expectKey is the context key of an announced request's done function.
type expectKey struct{}

// withdraw settles the announcement on ctx, if any, before a step that
// may take long (a remote challenge check): commits do not wait for it
// meanwhile.
func withdraw(ctx context.Context) {
	if done, ok := ctx.Value(expectKey{}).(func()); ok {
		done()
	}
}

// PKCSReq decides an enrollment: a first one (authorised by the challenge)
// or a renewal (authorised by the old certificate). It returns a
// *Rejection for every refusal the client should hear about, and any other
// error for internal failures. On success the certificate is committed
// before it returns.
func (s *Service) PKCSReq(ctx context.Context, p *Profile, r Request) (Result, error) {
	r.clientID = r.TransactionID
	if strings.Contains(r.TransactionID, qualifier) {
		return Result{}, s.rejected(ctx, p, r, errQualifiedID(r.TransactionID))
	}
	keyHash := sha256.Sum256(r.CSR.RawSubjectPublicKeyInfo)
	var old *store.Certificate
	if r.Renewal || p.mayRenew(r.Signer) {
		var err error
		if old, err = s.signerCertificate(ctx, r.Signer); err != nil {
			return Result{}, err
		}
	}
	if old != nil {
		if p.renews(old) {
			return s.renew(ctx, p, r, old, keyHash[:])
		}
		if r.Renewal {
			return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest,
				"the signing certificate was issued by profile %s; this profile renews only its own certificates", old.ProfileID))
		}
		// A PKCSReq signed with another profile's certificate (sscep's
		// renewal) is a first enrollment here: this profile's challenge,
		// approval and policy decide it.
	}
	// A retransmission (RFC 8894 §3.3.1) is looked up before anything else
	// only where deciding it again would cost or tell someone: a remote
	// validator (Intune, a webhook), a profile that holds requests, or an
	// upstream CA (RA mode: a repeat must not reach it as a new request).
	// Elsewhere the common path does no lookup: the unique transaction
	// row refuses the insert of a repeat (issueWith answers it then), and
	// the refusals below look before they answer.
	notifier, remote := p.Challenge.(challenge.Notifier)
	if r.Renewal || remote || p.Manual || p.Issuer != nil {
		if res, err := s.resolve(ctx, p, &r, keyHash[:]); err != nil || res.DER != nil || res.Pending {
			if remote && err == nil {
				s.issuedLate(ctx, p, notifier, r, keyHash[:], res)
			}
			return res, err
		}
	}
	// stored answers a repeat of a stored request on a refusal path.
	stored := func() (Result, bool, error) {
		res, err := s.resolve(ctx, p, &r, keyHash[:])
		return res, err != nil || res.DER != nil || res.Pending, err
	}
	if r.Renewal {
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "a RenewalReq must be signed with a valid certificate this profile's CA issued"))
	}
	now := s.now()
	// Cheap checks first; the challenge (possibly a slow KDF or a remote
	// call) only for requests policy would accept.
	tmpl, err := p.Policy.Evaluate(r.CSR, p.CA.Cert, p.ID, now)
	if err != nil {
		if res, ok, serr := stored(); ok {
			return res, serr
		}
		return Result{}, s.policyRejection(ctx, p, r, err)
	}
	if why, err := s.compromised(ctx, r.CSR.PublicKey); err != nil {
		return Result{}, err
	} else if why != "" {
		if res, ok, serr := stored(); ok {
			return res, serr
		}
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "%s", why))
	}
	key := clientKey(p, r.RemoteAddr)
	if s.failures.Blocked(key, now) {
		if res, ok, serr := stored(); ok {
			return res, serr
		}
		s.limited(p, "blocked")
		// Refused without checking: a guesser learns nothing more.
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "too many failed attempts from this address; retry later"))
	}
	// Validators (Intune, an operator's webhook) hear the transactionID the
	// device sent, not the qualified one a reused ID is stored under.
	creq := r.challengeRequest(p)
	if remote {
		// Intune or a webhook answers in its own time: commits do not
		// wait for this request meanwhile (a local check is quick).
		withdraw(ctx)
	}
	grant, err := p.Challenge.Validate(ctx, creq)
	if err == nil && remote {
		// Granted: the certificate is signed and written next.
		var done func()
		ctx, done = s.Expect(ctx, p)
		defer done()
	}
	if err != nil {
		if ctx.Err() != nil {
			// The request's time ran out while the validator was asked
			// (the server's answer deadline, the client gone): no
			// verdict, so no refusal and no failure counted; the device
			// is answered "retry".
			return Result{}, fmt.Errorf("enroll: challenge: %w", errors.Join(ctx.Err(), err))
		}
		if errors.Is(err, challenge.ErrInvalid) {
			// A retransmission whose one-time challenge its first copy spent.
			if res, ok, serr := stored(); ok {
				return res, serr
			}
		}
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
	r.grantDetails = grant.Details
	if p.Manual {
		return s.hold(ctx, p, r, keyHash[:], grant.OneTime, "", "", Issuance{}, now)
	}
	res, err := s.issueGranted(ctx, p, r, tmpl, keyHash[:], grant, now)
	if remote {
		// Reported after the answer is decided, off the client's path.
		// Failed only for a final refusal, with the reason the device
		// hears: an internal error (the store unavailable, a cancelled
		// request) is retried by the device, and its text is not for
		// Microsoft or a webhook.
		var rej *Rejection
		var unc *unconfirmedError
		switch {
		case errors.As(err, &rej):
			s.notify(ctx, func(nctx context.Context) { notifier.Failed(nctx, creq, rej.Reason) })
		case errors.As(err, &unc):
			// The commit may have gone through with its acknowledgement
			// lost: the retry answered from the store reports it.
			s.unnotified.add(unnotifiedKey(p, r, keyHash[:]), unc.serial, now)
		case err == nil && res.DER != nil && res.Replayed:
			// Another attempt of this request committed meanwhile.
			s.issuedLate(ctx, p, notifier, r, keyHash[:], res)
		case err == nil && res.DER != nil:
			if cert, perr := res.Certificate(); perr == nil {
				s.notify(ctx, func(nctx context.Context) { notifier.Issued(nctx, creq, cert) })
			}
		}
	}
	return res, err
}

// challengeRequest is what a validator hears of r: the transactionID the
// device sent, not the qualified one a reused ID is stored under.
func (r Request) challengeRequest(p *Profile) challenge.Request {
	return challenge.Request{ProfileID: p.ID, TransactionID: r.clientID, Password: r.Password, CSR: r.CSR, RemoteAddr: r.RemoteAddr, Signer: r.Signer}
}

// unconfirmedError is a failure of RecordIssued that leaves open whether
// the certificate was committed (the store unavailable, the request
// cancelled: the acknowledgement may be what was lost).
type unconfirmedError struct {
	serial string
	err    error
}

func (e *unconfirmedError) Error() string {
	return fmt.Sprintf("enroll: storing certificate %s: %v", e.serial, e.err)
}
func (e *unconfirmedError) Unwrap() error { return e.err }

// unnotifiedTTL bounds how long a retry may report a certificate whose
// first attempt failed unconfirmed; unnotifiedMax bounds how many wait.
const (
	unnotifiedTTL = 24 * time.Hour
	unnotifiedMax = 4096
)

// unnotified remembers, in this process only, the certificates a
// remote-validated request (Intune, a webhook) tried to commit when the
// commit's outcome was lost: its validator heard nothing. A retry the
// store answers with that very certificate reports Issued, once. Lost on
// restart, and not seen by another replica the retry reaches: Issued is
// then not sent, as before; never sent twice, since only the attempt
// that did not notify records the serial, and the retry takes it.
type unnotified struct {
	mu sync.Mutex
	m  map[string]unnotifiedCert
}

type unnotifiedCert struct {
	serial string
	until  time.Time
}

func unnotifiedKey(p *Profile, r Request, keyHash []byte) string {
	return p.ID + "\x00" + r.clientID + "\x00" + string(keyHash)
}

func (u *unnotified) add(key, serial string, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[string]unnotifiedCert)
	}
	if len(u.m) >= unnotifiedMax {
		for k, c := range u.m {
			if !now.Before(c.until) {
				delete(u.m, k)
			}
		}
		if len(u.m) >= unnotifiedMax {
			return
		}
	}
	u.m[key] = unnotifiedCert{serial: serial, until: now.Add(unnotifiedTTL)}
}

// waiting reports whether a certificate is remembered under key.
func (u *unnotified) waiting(key string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.m[key]
	return ok
}

// take reports whether serial is the certificate remembered under key,
// forgetting it.
func (u *unnotified) take(key, serial string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	c, ok := u.m[key]
	if !ok || c.serial != serial {
		return false
	}
	delete(u.m, key)
	return now.Before(c.until)
}

// issuedLate sends Issued for a retry answered from the store with the
// certificate an earlier attempt here committed without notifying.
func (s *Service) issuedLate(ctx context.Context, p *Profile, n challenge.Notifier, r Request, keyHash []byte, res Result) {
	key := unnotifiedKey(p, r, keyHash)
	if res.DER == nil || !s.unnotified.waiting(key) {
		return // the common retransmission: nothing to parse
	}
	cert, err := res.Certificate()
	if err != nil || !s.unnotified.take(key, cert.SerialNumber.Text(16), s.now()) {
		return
	}
	creq := r.challengeRequest(p)
	s.notify(ctx, func(nctx context.Context) { n.Issued(nctx, creq, cert) })
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
	return s.issueWith(ctx, p, r, tmpl, keyHash, g.OneTime, g.EntityUser, nil, false, now)
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

// unsubmitted starts the upstream poll token of a request held while its
// upstream was unavailable (nothing reached the upstream yet); the sealed
// CSR follows. submitting starts it while a poll submits the request: the
// end of that poll's lease (8 octets, Unix milliseconds), then the sealed
// CSR. Until then other polls leave the upstream alone.
const (
	unsubmitted = "\x00unsubmitted"
	submitting  = "\x00submitting"
)

// submitLease is how long a poll may take to submit a held request before
// another may take over (its server stopped, say). The exchange with the
// upstream is bounded by upstream.scep.timeout (at most 25 s), waiting
// for a place among max_in_flight included, so a claim older than this
// was abandoned.
const submitLease = 2 * time.Minute

// heldToken reads the poll token of a request held for the upstream: its
// sealed CSR, and the end of the lease of a poll submitting it now (zero
// when none is). ok is false for any other token.
func heldToken(token []byte) (sealed []byte, leased time.Time, ok bool) {
	if sealed, ok := bytes.CutPrefix(token, []byte(unsubmitted)); ok {
		return sealed, time.Time{}, true
	}
	rest, ok := bytes.CutPrefix(token, []byte(submitting))
	if !ok || len(rest) < 8 {
		return nil, time.Time{}, false
	}
	return rest[8:], time.UnixMilli(int64(binary.BigEndian.Uint64(rest))), true
}

// unsubmittedToken is the token of a request held, sealed its CSR.
func unsubmittedToken(sealed []byte) []byte {
	return append([]byte(unsubmitted), sealed...)
}

// claimToken is the token of a held request that a poll submits until.
func claimToken(sealed []byte, until time.Time) []byte {
	b := binary.BigEndian.AppendUint64([]byte(submitting), uint64(until.UnixMilli()))
	return append(b, sealed...)
}

// pollToken is what marks a request an upstream holds: its token, never
// empty (an empty one still marks it).
func pollToken(token []byte) []byte {
	if len(token) == 0 {
		return []byte{0}
	}
	return token
}

// hold stores a valid request as PENDING, reserving its one-time
// challenge (not consuming it): for an operator to decide, or, when up is
// an upstream's Pending answer, until the device's polls find the upstream
// has issued (see Poll). renews is the certificate a held renewal renews.
// An end entity's code (entity) is spent now, as issuing would: the poll
// that completes the request does not ask for it again, so a code of one
// use would otherwise hold any number of requests.
func (s *Service) hold(ctx context.Context, p *Profile, r Request, keyHash, oneTime []byte, entity, renews string, up Issuance, now time.Time) (Result, error) {
	_, _, held := heldToken(up.Token)
	if p.NoPending {
		// Whatever would hold it (an upstream's PENDING, a setting a
		// stored row kept), a profile that cannot wait refuses instead.
		if up.Pending && !held {
			s.log.LogAttrs(ctx, slog.LevelError, "the upstream CA holds a request PENDING on a profile that cannot wait (Intune has no pending state); the device is refused: reject the request at the upstream and have its template issue at once",
				slog.String("profile", p.ID), slog.String("transaction_id", r.TransactionID), slog.String("upstream", up.Upstream))
		}
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "the request would be held PENDING, which this profile cannot wait for"))
	}
	ttl := p.PendingTTL
	if ttl <= 0 {
		ttl = 72 * time.Hour
	}
	tx := store.Transaction{ProfileID: p.ID, TransactionID: r.TransactionID, Status: store.StatusPending, PublicKeySHA256: keyHash,
		CSRDER: storedCSR(r.CSR), ChallengeHash: oneTime, Expires: now.Add(ttl), Created: now, Updated: now, SenderNonce: r.SenderNonce,
		ClientTransactionID: r.clientID, SignerKeySHA256: ca.KeyDigest(r.SignerKey), RenewsSerial: renews}
	details := map[string]string{"profile": p.ID, "subject": r.CSR.Subject.String()}
	maps.Copy(details, r.grantDetails)
	if up.Pending {
		tx.UpstreamPoll = pollToken(up.Token)
		details["upstream"] = up.Upstream
	}
	err := s.store.RecordPending(ctx, tx, entity, store.AuditEvent{Time: now, Actor: "device:" + r.RemoteAddr, Action: "enroll", Object: "transaction:" + r.TransactionID,
		Outcome: "pending", Details: details})
	if err != nil && up.Pending {
		if !held && !errors.Is(err, store.ErrConflict) {
			// The upstream holds it; here it is not stored, and no poll
			// will ask the upstream for it again.
			s.log.LogAttrs(ctx, slog.LevelError, "a request the upstream CA holds PENDING could not be stored here; reject it there",
				slog.String("profile", p.ID), slog.String("transaction_id", r.TransactionID), slog.String("upstream", up.Upstream),
				slog.String("error", err.Error()))
		}
	}
	switch {
	case errors.Is(err, store.ErrChallengeSpent):
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "challenge password is missing or wrong"))
	case errors.Is(err, store.ErrNonceReused):
		return Result{}, s.rejected(ctx, p, r, errNonceReused)
	case errors.Is(err, store.ErrConflict):
		// Stored meanwhile under this ID: its answer; if that is a
		// certificate since revoked, this request is held under the
		// name answer gives it.
		id := r.TransactionID
		res, err := s.replay(ctx, p, &r, keyHash)
		if err == nil && res.DER == nil && !res.Pending && r.TransactionID != id {
			return s.hold(ctx, p, r, keyHash, oneTime, entity, renews, up, now)
		}
		return res, err
	case err != nil:
		return Result{}, fmt.Errorf("enroll: storing pending request: %w", err)
	}
	if held {
		s.log.LogAttrs(ctx, slog.LevelInfo, "request held until the upstream CA can be asked", slog.String("profile", p.ID),
			slog.String("transaction_id", r.TransactionID), slog.String("upstream", up.Upstream))
	} else if up.Pending {
		s.log.LogAttrs(ctx, slog.LevelInfo, "request pending at the upstream CA", slog.String("profile", p.ID),
			slog.String("transaction_id", r.TransactionID), slog.String("upstream", up.Upstream))
	} else {
		s.log.LogAttrs(ctx, slog.LevelInfo, "request pending approval", slog.String("profile", p.ID),
			slog.String("transaction_id", r.TransactionID), slog.String("subject", r.CSR.Subject.String()))
	}
	return Result{Pending: true}, nil
}

func renewed(old *store.Certificate) string {
	if old == nil {
		return ""
	}
	return old.Serial
}

// pollUpstream answers a device's CertPoll for a request the upstream
// holds: it polls the upstream once. Issued: stored as the request's
// certificate. Refused: the request is rejected. Unreachable or still
// pending: PENDING (the device polls again).
func (s *Service) pollUpstream(ctx context.Context, p *Profile, tx store.Transaction, remoteAddr string) (Result, error) {
	csr, err := x509.ParseCertificateRequest(tx.CSRDER)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: stored CSR of %q: %w", tx.TransactionID, err)
	}
	req := IssueRequest{ProfileID: p.ID, TransactionID: tx.TransactionID, CSR: csr}
	// Once a held request is claimed, or the upstream has answered a
	// poll, the exchange and what it brings back are kept whatever
	// becomes of the device's request meanwhile (it may hang up): they
	// run without its cancellation (the exchange is bounded by the
	// upstream's timeout).
	wctx := context.WithoutCancel(ctx)
	var got Issuance
	var old *store.Certificate // what a renewal renews
	if sealed, leased, ok := heldToken(tx.UpstreamPoll); ok {
		// Held while the upstream was down: submit it now, as the device
		// signed it, unless another poll is doing so.
		now := s.now()
		if now.Before(leased) {
			return Result{Pending: true}, nil
		}
		held, heldOld, why, herr := s.heldCSR(ctx, p, tx, sealed)
		if herr != nil {
			return Result{}, herr
		}
		if why != "" {
			// It cannot go upstream as it is: rejected, its challenge
			// freed, and the device told why.
			return Result{}, s.dropHeld(ctx, p, tx, "scepd", why, remoteAddr)
		}
		// Claimed first, atomically: of polls that read the same token,
		// one submits; the others hear PENDING.
		claim := claimToken(sealed, now.Add(submitLease))
		switch err := s.store.SetUpstreamPoll(ctx, p.ID, tx.TransactionID, tx.UpstreamPoll, claim); {
		case errors.Is(err, store.ErrConflict):
			return Result{Pending: true}, nil
		case err != nil:
			return Result{}, fmt.Errorf("enroll: submitting %q: %w", tx.TransactionID, err)
		}
		req.CSR, old = held, heldOld
		got, err = p.issuer().Issue(wctx, req)
		// The claim gives way to the upstream's token, or (not submitted,
		// or not known to be: a timeout) to the held request again, for
		// the next poll; an issued or refused request leaves pending below.
		var next []byte
		switch {
		case err == nil && got.Pending:
			next = pollToken(got.Token)
		case err != nil && !refused(err):
			next = unsubmittedToken(sealed)
		}
		if next != nil {
			switch serr := s.store.SetUpstreamPoll(wctx, p.ID, tx.TransactionID, claim, next); {
			case serr == nil:
			case got.Pending || errors.Is(serr, store.ErrConflict):
				return s.lostClaim(wctx, p, tx, got, serr)
			default:
				// Not submitted, and the claim stays: the next poll after
				// its lease submits it. This one hears PENDING below.
				s.log.LogAttrs(ctx, slog.LevelWarn, "a held request could not be released after a failed submission; the next poll after its lease submits it",
					slog.String("profile", p.ID), slog.String("transaction_id", tx.TransactionID), slog.String("error", serr.Error()))
			}
		}
	} else {
		got, err = p.issuer().Poll(ctx, req, tx.UpstreamPoll)
	}
	var up *UpstreamError
	switch {
	case errors.As(err, &up) && up.Refused:
		return Result{}, s.dropHeld(wctx, p, tx, up.Upstream, "the upstream CA refused: "+up.Reason, remoteAddr)
	case err != nil:
		s.log.LogAttrs(ctx, slog.LevelWarn, "polling the upstream CA failed; the request stays pending", slog.String("profile", p.ID),
			slog.String("transaction_id", tx.TransactionID), slog.String("error", err.Error()))
		return Result{Pending: true}, nil
	case got.Pending:
		return Result{Pending: true}, nil
	}
	if tx.RenewsSerial != "" && old == nil {
		c, err := s.store.GetCertificate(wctx, tx.RenewsSerial)
		if err != nil {
			return Result{}, fmt.Errorf("enroll: the certificate %s renewed by %q: %w", tx.RenewsSerial, tx.TransactionID, err)
		}
		old = &c
	}
	r := Request{TransactionID: tx.TransactionID, CSR: csr, RemoteAddr: remoteAddr, decider: got.Upstream, clientID: tx.ClientID()}
	res, err := s.record(wctx, p, r, got, tx.PublicKeySHA256, tx.ChallengeHash, "", old, true, s.now())
	if errors.Is(err, store.ErrConflict) {
		// It left pending meanwhile: another poll stored a certificate
		// for it first (both found it issued upstream), and the device
		// gets that one, or an operator rejected it.
		if now, gerr := s.store.GetTransaction(wctx, p.ID, tx.TransactionID); gerr == nil && now.Status != store.StatusPending {
			if now.CertSerial != got.Issued.Serial.Text(16) {
				s.unstored(ctx, p, got, err)
			}
			return s.pollAnswer(wctx, now)
		}
	}
	if err != nil {
		s.unstored(ctx, p, got, err)
	}
	return res, err
}

// refused reports whether err is an upstream's refusal.
func refused(err error) bool {
	var up *UpstreamError
	return errors.As(err, &up) && up.Refused
}

// lostClaim answers a poll whose claim on a held request could not give
// way to what the upstream answered (err: the request left pending
// meanwhile, rejected or expired, or the store failed). A request the
// upstream now holds PENDING nobody will poll: the operator is told. ctx
// is the poll's, without its cancellation.
func (s *Service) lostClaim(ctx context.Context, p *Profile, tx store.Transaction, got Issuance, err error) (Result, error) {
	if got.Pending {
		s.log.LogAttrs(ctx, slog.LevelError, "a request the upstream CA holds PENDING is no longer tracked here; reject it there",
			slog.String("profile", p.ID), slog.String("transaction_id", tx.TransactionID), slog.String("upstream", got.Upstream),
			slog.String("error", err.Error()))
	}
	if !errors.Is(err, store.ErrConflict) {
		return Result{}, fmt.Errorf("enroll: %q after its submission: %w", tx.TransactionID, err)
	}
	now, gerr := s.store.GetTransaction(ctx, p.ID, tx.TransactionID)
	if gerr != nil {
		return Result{}, fmt.Errorf("enroll: %q after its submission: %w", tx.TransactionID, gerr)
	}
	return s.pollAnswer(ctx, now)
}

// unstored logs a certificate an upstream issued that is not stored here
// (err says why): whatever the device hears next, the operator must know
// it exists.
func (s *Service) unstored(ctx context.Context, p *Profile, got Issuance, err error) {
	s.log.LogAttrs(ctx, slog.LevelError, "certificate issued by the upstream CA but not stored; revoke it there if the device does not receive it",
		slog.String("profile", p.ID), slog.String("upstream", got.Upstream), slog.String("serial", got.Issued.Serial.Text(16)),
		slog.String("subject", got.Issued.Subject.String()), slog.String("error", err.Error()))
}

// dropHeld rejects a request held for the upstream (its challenge
// reservation freed) and returns what the device hears.
func (s *Service) dropHeld(ctx context.Context, p *Profile, tx store.Transaction, actor, reason, remoteAddr string) error {
	now := s.now()
	details := map[string]string{"profile": p.ID, "reason": reason}
	if remoteAddr != "" {
		details["client_ip"] = remoteAddr // the device whose poll found it refused
	}
	if err := s.store.RejectPending(ctx, p.ID, tx.TransactionID, actor, reason, now, store.AuditEvent{Time: now, Actor: actor,
		Action: "request.reject", Object: "transaction:" + tx.TransactionID, Outcome: "ok",
		Details: details}); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("enroll: rejecting %q: %w", tx.TransactionID, err)
	}
	return reject(scep.BadRequest, "%s", reason)
}

// heldCSR opens the CSR of a request held while the upstream was
// unavailable and checks it against the profile as it stands now, as an
// approval would (recheck): why says what refuses it; old is the
// certificate a held renewal renews. The challenge was checked when the
// request arrived; an operator rejects held requests she no longer wants
// (scepd request reject).
func (s *Service) heldCSR(ctx context.Context, p *Profile, tx store.Transaction, sealed []byte) (csr *x509.CertificateRequest, old *store.Certificate, why string, err error) {
	if p.Sealer == nil {
		return nil, nil, fmt.Sprintf("profile %s no longer holds requests while its upstream is unavailable (when_unavailable)", p.ID), nil
	}
	raw, err := p.Sealer.Open(sealed)
	if err == nil {
		csr, err = x509.ParseCertificateRequest(raw)
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "a request held for the upstream cannot be opened", slog.String("profile", p.ID),
			slog.String("transaction_id", tx.TransactionID), slog.String("error", err.Error()))
		return nil, nil, "the held request cannot be opened (the profile's RA key changed)", nil
	}
	_, old, why, err = s.recheck(ctx, p, tx, csr, true, s.now())
	return csr, old, why, err
}

// recheck decides a held request again with the profile as it stands
// now, as for a request arriving now: its policy (the CSR's signature
// too when verify; a stored CSR has its challenge removed and no longer
// verifies), and for a renewal the renewal policy (the profile may have
// stopped renewing that profile's certificates; the certificate may have
// been revoked or expired while the request waited) and the subject.
// why says what refuses it; old is the certificate a renewal renews.
func (s *Service) recheck(ctx context.Context, p *Profile, tx store.Transaction, csr *x509.CertificateRequest, verify bool, now time.Time) (tmpl *x509.Certificate, old *store.Certificate, why string, err error) {
	if tx.RenewsSerial != "" {
		c, err := s.store.GetCertificate(ctx, tx.RenewsSerial)
		if err != nil {
			return nil, nil, "", fmt.Errorf("enroll: the certificate %s renewed by %q: %w", tx.RenewsSerial, tx.TransactionID, err)
		}
		old = &c
		oldCert, err := x509.ParseCertificate(old.DER)
		if err != nil {
			return nil, nil, "", fmt.Errorf("enroll: the certificate %s renewed by %q: %w", old.Serial, tx.TransactionID, err)
		}
		if !p.renews(old) {
			return nil, nil, fmt.Sprintf("profile %s no longer renews certificates of profile %s (CA %s)", p.ID, old.ProfileID, old.CAID), nil
		}
		if why := p.renewalRefusal(old, oldCert.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo, now); why != "" {
			return nil, nil, why, nil
		}
		if why, err := s.compromised(ctx, oldCert.PublicKey); err != nil || why != "" {
			return nil, nil, why, err
		}
	}
	evaluate := p.Policy.EvaluateVerified
	if verify {
		evaluate = p.Policy.Evaluate
	}
	if tmpl, err = evaluate(csr, p.CA.Cert, p.ID, now); err != nil {
		return nil, nil, "the profile's policy no longer allows it: " + err.Error(), nil
	}
	if old != nil && !p.Renewal.AllowSubjectChange && tmpl.Subject.String() != old.Subject {
		return nil, nil, fmt.Sprintf("renewal must keep the subject %q (got %q)", old.Subject, tmpl.Subject.String()), nil
	}
	if why, err := s.compromised(ctx, csr.PublicKey); err != nil || why != "" {
		return nil, nil, why, err
	}
	return tmpl, old, "", nil
}

// issue signs tmpl and commits certificate, transaction, consumed challenge
// and audit event together; for a renewal (old set) on a revoke_old
// profile, the old certificate's revocation too (ErrSuperseded when
// another renewal of it revoked it first).
func (s *Service) issue(ctx context.Context, p *Profile, r Request, tmpl *x509.Certificate, keyHash, oneTime []byte, old *store.Certificate, fromPending bool, now time.Time) (Result, error) {
	return s.issueWith(ctx, p, r, tmpl, keyHash, oneTime, "", old, fromPending, now)
}

func (s *Service) issueWith(ctx context.Context, p *Profile, r Request, tmpl *x509.Certificate, keyHash, oneTime []byte, entity string, old *store.Certificate, fromPending bool, now time.Time) (Result, error) {
	got, err := p.issuer().Issue(ctx, IssueRequest{ProfileID: p.ID, TransactionID: r.TransactionID, CSR: r.CSR, Template: tmpl})
	var up *UpstreamError
	if errors.As(err, &up) {
		if fromPending || ctx.Err() != nil {
			// An approval's caller hears why; a request whose time ran
			// out (the server's answer deadline) is answered "retry",
			// not a refusal.
			return Result{}, fmt.Errorf("enroll: %w", up)
		}
		if !up.Refused && p.HoldWhenUpstreamDown && p.Sealer != nil {
			// Held until the upstream answers: each poll of the device
			// submits it again (pollUpstream). The token keeps the CSR as
			// the device signed it, sealed: the stored CSR has its
			// challengePassword removed, so its signature no longer holds.
			sealed, serr := p.Sealer.Seal(r.CSR.Raw)
			if serr == nil {
				s.log.LogAttrs(ctx, slog.LevelWarn, "the upstream CA is unavailable; the request is held PENDING", slog.String("profile", p.ID),
					slog.String("transaction_id", r.TransactionID), slog.String("upstream", up.Upstream), slog.String("error", up.Reason))
				return s.hold(ctx, p, r, keyHash, oneTime, entity, renewed(old), Issuance{Pending: true, Upstream: up.Upstream,
					Token: unsubmittedToken(sealed)}, now)
			}
			s.log.LogAttrs(ctx, slog.LevelError, "the upstream CA is unavailable and the request could not be held", slog.String("profile", p.ID),
				slog.String("transaction_id", r.TransactionID), slog.String("error", serr.Error()))
		}
		// Nothing was stored: a one-time challenge stays unspent, so the
		// device may try again once the upstream answers.
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "the upstream CA did not issue: %s", up.Reason))
	}
	if err != nil {
		return Result{}, fmt.Errorf("enroll: signing: %w", err)
	}
	if got.Pending {
		if fromPending {
			return Result{}, fmt.Errorf("enroll: the upstream CA %s holds the request PENDING", got.Upstream)
		}
		return s.hold(ctx, p, r, keyHash, oneTime, entity, renewed(old), got, now)
	}
	res, err := s.record(ctx, p, r, got, keyHash, oneTime, entity, old, fromPending, now)
	if err != nil && got.Upstream != "" {
		s.unstored(ctx, p, got, err)
	}
	return res, err
}

// record commits an obtained certificate with its transaction, consumed
// challenge and audit event (see issue).
func (s *Service) record(ctx context.Context, p *Profile, r Request, got Issuance, keyHash, oneTime []byte, entity string, old *store.Certificate, fromPending bool, now time.Time) (Result, error) {
	cert := got.Issued
	serial := cert.Serial.Text(16)
	subject := cert.Subject.String()
	renewed := ""
	if old != nil {
		renewed = old.Serial
	}
	details := map[string]string{"profile": p.ID, "transaction_id": r.TransactionID, "subject": subject}
	maps.Copy(details, r.grantDetails)
	if got.Upstream != "" {
		details["upstream"] = got.Upstream
	}
	if renewed != "" {
		details["renewed"] = renewed
	}
	actor := "device:" + r.RemoteAddr
	if fromPending {
		actor = r.decider
		if r.RemoteAddr != "" {
			details["client_ip"] = r.RemoteAddr // the device whose poll completed it
		}
	}
	rec := store.Issued{
		Certificate: store.Certificate{
			Serial: serial, ProfileID: p.ID, TransactionID: r.TransactionID,
			Subject: subject, SANs: cert.SANs,
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.DER,
			Status: store.CertValid, CAID: p.CAID, RenewedSerial: renewed, Created: now, Upstream: got.Upstream,
		},
		Transaction: store.Transaction{
			ProfileID: p.ID, TransactionID: r.TransactionID, Status: store.StatusIssued,
			PublicKeySHA256: keyHash, CSRDER: storedCSR(r.CSR), CertSerial: serial, Created: now, Updated: now,
			ClientTransactionID: r.clientID, SignerKeySHA256: ca.KeyDigest(r.SignerKey), RenewsSerial: renewed,
		},
		Audit:         store.AuditEvent{Time: now, Actor: actor, Action: "enroll", Object: "certificate:" + serial, Outcome: "issued", Details: details},
		ChallengeHash: oneTime,
		EntityUser:    entity,
		FromPending:   fromPending,
	}
	if fromPending {
		rec.Transaction.DecidedBy = r.decider
	} else {
		rec.Transaction.SenderNonce = r.SenderNonce
	}
	if old != nil && p.Renewal.RevokeOld && old.Upstream != "" {
		// Only its CA revokes a certificate an upstream issued: listed
		// revoked here, it would stay valid in that CA's CRL and OCSP.
		s.log.LogAttrs(ctx, slog.LevelWarn, "the renewed certificate was issued by an upstream CA and is not revoked here; revoke it there",
			slog.String("profile", p.ID), slog.String("serial", old.Serial), slog.String("upstream", old.Upstream))
	} else if old != nil && p.Renewal.RevokeOld {
		// In the same database transaction: of two renewals of one
		// certificate committing at once, exactly one revokes it and issues.
		rec.Supersede = &store.Supersede{Serial: old.Serial, Reason: ca.ReasonSuperseded, Audit: store.AuditEvent{Time: now, Actor: "scepd",
			Action: "certificate.revoke", Object: "certificate:" + old.Serial, Outcome: "ok", Details: map[string]string{"profile": old.ProfileID,
				"subject": old.Subject, "reason": ca.ReasonName(ca.ReasonSuperseded), "by": serial}}}
	}
	if err := s.store.RecordIssued(ctx, rec); err != nil {
		if !fromPending && (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrChallengeSpent) || errors.Is(err, store.ErrNonceReused)) {
			// The transaction is stored already: a retransmission (the
			// lookup before signing is left to the unique constraint), or
			// one that committed while we worked. Answer with what was
			// stored; a different request under a used ID is stored under
			// the ID qualified by its digest (see resolve), with the
			// certificate already obtained.
			id := r.TransactionID
			if res, rerr := s.resolve(ctx, p, &r, keyHash); rerr != nil || res.DER != nil || res.Pending {
				return res, rerr
			}
			if r.TransactionID != id {
				return s.record(ctx, p, r, got, keyHash, oneTime, entity, old, fromPending, now)
			}
		}
		if errors.Is(err, store.ErrNonceReused) {
			return Result{}, s.rejected(ctx, p, r, errNonceReused)
		}
		if errors.Is(err, store.ErrSuperseded) {
			// Another renewal of the certificate committed first and revoked
			// it: what this one would hear had it come second.
			if fromPending {
				return Result{}, fmt.Errorf("%w: the certificate %s it renews was revoked by another renewal of it", ErrNotApprovable, old.Serial)
			}
			return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "the signing certificate %s is revoked", old.Serial))
		}
		if errors.Is(err, store.ErrChallengeSpent) {
			// Another request used the one-time challenge first (or it
			// expired meanwhile): nothing of this one was written.
			return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, "challenge password is missing or wrong"))
		}
		return Result{}, &unconfirmedError{serial: serial, err: err}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "certificate issued",
		slog.String("profile", p.ID), slog.String("transaction_id", r.TransactionID),
		slog.String("serial", serial), slog.String("subject", subject),
		slog.String("key", ca.PublicKeyAlgorithm(r.CSR.PublicKey)), slog.String("renewed", renewed), slog.String("remote", r.RemoteAddr),
		slog.String("decided_by", r.decider), slog.String("upstream", got.Upstream))
	return Result{DER: cert.DER, Renewed: renewed}, nil
}

// signerCertificate returns the stored certificate a request was signed
// with, when scepd issued it (the bytes must match: a self-signed
// certificate copying our issuer name and a serial is not ours).
func (s *Service) signerCertificate(ctx context.Context, signer *x509.Certificate) (*store.Certificate, error) {
	if signer == nil {
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

// renews reports whether a stored certificate authorises renewal here:
// this profile issued it under its CA (or the CA before a rollover), or
// it comes from a profile named in renewal.from_profiles.
func (p *Profile) renews(c *store.Certificate) bool {
	if c.ProfileID == p.ID {
		return c.CAID == p.CAID || (p.Predecessor != nil && c.CAID == p.PredecessorID)
	}
	return slices.Contains(p.Renewal.FromProfiles, c.ProfileID)
}

// mayRenew is the cheap test before looking a PKCSReq's signer up: a
// first enrollment's self-signed certificate names no CA of ours (nor,
// unless renewal.from_profiles opens the profile, does any other
// profile's certificate need looking at: it would be a first enrollment
// either way).
func (p *Profile) mayRenew(signer *x509.Certificate) bool {
	if signer == nil {
		return false
	}
	// In RA mode the upstream's CA (not p.CA, the RA issuer) issued this
	// profile's certificates: any signer may be one of them.
	return len(p.Renewal.FromProfiles) > 0 || p.Issuer != nil || bytes.Equal(signer.RawIssuer, p.CA.Cert.RawSubject) ||
		(p.Predecessor != nil && bytes.Equal(signer.RawIssuer, p.Predecessor.Cert.RawSubject))
}

// profileCA is one of a profile's CAs, by ID.
type profileCA struct {
	id string
	ca *ca.CA
}

// cas lists the profile's CAs: the one it issues under, then its
// predecessor after a rollover and its successor during one, if any.
func (p *Profile) cas() []profileCA {
	out := []profileCA{{p.CAID, p.CA}}
	if p.Predecessor != nil {
		out = append(out, profileCA{p.PredecessorID, p.Predecessor})
	}
	if p.Successor != nil {
		out = append(out, profileCA{p.SuccessorID, p.Successor})
	}
	return out
}

// caOf returns the profile's CA of that ID (nil for none of its CAs).
func (p *Profile) caOf(id string) *ca.CA {
	for _, c := range p.cas() {
		if c.id == id {
			return c.ca
		}
	}
	return nil
}

// namedCAs returns the IDs of the profile's CAs an IssuerAndSerialNumber's
// issuer names: a CA's subject, or the profile's RA subject (sscep) for
// the CA it issues under.
func (p *Profile) namedCAs(issuer []byte) []string {
	var ids []string
	for i, c := range p.cas() {
		if bytes.Equal(issuer, c.ca.Cert.RawSubject) || (i == 0 && len(p.RASubject) > 0 && bytes.Equal(issuer, p.RASubject)) {
			ids = append(ids, c.id)
		}
	}
	return ids
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
	r.TransactionID += qualifier + old.Serial
	if res, err := s.resolve(ctx, p, &r, keyHash); err != nil || res.DER != nil || res.Pending {
		return res, err
	}
	now := s.now()
	refuse := func(format string, args ...any) (Result, error) {
		return Result{}, s.rejected(ctx, p, r, reject(scep.BadRequest, format, args...))
	}
	if why := p.renewalRefusal(old, r.Signer.RawSubjectPublicKeyInfo, r.CSR.RawSubjectPublicKeyInfo, now); why != "" {
		return refuse("%s", why)
	}
	// Neither the new key nor the one signing for it (another valid
	// certificate of a key revoked for compromise elsewhere) may be one.
	for _, key := range []crypto.PublicKey{r.CSR.PublicKey, r.Signer.PublicKey} {
		if why, err := s.compromised(ctx, key); err != nil {
			return Result{}, err
		} else if why != "" {
			return refuse("%s", why)
		}
	}
	tmpl, err := p.Policy.Evaluate(r.CSR, p.CA.Cert, p.ID, now)
	if err != nil {
		return Result{}, s.policyRejection(ctx, p, r, err)
	}
	if !p.Renewal.AllowSubjectChange && tmpl.Subject.String() != old.Subject {
		return refuse("renewal must keep the subject %q (got %q)", old.Subject, tmpl.Subject.String())
	}
	if p.Manual && p.Renewal.Approval == "manual" {
		return s.hold(ctx, p, r, keyHash, nil, "", old.Serial, Issuance{}, now)
	}
	return s.issue(ctx, p, r, tmpl, keyHash, nil, old, false, now)
}

// compromised is why a request for key is refused when a certificate
// for it was revoked for key compromise (its revocation recorded the key,
// see store.KeyCompromised): another transactionID, subject or profile
// does not make the key safe again. "" when none was.
func (s *Service) compromised(ctx context.Context, key crypto.PublicKey) (string, error) {
	serial, err := s.store.KeyCompromised(ctx, ca.KeyDigest(key))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("enroll: looking up compromised keys: %w", err)
	}
	return fmt.Sprintf("certificate %s, for this key, was revoked for key compromise: make a new key", serial), nil
}

// renewalRefusal is why the profile's renewal policy refuses renewing
// old (whose key is oldKey) with a request for newKey (both
// SubjectPublicKeyInfo DER) at now; "" when it allows it. The subject is
// checked apart, against the policy's template.
func (p *Profile) renewalRefusal(old *store.Certificate, oldKey, newKey []byte, now time.Time) string {
	switch {
	case p.Renewal.Disabled:
		return "renewal with a certificate is disabled on this profile"
	case old.Status == store.CertRevoked:
		return fmt.Sprintf("the signing certificate %s is revoked", old.Serial)
	case !now.Before(old.NotAfter):
		return fmt.Sprintf("the signing certificate %s has expired", old.Serial)
	case now.Before(old.NotBefore):
		return fmt.Sprintf("the signing certificate %s is not valid yet", old.Serial)
	}
	if w := p.Renewal.Window; w > 0 {
		life := old.NotAfter.Sub(old.NotBefore)
		earliest := old.NotBefore.Add(time.Duration(float64(life) * w))
		if now.Before(earliest) {
			return fmt.Sprintf("renewal is allowed from %s (%.0f%% of the certificate's lifetime)", earliest.UTC().Format(time.RFC3339), w*100)
		}
	}
	if !p.Renewal.AllowKeyReuse && bytes.Equal(oldKey, newKey) {
		return "renewal must use a new key"
	}
	return ""
}

// Poll answers CertPoll (GetCertInitial, RFC 8894 §3.3.3): the state of
// the newest request the polling key sent under transactionID, as the
// CSR's key or the one that signed it (such as the old certificate's of
// a renewal); anyone else hears what an unknown transaction gets. Keys
// are compared by SHA-256 in the store: the CSR's as it encoded it, the
// signer's re-encoded, so a CSR with an unusual key encoding is found
// through the key that signed the request.
func (s *Service) Poll(ctx context.Context, p *Profile, transactionID string, signer crypto.PublicKey, remoteAddr string) (Result, error) {
	unknown := reject(scep.BadCertID, "no request with transactionID %q", transactionID)
	if strings.Contains(transactionID, qualifier) {
		return Result{}, unknown // no client's ID: only a stored, qualified one
	}
	h := ca.KeyDigest(signer)
	if h == nil {
		return Result{}, unknown
	}
	// One indexed row: an unauthenticated poll costs no more for a busy
	// transactionID, and the newest request is found however many share it.
	tx, err := s.store.LatestRequest(ctx, p.ID, transactionID, h)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, unknown
	}
	if err != nil {
		return Result{}, fmt.Errorf("enroll: poll: %w", err)
	}
	if tx.Status == store.StatusPending && tx.UpstreamPoll != nil && (tx.Expires.IsZero() || !s.now().After(tx.Expires)) {
		return s.pollUpstream(ctx, p, tx, remoteAddr)
	}
	return s.pollAnswer(ctx, tx)
}

// pollAnswer is what a poll of tx, as stored, hears: PENDING (or, past
// its expiry, that it expired), its rejection, or its certificate.
func (s *Service) pollAnswer(ctx context.Context, tx store.Transaction) (Result, error) {
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
	return Result{DER: c.DER}, nil
}

// Approve issues a pending request on an operator's decision. The policy
// runs again (it may have changed); the reserved challenge is consumed. A
// held renewal is issued as the renewal of its certificate, and the
// profile's renewal policy is checked again as it stands now (renewal
// enabled, from_profiles, the certificate neither revoked nor expired,
// window, key reuse, subject).
func (s *Service) Approve(ctx context.Context, p *Profile, transactionID, actor string) (*x509.Certificate, error) {
	tx, err := s.store.GetTransaction(ctx, p.ID, transactionID)
	if err != nil {
		return nil, err
	}
	if tx.Status != store.StatusPending {
		return nil, fmt.Errorf("%w: request %q is %s, not pending", store.ErrConflict, transactionID, tx.Status)
	}
	if tx.UpstreamPoll != nil {
		return nil, fmt.Errorf("%w: request %q", ErrUpstreamHeld, transactionID)
	}
	csr, err := x509.ParseCertificateRequest(tx.CSRDER)
	if err != nil {
		return nil, fmt.Errorf("enroll: stored CSR of %q: %w", transactionID, err)
	}
	now := s.now()
	tmpl, renews, why, err := s.recheck(ctx, p, tx, csr, false, now)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return nil, fmt.Errorf("%w: %s", ErrNotApprovable, why)
	}
	r := Request{TransactionID: transactionID, CSR: csr, decider: actor, clientID: tx.ClientID()}
	res, err := s.issue(ctx, p, r, tmpl, tx.PublicKeySHA256, tx.ChallengeHash, renews, true, now)
	if err != nil {
		return nil, err
	}
	return res.Certificate()
}

// ErrNotApprovable: the policy refuses a pending request now.
var ErrNotApprovable = errors.New("the policy refuses this request now")

// ErrUpstreamHeld: a pending request waits for the profile's upstream CA
// (held while it could not be asked, or pending there), not for an
// approval here.
var ErrUpstreamHeld = errors.New("the request waits for the upstream CA, not for an approval here: the device's next poll asks the upstream (reject it to drop it)")

// Reject refuses a pending request on an operator's decision.
func (s *Service) Reject(ctx context.Context, p *Profile, transactionID, actor, reason string) error {
	now := s.now()
	return s.store.RejectPending(ctx, p.ID, transactionID, actor, reason, now, store.AuditEvent{Time: now, Actor: actor, Action: "request.reject",
		Object: "transaction:" + transactionID, Outcome: "ok", Details: map[string]string{"profile": p.ID, "reason": reason}})
}

// GetCert answers GetCert (RFC 8894 §3.3.4): a certificate of this
// profile's CA (or its rollover predecessor or successor), to a requester
// authenticated by a valid certificate of those CAs. The stored
// certificate's CA decides, not only the issuer name asked for: serials
// are unique across CAs, so a name alone would hand out another CA's
// certificates.
func (s *Service) GetCert(ctx context.Context, p *Profile, issuer []byte, serial *big.Int, requester *x509.Certificate) (*x509.Certificate, error) {
	who, err := s.signerCertificate(ctx, requester)
	if err != nil {
		return nil, err
	}
	if who == nil || p.caOf(who.CAID) == nil || who.Status != store.CertValid || !s.now().Before(who.NotAfter) {
		return nil, reject(scep.BadRequest, "GetCert must be signed with a valid certificate this CA issued")
	}
	cas := p.namedCAs(issuer)
	if len(cas) == 0 {
		return nil, reject(scep.BadCertID, "the issuer is not this profile's CA")
	}
	c, err := s.store.GetCertificate(ctx, serial.Text(16))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !slices.Contains(cas, c.CAID)) {
		return nil, reject(scep.BadCertID, "no certificate with serial %s", serial.Text(16))
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: GetCert: %w", err)
	}
	return x509.ParseCertificate(c.DER)
}

// CRLIssuer returns the ID of the CA whose CRL answers a GetCRL for the
// certificate issuer and serial name (RFC 8894 §3.3.5: the CRL of that
// certificate's issuer). As for GetCert, the issuer must name one of the
// profile's CAs (its CA, its rollover predecessor or successor; or, as
// sscep names it, the profile's RA subject): any other is badCertID, which
// says nothing of the CAs of other profiles. A CA's CRL covers every
// certificate it issued, whichever profile issued it, so a profile
// serves the CRL of a CA it shares with others, and no other.
//
// A name may stand for two of the profile's CAs (a rollover that keeps
// the subject and changes the key): then the serial's stored certificate
// tells which one issued it; failing that, the CA whose own certificate
// has that serial (sscep sends the CA certificate's subject and serial);
// failing that, the first of them, the CA the profile issues under.
// The requester is not checked: a CRL is public (GET /crl/{ca}.crl).
func (s *Service) CRLIssuer(ctx context.Context, p *Profile, issuer []byte, serial *big.Int) (string, error) {
	cas := p.namedCAs(issuer)
	if len(cas) == 0 {
		return "", reject(scep.BadCertID, "the issuer is not this profile's CA")
	}
	if len(cas) == 1 {
		return cas[0], nil
	}
	c, err := s.store.GetCertificate(ctx, serial.Text(16))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("enroll: GetCRL: %w", err)
	}
	if err == nil && slices.Contains(cas, c.CAID) {
		return c.CAID, nil
	}
	for _, id := range cas {
		if own := p.caOf(id); own != nil && own.Cert.SerialNumber.Cmp(serial) == 0 {
			return id, nil
		}
	}
	return cas[0], nil
}

// resolve finds what a request repeats (RFC 8894 §3.3.1: the same
// transactionID must get the same answer, never a second certificate). The
// same transactionID, key and request (requestDigest) is a retransmission:
// it gets the stored answer. A CSR asking for something else under a used
// transactionID and key (certmonger adding a SAN; clients derive the ID
// from the key) is a new request: r is renamed to the ID qualified by its
// digest, under which it is stored apart from the earlier one, and its own
// retransmissions are looked up there. So is a request repeating one whose
// certificate is revoked or expired (see answer). Nothing stored under the
// name r ends with: the zero Result, and r is enrolled under that name.
func (s *Service) resolve(ctx context.Context, p *Profile, r *Request, keyHash []byte) (Result, error) {
	tx, err := s.stored(ctx, p, *r, keyHash)
	if err != nil || tx == nil {
		return Result{}, err
	}
	digest := requestDigest(r.CSR)
	if stored, err := x509.ParseCertificateRequest(tx.CSRDER); err != nil || bytes.Equal(requestDigest(stored), digest) {
		return s.answer(ctx, p, r, *tx, keyHash)
	}
	r.TransactionID += qualifier + "csr-" + hex.EncodeToString(digest[:8])
	return s.replay(ctx, p, r, keyHash)
}

// requestDigest identifies what a CSR asks for: its subject, key and
// subjectAltNames, the parts the policy takes from it. A client that
// regenerates the CSR of the same request differs elsewhere (certmonger's
// resubmit puts a fresh subjectKeyIdentifier in it; a signature may be
// randomised), and the challengePassword is no part of the request.
func requestDigest(csr *x509.CertificateRequest) []byte {
	var san []byte
	for _, e := range csr.Extensions {
		if e.Id.Equal(oidSubjectAltName) {
			san = e.Value
		}
	}
	h := sha256.New()
	for _, part := range [][]byte{csr.RawSubject, csr.RawSubjectPublicKeyInfo, san} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// replay answers a retransmission of the transaction stored under
// r.TransactionID, if there is one (see answer).
func (s *Service) replay(ctx context.Context, p *Profile, r *Request, keyHash []byte) (Result, error) {
	tx, err := s.stored(ctx, p, *r, keyHash)
	if err != nil || tx == nil {
		return Result{}, err
	}
	return s.answer(ctx, p, r, *tx, keyHash)
}

// stored returns the transaction stored under r.TransactionID (nil when
// there is none); one created with another key is refused.
func (s *Service) stored(ctx context.Context, p *Profile, r Request, keyHash []byte) (*store.Transaction, error) {
	tx, err := s.store.GetTransaction(ctx, p.ID, r.TransactionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: looking up transaction: %w", err)
	}
	if !bytes.Equal(tx.PublicKeySHA256, keyHash) {
		return nil, s.rejected(ctx, p, r, reject(scep.BadRequest, "transactionID %q was already used with a different key", r.TransactionID))
	}
	// The CSR's key is in the issued certificate for anyone to copy, and
	// this runs before the CSR's signature is checked: the message must be
	// signed by a key the stored request had (its CSR's, or the one that
	// signed it), as a poll must (Poll), or a stranger replaying a
	// device's transactionID with a copied key would hear its outcome.
	if signer := ca.KeyDigest(r.SignerKey); signer == nil ||
		!(bytes.Equal(signer, tx.PublicKeySHA256) || (tx.SignerKeySHA256 != nil && bytes.Equal(signer, tx.SignerKeySHA256))) {
		return nil, s.rejected(ctx, p, r, reject(scep.BadRequest, "transactionID %q was already used by another requester", r.TransactionID))
	}
	return &tx, nil
}

// answer is the stored answer of a transaction, for its retransmission.
// A certificate that is revoked or expired is no answer: the device asks
// again because it needs one (clients derive the transactionID from the
// key, and enroll again with the key they hold once their certificate
// lapsed), so the request is a new one, renamed to the ID qualified by
// that certificate, and what is stored under the new name answers it (when
// nothing is, the caller enrolls it: challenge, policy and all).
func (s *Service) answer(ctx context.Context, p *Profile, r *Request, tx store.Transaction, keyHash []byte) (Result, error) {
	switch tx.Status {
	case store.StatusPending:
		if tx.UpstreamPoll != nil && (tx.Expires.IsZero() || s.now().Before(tx.Expires)) {
			// A client that resends its PKCSReq instead of polling
			// (certmonger) polls the upstream that way.
			res, err := s.pollUpstream(ctx, p, tx, r.RemoteAddr)
			res.Replayed = res.Pending
			return res, err
		}
		return Result{Pending: true, Replayed: true}, nil
	case store.StatusRejected:
		return Result{}, s.rejected(ctx, p, *r, reject(scep.BadRequest, "transactionID %q was rejected: %s", r.TransactionID, tx.Reason))
	}
	c, err := s.store.GetCertificate(ctx, tx.CertSerial)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: certificate of transaction %q: %w", r.TransactionID, err)
	}
	if lapsed := c.Status == store.CertRevoked || !s.now().Before(c.NotAfter); lapsed {
		s.log.LogAttrs(ctx, slog.LevelInfo, "a request repeating one whose certificate is revoked or expired is a new request",
			slog.String("profile", p.ID), slog.String("transaction_id", r.TransactionID), slog.String("serial", c.Serial),
			slog.String("status", c.Status), slog.Time("not_after", c.NotAfter))
		r.TransactionID += qualifier + "after-" + c.Serial
		return s.replay(ctx, p, r, keyHash)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "retransmission answered with the stored certificate",
		slog.String("profile", p.ID), slog.String("transaction_id", r.TransactionID), slog.String("serial", c.Serial))
	return Result{DER: c.DER, Replayed: true}, nil
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
