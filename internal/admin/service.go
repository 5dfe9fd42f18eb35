package admin

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/ca"
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
	GetCertificate(ctx context.Context, serial string) (CertView, error)
	// Revoke revokes a certificate (reason: an RFC 5280 name such as
	// keyCompromise); every replica's next CRL request publishes it.
	Revoke(ctx context.Context, serial, reason string) (CertView, error)
	// RevokeSubject revokes every valid certificate with exactly this subject
	// (of the actor's profiles, when it is limited to some).
	RevokeSubject(ctx context.Context, subject, reason string) ([]CertView, error)

	ListRequests(ctx context.Context, profile, status string) ([]RequestView, error)
	Approve(ctx context.Context, profile, transactionID string) (CertView, error)
	Reject(ctx context.Context, profile, transactionID, reason string) error

	CreateToken(ctx context.Context, req TokenRequest) (NewTokenView, error)
	ListTokens(ctx context.Context) ([]TokenView, error)
	RevokeToken(ctx context.Context, id string) error

	ListAudit(ctx context.Context, limit int) ([]store.AuditEvent, error)
}

// CAView describes a CA.
type CAView struct {
	ID        string    `json:"id"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	KeyType   string    `json:"key_type"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Root      bool      `json:"root"`
	ChainLen  int       `json:"chain_length"`
	SHA256    string    `json:"sha256"`
	CAMode    bool      `json:"ca_mode_capable"`
}

// ProfileView describes a profile; it never carries a challenge secret or hash.
type ProfileView struct {
	ID            string          `json:"id"`
	CA            string          `json:"ca"`
	Path          string          `json:"path"`
	Source        string          `json:"source"`
	ChallengeMode string          `json:"challenge_mode"`
	ChallengeTTL  string          `json:"challenge_ttl,omitempty"`
	MaxPending    int             `json:"challenge_max_pending,omitempty"`
	CAMode        bool            `json:"ca_mode"`
	IncludeCACert bool            `json:"include_ca_cert"`
	FullChain     bool            `json:"full_chain"`
	AllowDES      bool            `json:"allow_des"`
	RASubject     string          `json:"ra_subject"`
	RASHA256      string          `json:"ra_sha256"`
	Policy        ca.PolicyConfig `json:"policy"`
	Created       time.Time       `json:"created"`
	Updated       time.Time       `json:"updated"`
}

// CertView describes an issued certificate.
type CertView struct {
	Serial        string    `json:"serial"`
	Profile       string    `json:"profile"`
	TransactionID string    `json:"transaction_id"`
	Subject       string    `json:"subject"`
	SANs          []string  `json:"sans"`
	NotBefore     time.Time `json:"not_before"`
	NotAfter      time.Time `json:"not_after"`
	Status        string    `json:"status"`
	Created       time.Time `json:"created"`
	// RenewedSerial is the certificate this one renewed.
	RenewedSerial string `json:"renewed_serial,omitempty"`
	// RevokedAt and RevocationReason (the RFC 5280 name, e.g.
	// keyCompromise) once revoked.
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
	RevocationReason string    `json:"revocation_reason,omitempty"`
	// Upstream names the upstream CA that issued the certificate (RA
	// mode); absent for a local CA's.
	Upstream string `json:"upstream,omitempty"`
	// DER is the certificate; the HTTP API serves it through .pem/.der URLs.
	DER []byte `json:"-"`
}

// Listing page sizes: a listing without a limit answers DefaultListLimit
// rows; one asking for more than MaxListLimit is refused, not cut short.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// CertPage is a page of a certificate listing. Next is the key of its
// last row when more may follow (list again with After: Next), zero on
// the last page.
type CertPage struct {
	Certificates []CertView
	Next         store.CertificateKey
}

// PolicyResult is a dry run's answer.
type PolicyResult struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
	// Certificate is the would-be certificate, PEM, signed by a throw-away key.
	Certificate string    `json:"certificate,omitempty"`
	Subject     string    `json:"subject,omitempty"`
	SANs        []string  `json:"sans,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
}

// RequestView describes an enrollment request (transaction).
type RequestView struct {
	Profile       string    `json:"profile"`
	TransactionID string    `json:"transaction_id"`
	Status        string    `json:"status"`
	Subject       string    `json:"subject"`
	SANs          []string  `json:"sans"`
	Serial        string    `json:"serial,omitempty"`
	DecidedBy     string    `json:"decided_by,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Created       time.Time `json:"created"`
	Expires       time.Time `json:"expires,omitzero"`
}

// ChallengeView is a new one-time challenge, shown once.
type ChallengeView struct {
	Challenge string    `json:"challenge"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EntityRequest registers an end entity.
type EntityRequest struct {
	Username string `json:"username"`
	Code     string `json:"code,omitempty"`
	Uses     int    `json:"uses,omitempty"`
	TTL      string `json:"ttl,omitempty"` // Go duration, default 168h
}

// EntityView describes an end entity; the code only when just created.
type EntityView struct {
	Profile  string    `json:"profile"`
	Username string    `json:"username"`
	Code     string    `json:"code,omitempty"`
	UsesLeft int       `json:"uses_left"`
	Expires  time.Time `json:"expires"`
}

// TokenRequest asks for a token.
type TokenRequest struct {
	Name     string   `json:"name"`
	Role     Role     `json:"role"`
	Profiles []string `json:"profiles,omitempty"`
}

// TokenView describes a token; never its secret.
type TokenView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Profiles []string  `json:"profiles,omitempty"`
	Created  time.Time `json:"created"`
	Revoked  time.Time `json:"revoked,omitzero"`
}

// NewTokenView is a created token with its secret, shown once.
type NewTokenView struct {
	TokenView
	Token string `json:"token"`
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

func fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

func caView(row store.CA) (CAView, error) {
	c, err := x509.ParseCertificate(row.CertDER)
	if err != nil {
		return CAView{}, fmt.Errorf("admin: CA %q certificate: %w", row.ID, err)
	}
	_, isRSA := c.PublicKey.(*rsa.PublicKey)
	return CAView{
		ID: row.ID, Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: c.SerialNumber.Text(16),
		KeyType: ca.PublicKeyAlgorithm(c.PublicKey), NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		Root: len(row.ChainDER) == 0 && c.CheckSignatureFrom(c) == nil, ChainLen: 1 + len(row.ChainDER), SHA256: fingerprint(row.CertDER),
		CAMode: isRSA && c.KeyUsage&x509.KeyUsageKeyEncipherment != 0,
	}, nil
}

func (b *bound) ListCAs(ctx context.Context) ([]CAView, error) {
	if err := b.checkGlobal(ctx, ActRead); err != nil {
		return nil, err
	}
	rows, err := b.s.Store.ListCAs(ctx)
	if err != nil {
		return nil, err
	}
	out := []CAView{}
	for _, r := range rows {
		v, err := caView(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (b *bound) GetCA(ctx context.Context, id string) (CAView, error) {
	if err := b.checkGlobal(ctx, ActRead); err != nil {
		return CAView{}, err
	}
	row, err := b.s.Store.GetCA(ctx, id)
	if err != nil {
		return CAView{}, err
	}
	return caView(row)
}

func (b *bound) CAChain(ctx context.Context, id string) ([][]byte, error) {
	if err := b.checkGlobal(ctx, ActRead); err != nil {
		return nil, err
	}
	row, err := b.s.Store.GetCA(ctx, id)
	if err != nil {
		return nil, err
	}
	return append([][]byte{row.CertDER}, row.ChainDER...), nil
}

func (b *bound) CreateCA(ctx context.Context, spec config.CA) (CAView, error) {
	if err := b.checkGlobal(ctx, ActManage); err != nil {
		return CAView{}, err
	}
	row, err := provision.CreateCA(ctx, b.s.Store, b.s.Keys, spec, provision.Inline(), b.s.Now())
	if err != nil {
		b.audit(ctx, "ca.create", "ca:"+spec.ID, "failed", map[string]string{"error": err.Error()})
		return CAView{}, err
	}
	how := "created"
	if spec.Import != nil {
		how = "imported"
	}
	b.audit(ctx, "ca.create", "ca:"+row.ID, "ok", map[string]string{"how": how})
	b.reload(ctx)
	return caView(row)
}

func profileView(p store.Profile) (ProfileView, error) {
	v := ProfileView{
		ID: p.ID, CA: p.CAID, Path: "/scep/" + p.ID + "/pkiclient.exe", Source: p.Source, ChallengeMode: p.ChallengeMode,
		CAMode: p.CAMode, IncludeCACert: p.IncludeCACert, FullChain: p.FullChain, AllowDES: p.AllowDES,
		RASHA256: fingerprint(p.RACertDER), Created: p.Created, Updated: p.Updated,
	}
	if p.ChallengeMode == store.ChallengeDynamic {
		v.ChallengeTTL, v.MaxPending = p.ChallengeTTL.String(), p.ChallengeMaxPending
	}
	if c, err := x509.ParseCertificate(p.RACertDER); err == nil {
		v.RASubject = c.Subject.String()
	}
	pc, err := provision.StoredPolicy(p)
	if err != nil {
		return v, fmt.Errorf("admin: %w", err)
	}
	v.Policy = pc
	return v, nil
}

func (b *bound) ListProfiles(ctx context.Context) ([]ProfileView, error) {
	if err := b.check(ctx, ActRead, ""); err != nil {
		return nil, err
	}
	rows, err := b.s.Store.ListProfiles(ctx)
	if err != nil {
		return nil, err
	}
	out := []ProfileView{}
	for _, r := range rows {
		if !b.a.Allowed(ActRead, r.ID) {
			continue
		}
		v, err := profileView(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (b *bound) GetProfile(ctx context.Context, id string) (ProfileView, error) {
	if err := b.check(ctx, ActRead, id); err != nil {
		return ProfileView{}, err
	}
	p, err := b.s.Store.GetProfile(ctx, id)
	if err != nil {
		return ProfileView{}, err
	}
	return profileView(p)
}

// SecretEnvPrefix starts the name of every environment variable a profile
// written through the API (REST, console, `scepd profile apply`) may name.
// The server resolves these names itself and hands the values to the URLs
// the profile names (the Intune client secret to its login URL; the
// webhook's HMAC key signs what goes to its URL), so the API must not
// reach the server's other variables (database URL, key passphrase, PINs).
// The config file, which the operator writes, may name any.
const SecretEnvPrefix = "SCEPD_SECRET_"

// checkSecretEnvs refuses a variable without SecretEnvPrefix.
func checkSecretEnvs(c config.Challenge) error {
	var names [][2]string
	if c.Webhook != nil {
		names = append(names, [2]string{"challenge.webhook.secret_env", c.Webhook.SecretEnv})
	}
	if c.Intune != nil {
		names = append(names, [2]string{"challenge.intune.client_secret_env", c.Intune.ClientSecretEnv})
	}
	for _, n := range names {
		if n[1] != "" && !strings.HasPrefix(n[1], SecretEnvPrefix) {
			return fmt.Errorf("%w: %s: through the API, only environment variables starting with %s (%s is not one)", ErrInvalid, n[0], SecretEnvPrefix, n[1])
		}
	}
	return nil
}

// remoteValidation names where a challenge mode sends requests for
// validation (webhook, Intune; "" for the modes that validate locally).
func remoteValidation(mode string, c config.Challenge) string {
	switch mode {
	case store.ChallengeWebhook:
		if c.Webhook != nil {
			return store.ChallengeWebhook + " " + c.Webhook.URL
		}
		return store.ChallengeWebhook
	case store.ChallengeIntune:
		if c.Intune != nil {
			return store.ChallengeIntune + " " + c.Intune.LoginURL + " " + c.Intune.GraphURL
		}
		return store.ChallengeIntune
	}
	return ""
}

// scopedChange says why a token limited to profiles may not make a
// profile spec of cur ("" when it may). Such a token changes its
// profiles' settings, but not what ties a profile to CA keys (its CA,
// rollover, ca_mode), to profiles beyond the token (renewal.from_profiles
// with revoke_old would revoke theirs), nor where delegated validation
// sends requests (the mode to or from webhook or intune, their URLs).
func (b *bound) scopedChange(cur store.Profile, spec config.Profile) string {
	if cur.CAID != spec.CA {
		return "a CA change needs an unscoped token"
	}
	if cur.CAMode != spec.CAMode {
		return "a ca_mode change needs an unscoped token"
	}
	lc, err := provision.StoredLifecycle(cur)
	if err != nil {
		return "the stored rollover is unreadable; changes need an unscoped token"
	}
	if lc.Rollover.NextCA != spec.Rollover.NextCA || !lc.Rollover.At.Equal(spec.Rollover.At) {
		return "a rollover change needs an unscoped token"
	}
	for _, id := range spec.Renewal.FromProfiles {
		if !slices.Contains(b.a.Profiles, id) {
			return fmt.Sprintf("renewal.from_profiles names %s, beyond the token's profiles", id)
		}
	}
	cc, err := provision.StoredChallenge(cur)
	if err != nil {
		return "the stored challenge settings are unreadable; changes need an unscoped token"
	}
	if remoteValidation(cur.ChallengeMode, cc) != remoteValidation(spec.Challenge.Mode, spec.Challenge) {
		return "a change of the webhook or Intune mode or URLs needs an unscoped token"
	}
	return ""
}

func (b *bound) PutProfile(ctx context.Context, spec config.Profile) (ProfileView, error) {
	if err := b.check(ctx, ActManage, spec.ID); err != nil {
		return ProfileView{}, err
	}
	if err := checkSecretEnvs(spec.Challenge); err != nil {
		return ProfileView{}, err
	}
	if len(b.a.Profiles) > 0 {
		// A profile also names its CA, which a token limited to profiles
		// may not touch: it may change its profiles, on the CAs they have.
		cur, err := b.s.Store.GetProfile(ctx, spec.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return ProfileView{}, err
		}
		if err != nil {
			b.audit(ctx, "authz", "profile:"+spec.ID, "denied", map[string]string{"action": actionNames[ActManage], "role": string(b.a.Role), "reason": "creating a profile needs an unscoped token"})
			return ProfileView{}, fmt.Errorf("%w: creating a profile needs a token not limited to profiles", ErrForbidden)
		}
		if reason := b.scopedChange(cur, spec); reason != "" {
			b.audit(ctx, "authz", "profile:"+spec.ID, "denied", map[string]string{"action": actionNames[ActManage], "role": string(b.a.Role), "reason": reason})
			return ProfileView{}, fmt.Errorf("%w: %s (this token is limited to profiles %v)", ErrForbidden, reason, b.a.Profiles)
		}
	}
	p, created, err := provision.UpsertProfile(ctx, b.s.Store, b.s.Keys, spec, store.SourceAPI, provision.Inline(), b.s.Now())
	action := "profile.update"
	if created {
		action = "profile.create"
	}
	if err != nil {
		b.audit(ctx, action, "profile:"+spec.ID, "failed", map[string]string{"error": err.Error()})
		return ProfileView{}, err
	}
	b.audit(ctx, action, "profile:"+p.ID, "ok", map[string]string{"ca": p.CAID, "challenge_mode": p.ChallengeMode})
	b.reload(ctx)
	return profileView(p)
}

func (b *bound) PolicyTest(ctx context.Context, profile string, csrDER []byte) (PolicyResult, error) {
	if err := b.check(ctx, ActRead, profile); err != nil {
		return PolicyResult{}, err
	}
	// The dry run evaluates the policy enrollment issues with: the served
	// profile's, compiled once when profiles load (with the public URL's
	// CRL and AIA URLs, under the CA a rollover has switched to).
	if b.s.Profile == nil {
		return PolicyResult{}, b.s.unavailable("policy dry runs")
	}
	p := b.s.Profile(profile)
	if p == nil {
		if _, err := b.s.Store.GetProfile(ctx, profile); err != nil {
			return PolicyResult{}, err
		}
		return PolicyResult{}, fmt.Errorf("admin: profile %q is stored but not served (yet)", profile)
	}
	issuer := p.CA.Cert
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return PolicyResult{}, fmt.Errorf("%w: not a PKCS#10 request: %v", ErrInvalid, err)
	}
	tmpl, err := p.Policy.Evaluate(csr, issuer, p.ID, b.s.Now())
	if err != nil {
		return PolicyResult{Allowed: false, Reason: err.Error()}, nil
	}
	der, err := previewSign(tmpl, issuer, csr.PublicKey)
	if err != nil {
		return PolicyResult{}, err
	}
	c, _ := x509.ParseCertificate(der)
	return PolicyResult{Allowed: true, Certificate: pemCert(der), Subject: c.Subject.String(), SANs: ca.SANs(c), NotAfter: c.NotAfter}, nil
}

// previewSign signs tmpl with a throw-away key of the CA's key type, under
// a stand-in of the CA certificate: every field is what the real CA would
// issue, but the signature is not the CA's.
func previewSign(tmpl *x509.Certificate, issuer *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	var key crypto.Signer
	var err error
	switch k := issuer.PublicKey.(type) {
	case *ecdsa.PublicKey:
		key, err = ecdsa.GenerateKey(k.Curve, rand.Reader)
	case *rsa.PublicKey:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	standIn := *issuer
	standIn.PublicKey = key.Public()
	t := *tmpl
	if t.SerialNumber, err = ca.NewSerial(rand.Reader); err != nil {
		return nil, err
	}
	return x509.CreateCertificate(rand.Reader, &t, &standIn, pub, key)
}

func (b *bound) CreateChallenge(ctx context.Context, profile, bind string) (ChallengeView, error) {
	if err := b.check(ctx, ActChallenge, profile); err != nil {
		return ChallengeView{}, err
	}
	p, err := b.s.Store.GetProfile(ctx, profile)
	if err != nil {
		return ChallengeView{}, err
	}
	if p.ChallengeMode != store.ChallengeDynamic {
		return ChallengeView{}, fmt.Errorf("%w: profile %q uses %s challenges, not dynamic ones", ErrInvalid, p.ID, p.ChallengeMode)
	}
	d := &challenge.Dynamic{ProfileID: p.ID, Store: b.s.Store, TTL: p.ChallengeTTL, MaxPending: p.ChallengeMaxPending, Now: b.s.Now, Limit: b.s.MintLimit,
		Hex: provision.HexChallenges(p)}
	if d.Source, err = provision.ChallengeSource(p, os.Getenv); err != nil {
		return ChallengeView{}, err
	}
	secret, exp, err := d.CreateFor(ctx, bind, b.a.Name)
	if err != nil {
		b.audit(ctx, "challenge.create", "profile:"+p.ID, "failed", map[string]string{"error": err.Error()})
		return ChallengeView{}, err
	}
	b.audit(ctx, "challenge.create", "profile:"+p.ID, "ok", map[string]string{"expires_at": exp.UTC().Format(time.RFC3339), "bound_to": bind})
	return ChallengeView{Challenge: secret, ExpiresAt: exp.UTC()}, nil
}

func randomSecret() (string, error) {
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

func (b *bound) RotateChallenge(ctx context.Context, profile, secret string, overlap time.Duration) (ChallengeView, error) {
	if err := b.check(ctx, ActManage, profile); err != nil {
		return ChallengeView{}, err
	}
	p, err := b.s.Store.GetProfile(ctx, profile)
	if err != nil {
		return ChallengeView{}, err
	}
	if p.Source == store.SourceConfig {
		return ChallengeView{}, provision.ErrManaged
	}
	if p.ChallengeMode != store.ChallengeStatic {
		return ChallengeView{}, fmt.Errorf("%w: profile %q uses %s challenges, not a static one", ErrInvalid, p.ID, p.ChallengeMode)
	}
	shown := ""
	if secret == "" {
		if secret, err = randomSecret(); err != nil {
			return ChallengeView{}, err
		}
		shown = secret
	}
	if len(secret) < challenge.MinStaticLength {
		return ChallengeView{}, fmt.Errorf("%w: a static challenge needs at least %d characters", ErrInvalid, challenge.MinStaticLength)
	}
	hash, err := challenge.HashPassword(secret)
	if err != nil {
		return ChallengeView{}, err
	}
	now := b.s.Now()
	p.ChallengePrevHash, p.ChallengePrevUntil = "", time.Time{}
	if overlap > 0 {
		p.ChallengePrevHash, p.ChallengePrevUntil = p.ChallengeHash, now.Add(overlap)
	}
	p.ChallengeHash, p.Updated = hash, now
	if err := b.s.Store.UpdateProfile(ctx, p); err != nil {
		return ChallengeView{}, err
	}
	b.audit(ctx, "profile.challenge.rotate", "profile:"+p.ID, "ok", map[string]string{"overlap": overlap.String()})
	b.reload(ctx)
	return ChallengeView{Challenge: shown, ExpiresAt: p.ChallengePrevUntil}, nil
}

func (b *bound) PutEntity(ctx context.Context, profile string, req EntityRequest) (EntityView, error) {
	if err := b.check(ctx, ActManage, profile); err != nil {
		return EntityView{}, err
	}
	p, err := b.s.Store.GetProfile(ctx, profile)
	if err != nil {
		return EntityView{}, err
	}
	if p.ChallengeMode != store.ChallengeEntity {
		return EntityView{}, fmt.Errorf("%w: profile %q does not use registered end entities", ErrInvalid, profile)
	}
	if req.Username == "" || len(req.Username) > 64 {
		return EntityView{}, fmt.Errorf("%w: a username of 1 to 64 characters is required", ErrInvalid)
	}
	code := req.Code
	if code == "" {
		if code, err = randomSecret(); err != nil {
			return EntityView{}, err
		}
	}
	if len(code) < challenge.MinStaticLength {
		return EntityView{}, fmt.Errorf("%w: an enrollment code needs at least %d characters", ErrInvalid, challenge.MinStaticLength)
	}
	ttl := 7 * 24 * time.Hour
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return EntityView{}, fmt.Errorf("%w: ttl %q", ErrInvalid, req.TTL)
		}
	}
	uses := req.Uses
	if uses <= 0 {
		uses = 1
	}
	now := b.s.Now()
	e := store.Entity{ProfileID: profile, Username: req.Username, CodeHash: challenge.Hash(code), UsesLeft: uses, Expires: now.Add(ttl), Created: now}
	if err := b.s.Store.PutEntity(ctx, e); err != nil {
		return EntityView{}, err
	}
	b.audit(ctx, "entity.register", "entity:"+profile+"/"+req.Username, "ok", map[string]string{"profile": profile, "uses": fmt.Sprint(uses), "expires_at": e.Expires.UTC().Format(time.RFC3339)})
	v := EntityView{Profile: profile, Username: req.Username, UsesLeft: uses, Expires: e.Expires}
	if req.Code == "" {
		v.Code = code // generated: shown once
	}
	return v, nil
}

func (b *bound) ListEntities(ctx context.Context, profile string) ([]EntityView, error) {
	if err := b.check(ctx, ActRead, profile); err != nil {
		return nil, err
	}
	list, err := b.s.Store.ListEntities(ctx, profile)
	if err != nil {
		return nil, err
	}
	out := []EntityView{}
	for _, e := range list {
		out = append(out, EntityView{Profile: e.ProfileID, Username: e.Username, UsesLeft: e.UsesLeft, Expires: e.Expires})
	}
	return out, nil
}

func certView(c store.Certificate) CertView {
	sans := c.SANs
	if sans == nil {
		sans = []string{}
	}
	v := CertView{Serial: c.Serial, Profile: c.ProfileID, TransactionID: c.TransactionID, Subject: c.Subject, SANs: sans,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Status: c.Status, Created: c.Created, DER: c.DER,
		RenewedSerial: c.RenewedSerial, RevokedAt: c.RevokedAt, Upstream: c.Upstream}
	if c.Status == store.CertRevoked {
		v.RevocationReason = ca.ReasonName(c.RevocationReason)
	}
	return v
}

func (b *bound) ListCertificates(ctx context.Context, f store.CertificateFilter) (CertPage, error) {
	if err := b.check(ctx, ActRead, f.ProfileID); err != nil {
		return CertPage{}, err
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxListLimit:
		return CertPage{}, fmt.Errorf("%w: limit %d is over the maximum of %d; follow the next cursor for more", ErrInvalid, f.Limit, MaxListLimit)
	case f.Limit == 0:
		f.Limit = DefaultListLimit
	}
	if f.Offset > 0 && !f.After.IsZero() {
		return CertPage{}, fmt.Errorf("%w: a cursor and an offset together", ErrInvalid)
	}
	// A token limited to profiles lists theirs, in the query, so that
	// pages and counts are right.
	f.Profiles = b.a.Profiles
	// One row more than the page says whether another page follows, so
	// the last page has no cursor (and no empty page after it).
	want := f.Limit
	f.Limit++
	rows, err := b.s.Store.ListCertificates(ctx, f)
	if err != nil {
		return CertPage{}, err
	}
	var page CertPage
	if len(rows) > want {
		rows = rows[:want]
		last := rows[want-1]
		page.Next = store.CertificateKey{Created: last.Created, Serial: last.Serial}
	}
	page.Certificates = make([]CertView, 0, len(rows))
	for _, r := range rows {
		page.Certificates = append(page.Certificates, certView(r))
	}
	return page, nil
}

// certificate authorises act on a certificate and fetches it. One of a
// profile beyond a scoped token's is not found, exactly like an unknown
// serial (same status, same body): the token learns nothing of other
// profiles. A refused change is still audited for the operator.
func (b *bound) certificate(ctx context.Context, act Action, serial string) (store.Certificate, error) {
	if err := b.check(ctx, act, ""); err != nil {
		return store.Certificate{}, err
	}
	c, err := b.s.Store.GetCertificate(ctx, normalSerial(serial))
	if err != nil {
		return store.Certificate{}, err
	}
	if !b.a.Allowed(act, c.ProfileID) {
		if act != ActRead {
			b.audit(ctx, "authz", "profile:"+c.ProfileID, "denied", map[string]string{"action": actionNames[act], "role": string(b.a.Role),
				"serial": c.Serial, "reason": "a certificate of a profile beyond the token's"})
		}
		return store.Certificate{}, fmt.Errorf("certificate %s: %w", c.Serial, ErrNotFound)
	}
	return c, nil
}

func (b *bound) GetCertificate(ctx context.Context, serial string) (CertView, error) {
	c, err := b.certificate(ctx, ActRead, serial)
	if err != nil {
		return CertView{}, err
	}
	return certView(c), nil
}

// revocationReason is the RFC 5280 code of a reason name ("": unspecified).
func revocationReason(reason string) (int, error) {
	code, ok := ca.ReasonCode(reason)
	if reason == "" {
		code, ok = ca.ReasonUnspecified, true
	}
	if !ok {
		return 0, fmt.Errorf("%w: reason %q is not an RFC 5280 reason (%s)", ErrInvalid, reason, strings.Join(ca.ReasonNames(), ", "))
	}
	return code, nil
}

func (b *bound) Revoke(ctx context.Context, serial, reason string) (CertView, error) {
	code, err := revocationReason(reason)
	if err != nil {
		return CertView{}, err
	}
	c, err := b.certificate(ctx, ActOperate, serial)
	if err != nil {
		return CertView{}, err
	}
	if b.s.Revocation == nil {
		return CertView{}, b.s.unavailable("revocation is")
	}
	c, err = b.s.Revocation.Revoke(ctx, c.Serial, code, b.a.Name)
	if err != nil {
		return CertView{}, err
	}
	return certView(c), nil
}

func (b *bound) RevokeSubject(ctx context.Context, subject, reason string) ([]CertView, error) {
	if subject == "" {
		return nil, fmt.Errorf("%w: a subject is required", ErrInvalid)
	}
	code, err := revocationReason(reason)
	if err != nil {
		return nil, err
	}
	if err := b.check(ctx, ActOperate, ""); err != nil {
		return nil, err
	}
	// A token limited to profiles revokes within them: the query holds
	// only their certificates, so that another profile's neither shows
	// (the answer is the same whether the subject exists there or not)
	// nor blocks the revocation.
	list, err := b.s.Store.ListCertificates(ctx, store.CertificateFilter{Subject: subject, Status: store.CertValid, Profiles: b.a.Profiles, Limit: 100000})
	if err != nil {
		return nil, err
	}
	// The filter matches substrings; revocation needs the exact subject.
	list = slices.DeleteFunc(list, func(c store.Certificate) bool { return c.Subject != subject })
	// All or nothing: every certificate is authorised before the first is
	// revoked.
	for _, c := range list {
		if err := b.check(ctx, ActOperate, c.ProfileID); err != nil {
			return nil, err
		}
	}
	if b.s.Revocation == nil {
		return nil, b.s.unavailable("revocation is")
	}
	out := []CertView{}
	for _, c := range list {
		revoked, err := b.s.Revocation.Revoke(ctx, c.Serial, code, b.a.Name)
		if err != nil {
			return out, err
		}
		out = append(out, certView(revoked))
	}
	return out, nil
}

func requestView(t store.Transaction) RequestView {
	v := RequestView{Profile: t.ProfileID, TransactionID: t.TransactionID, Status: t.Status, Serial: t.CertSerial, DecidedBy: t.DecidedBy,
		Reason: t.Reason, Created: t.Created, Expires: t.Expires, SANs: []string{}}
	if csr, err := x509.ParseCertificateRequest(t.CSRDER); err == nil {
		v.Subject = csr.Subject.String()
		v.SANs = ca.CSRSANs(csr)
		if v.SANs == nil {
			v.SANs = []string{}
		}
	}
	return v
}

func (b *bound) ListRequests(ctx context.Context, profile, status string) ([]RequestView, error) {
	if err := b.check(ctx, ActRead, profile); err != nil {
		return nil, err
	}
	if status == "" {
		status = store.StatusPending
	}
	list, err := b.s.Store.ListTransactions(ctx, store.TransactionFilter{ProfileID: profile, Profiles: b.a.Profiles, Status: status, Limit: 1000})
	if err != nil {
		return nil, err
	}
	out := []RequestView{}
	for _, t := range list {
		if b.a.Allowed(ActRead, t.ProfileID) {
			out = append(out, requestView(t))
		}
	}
	return out, nil
}

func (b *bound) decider(ctx context.Context, profile string) (*enroll.Profile, error) {
	if err := b.check(ctx, ActOperate, profile); err != nil {
		return nil, err
	}
	if b.s.Profile == nil || b.s.Enroll == nil {
		return nil, b.s.unavailable("approvals are")
	}
	p := b.s.Profile(profile)
	if p == nil {
		return nil, fmt.Errorf("profile %q: %w", profile, store.ErrNotFound)
	}
	return p, nil
}

func (b *bound) Approve(ctx context.Context, profile, transactionID string) (CertView, error) {
	p, err := b.decider(ctx, profile)
	if err != nil {
		return CertView{}, err
	}
	cert, err := b.s.Enroll.Approve(ctx, p, transactionID, b.a.Name)
	if err != nil {
		if errors.Is(err, enroll.ErrNotApprovable) {
			return CertView{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if errors.Is(err, store.ErrConflict) {
			return CertView{}, b.decided(ctx, profile, transactionID, err)
		}
		return CertView{}, err
	}
	c, err := b.s.Store.GetCertificate(ctx, cert.SerialNumber.Text(16))
	if err != nil {
		return CertView{}, err
	}
	return certView(c), nil
}

func (b *bound) Reject(ctx context.Context, profile, transactionID, reason string) error {
	p, err := b.decider(ctx, profile)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "rejected by an operator"
	}
	err = b.s.Enroll.Reject(ctx, p, transactionID, b.a.Name, reason)
	if errors.Is(err, store.ErrNotFound) { // no such request, or not pending
		return b.decided(ctx, profile, transactionID, err)
	}
	return err
}

// DecidedError is the answer to deciding a request that is no longer
// pending: another operator, a second click or a stale page came first.
// It is a store.ErrConflict.
type DecidedError struct {
	TransactionID string
	// Status is the request's state: issued or rejected.
	Status string
	// By is who decided, empty when scepd did (an expired request).
	By     string
	At     time.Time
	Reason string
}

func (e *DecidedError) Error() string {
	verb := "approved"
	if e.Status == store.StatusRejected {
		verb = "rejected"
	}
	msg := fmt.Sprintf("request %s was already %s", e.TransactionID, verb)
	if e.By != "" {
		msg += " by " + e.By
	}
	msg += " at " + e.At.UTC().Format("2006-01-02 15:04:05 UTC")
	if e.Status == store.StatusRejected && e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

func (e *DecidedError) Unwrap() error { return store.ErrConflict }

// decided explains why deciding a request failed with err: when the
// request exists and is no longer pending, a DecidedError naming who
// decided it and when; otherwise err.
func (b *bound) decided(ctx context.Context, profile, transactionID string, err error) error {
	tx, gerr := b.s.Store.GetTransaction(ctx, profile, transactionID)
	if gerr != nil || tx.Status == store.StatusPending {
		return err
	}
	return &DecidedError{TransactionID: transactionID, Status: tx.Status, By: tx.DecidedBy, At: tx.Updated, Reason: tx.Reason}
}

func (s *Service) unavailable(what string) error {
	if s.Unavailable != nil {
		return fmt.Errorf("admin: %s not available here: %w", what, s.Unavailable)
	}
	return fmt.Errorf("admin: %s not available here", what)
}

// normalSerial accepts serials as operators paste them: colons, leading
// zeros, upper case.
func normalSerial(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return s
}

func tokenView(t store.Token) TokenView {
	return TokenView{ID: t.ID, Name: t.Name, Role: t.Role, Profiles: t.Profiles, Created: t.Created, Revoked: t.Revoked}
}

func (b *bound) CreateToken(ctx context.Context, req TokenRequest) (NewTokenView, error) {
	if err := b.checkGlobal(ctx, ActTokens); err != nil {
		return NewTokenView{}, err
	}
	if !ValidRole(req.Role) {
		return NewTokenView{}, fmt.Errorf("%w: role %q: want admin, operator, mdm or auditor", ErrInvalid, req.Role)
	}
	for _, p := range req.Profiles {
		if _, err := b.s.Store.GetProfile(ctx, p); err != nil {
			return NewTokenView{}, fmt.Errorf("%w: profile %q: %v", ErrInvalid, p, err)
		}
	}
	secret, t, err := NewToken(req.Name, req.Role, req.Profiles)
	if err != nil {
		return NewTokenView{}, err
	}
	t.Created = b.s.Now()
	if err := b.s.Store.CreateToken(ctx, t); err != nil {
		return NewTokenView{}, err
	}
	b.audit(ctx, "token.create", "token:"+t.ID, "ok", map[string]string{"role": t.Role, "name": t.Name, "profiles": strings.Join(t.Profiles, ",")})
	return NewTokenView{TokenView: tokenView(t), Token: secret}, nil
}

func (b *bound) ListTokens(ctx context.Context) ([]TokenView, error) {
	if err := b.checkGlobal(ctx, ActReadTokens); err != nil {
		return nil, err
	}
	rows, err := b.s.Store.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := []TokenView{}
	for _, t := range rows {
		out = append(out, tokenView(t))
	}
	return out, nil
}

func (b *bound) RevokeToken(ctx context.Context, id string) error {
	if err := b.checkGlobal(ctx, ActTokens); err != nil {
		return err
	}
	if err := b.s.Store.RevokeToken(ctx, id, b.s.Now()); err != nil {
		return err
	}
	b.audit(ctx, "token.revoke", "token:"+id, "ok", nil)
	return nil
}

func (b *bound) ListAudit(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	if err := b.check(ctx, ActRead, ""); err != nil {
		return nil, err
	}
	if !b.a.ReadsAudit() {
		return nil, ErrForbidden
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	// A token limited to profiles reads their events only (subjects and
	// client addresses of other profiles are not its business); events of
	// no profile (CAs, tokens, sign-ins) are for unscoped tokens.
	return b.s.Store.ListAudit(ctx, limit, b.a.Profiles...)
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
