package admin

import (
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/store"
)

// API is every operator operation. Service implements it on the database
// (bound to an actor with As); Client implements it over HTTP.
type API interface {
	ListCAs(ctx context.Context) ([]CAView, error)
	GetCA(ctx context.Context, id string) (CAView, error)
	// CAChain returns the CA certificate and its issuers, DER, the CA first.
	CAChain(ctx context.Context, id string) ([][]byte, error)
	CreateCA(ctx context.Context, spec config.CA) (CAView, error)

	ListProfiles(ctx context.Context) ([]ProfileView, error)
	GetProfile(ctx context.Context, id string) (ProfileView, error)
	// PutProfile creates or replaces a profile the API owns.
	PutProfile(ctx context.Context, spec config.Profile) (ProfileView, error)
	// PolicyTest is a dry run: the certificate the profile would issue for
	// a CSR (signed by a throw-away key, so it is not valid), or why not.
	PolicyTest(ctx context.Context, profile string, csrDER []byte) (PolicyResult, error)
	// CreateChallenge mints a one-time challenge, optionally bound to a CN
	// or SAN value the request must carry.
	CreateChallenge(ctx context.Context, profile, bind string) (ChallengeView, error)
	// ListChallenges lists a profile's pending one-time challenges (never
	// their secrets).
	ListChallenges(ctx context.Context, profile string) ([]PendingChallengeView, error)
	// CancelChallenge withdraws a pending one-time challenge by its ID.
	CancelChallenge(ctx context.Context, profile, id string) error
	// RotateChallenge replaces a static challenge (generated when secret is
	// empty), still accepting the old one for overlap.
	RotateChallenge(ctx context.Context, profile, secret string, overlap time.Duration) (ChallengeView, error)
	// PutEntity registers an end entity (CN = username) with an enrollment
	// code (generated when empty) for uses enrollments until ttl passes.
	PutEntity(ctx context.Context, profile string, e EntityRequest) (EntityView, error)
	ListEntities(ctx context.Context, profile string) ([]EntityView, error)

	// ListCertificates returns one page of certificates, newest first: at
	// most f.Limit (default DefaultListLimit, over MaxListLimit is
	// ErrInvalid), after f.After when set. The page's Next continues it.
	ListCertificates(ctx context.Context, f store.CertificateFilter) (CertPage, error)
	// CountCertificates counts what ListCertificates lists, over all pages.
	CountCertificates(ctx context.Context, f store.CertificateFilter) (int, error)
	GetCertificate(ctx context.Context, serial string) (CertView, error)
	// Revoke revokes a certificate (reason: an RFC 5280 name such as
	// keyCompromise); every replica's next CRL request publishes it.
	Revoke(ctx context.Context, serial, reason string) (CertView, error)
	// RevokeSubject revokes every valid certificate with exactly this subject
	// (of the actor's profiles, when it is limited to some).
	RevokeSubject(ctx context.Context, subject, reason string) ([]CertView, error)

	ListRequests(ctx context.Context, profile, status string) ([]RequestView, error)
	// ListRequestPage lists requests newest first, a page at a time.
	ListRequestPage(ctx context.Context, f store.TransactionFilter) (RequestPage, error)
	// GetRequest shows one request with its CSR.
	GetRequest(ctx context.Context, profile, transactionID string) (RequestView, error)
	Approve(ctx context.Context, profile, transactionID string) (CertView, error)
	Reject(ctx context.Context, profile, transactionID, reason string) error

	CreateToken(ctx context.Context, req TokenRequest) (NewTokenView, error)
	ListTokens(ctx context.Context) ([]TokenView, error)
	RevokeToken(ctx context.Context, id string) error

	ListAudit(ctx context.Context, limit int) ([]store.AuditEvent, error)
}

// Service carries out operator operations on the store.
type Service struct {
	Store store.Store
	Keys  keys.Source
	Now   func() time.Time
	Log   *slog.Logger
	// Reload is called after CAs or profiles changed, so the server serves
	// the new set at once. May be nil (CLI on the database).
	Reload func(ctx context.Context) error
	// Profile returns a profile as enrollment serves it (CA key loaded),
	// for approving pending requests; Enroll approves and rejects;
	// Revocation revokes and publishes CRLs.
	Profile    func(id string) *enroll.Profile
	Enroll     *enroll.Service
	Revocation *revocation.Service
	// Unavailable, when Profile, Enroll or Revocation is nil, says why
	// (the CLI could not load the profiles); errors name it.
	Unavailable error
	// MintLimit rations one-time challenges per profile, shared with the
	// MDM endpoints; nil: unlimited (the CLI on the database).
	MintLimit challenge.MintLimiter
}

// As binds the service to an actor.
func (s *Service) As(a Actor) API { return &bound{s: s, a: a} }

type bound struct {
	s *Service
	a Actor
}

var _ API = (*bound)(nil)

// Errors wrapped for the HTTP layer.
var (
	ErrNotFound = store.ErrNotFound
	ErrInvalid  = provision.ErrInvalid
)

// actionNames name actions in the audit log.
var actionNames = map[Action]string{ActRead: "read", ActReadTokens: "read tokens", ActManage: "manage", ActTokens: "tokens", ActChallenge: "challenge", ActOperate: "operate"}

// check authorises an action. A refused attempt to change something is
// audited: an operator wants to see a token probing beyond its role.
func (b *bound) check(ctx context.Context, act Action, profile string) error {
	if b.a.Allowed(act, profile) {
		return nil
	}
	if act != ActRead && act != ActReadTokens {
		object := "api"
		if profile != "" {
			object = "profile:" + profile
		}
		b.audit(ctx, "authz", object, "denied", map[string]string{"action": actionNames[act], "role": string(b.a.Role)})
	}
	return ErrForbidden
}

// checkGlobal authorises an action on objects that belong to no single
// profile (CAs, tokens): only a token limited to no profiles may, whatever
// its role. A scoped token would otherwise see every CA and token, or
// mint itself an unscoped one.
func (b *bound) checkGlobal(ctx context.Context, act Action) error {
	if err := b.check(ctx, act, ""); err != nil {
		return err
	}
	if len(b.a.Profiles) == 0 {
		return nil
	}
	if act != ActRead && act != ActReadTokens {
		b.audit(ctx, "authz", "api", "denied", map[string]string{"action": actionNames[act], "role": string(b.a.Role), "reason": "limited to profiles"})
	}
	return fmt.Errorf("%w: this token is limited to profiles %v", ErrForbidden, b.a.Profiles)
}

// audit records a mutation with its actor; a failed audit write fails the
// operation's report but not the (already committed) change.
func (b *bound) audit(ctx context.Context, action, object, outcome string, details map[string]string) {
	err := b.s.Store.AppendAudit(ctx, store.AuditEvent{Time: b.s.Now(), Actor: b.a.Name, Action: action, Object: object, Outcome: outcome, Details: details})
	if err != nil && b.s.Log != nil {
		b.s.Log.Error("audit append failed", "action", action, "error", err.Error())
	}
}

func (b *bound) reload(ctx context.Context) {
	if b.s.Reload == nil {
		return
	}
	if err := b.s.Reload(ctx); err != nil && b.s.Log != nil {
		b.s.Log.Error("reloading profiles failed", "error", err.Error())
	}
}

func (s *Service) unavailable(what string) error {
	if s.Unavailable != nil {
		return fmt.Errorf("admin: %s not available here: %w", what, s.Unavailable)
	}
	return fmt.Errorf("admin: %s not available here", what)
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// Bounds of what an operator writes: a name (a token's, a value a
// challenge is bound to) and free text (a rejection's reason), in
// characters. They are stored and written to the audit log.
const (
	maxName     = 256
	maxFreeText = 1024
)

// checkLen refuses s, named what, when it has more than max characters.
func checkLen(what, s string, max int) error {
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("%w: %s has %d characters; at most %d", ErrInvalid, what, n, max)
	}
	return nil
}
