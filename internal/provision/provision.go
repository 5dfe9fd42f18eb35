// Package provision creates what a zero-config start needs (a root CA and
// a `default` profile with its RA identity and static challenge) and loads
// stored profiles into their serving form.
package provision

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
)

// DefaultID names the CA and profile a zero-config start creates.
const DefaultID = "default"

// Store is the persistence provisioning needs.
type Store interface {
	CreateCA(ctx context.Context, c store.CA) error
	GetCA(ctx context.Context, id string) (store.CA, error)
	CreateProfile(ctx context.Context, p store.Profile) error
	GetProfile(ctx context.Context, id string) (store.Profile, error)
	UpdateProfile(ctx context.Context, p store.Profile) error
	ListProfiles(ctx context.Context) ([]store.Profile, error)
	ListCAs(ctx context.Context) ([]store.CA, error)
	AppendAudit(ctx context.Context, e store.AuditEvent) error
	challenge.DynamicStore
	challenge.EntityStore
}

// Defaults for dynamic challenges (NDES's: one hour, a cache of 5; ours
// holds more, since an MDM may request many at once).
const (
	DefaultChallengeTTL        = time.Hour
	DefaultChallengeMaxPending = 100
)

// Options for the default CA and profile.
type Options struct {
	CAKeyType ca.KeyType
	RAKeyType ca.KeyType
	// ChallengeMode is the default profile's: store.ChallengeStatic (the
	// default) or store.ChallengeDynamic (one-time challenges from
	// `scepd challenge create`).
	ChallengeMode string
	// Challenge is the default profile's static challenge (SCEPD_CHALLENGE);
	// empty means generate one on first start and report it once.
	Challenge string
	Now       func() time.Time
	Log       *slog.Logger
}

// Result says what EnsureDefault did.
type Result struct {
	CreatedCA bool
	// GeneratedChallenge is set only when a challenge was generated now; the
	// caller shows it once. It is stored only as a hash.
	GeneratedChallenge string
}

// EnsureDefault creates the default CA and profile when missing, and
// applies SCEPD_CHALLENGE and the challenge mode to the default profile.
// Replicas starting together race safely: the first row wins, the others
// remove their key files and use it.
func EnsureDefault(ctx context.Context, st Store, ks keys.Source, o Options) (Result, error) {
	var res Result
	now := o.Now()
	if _, err := st.GetCA(ctx, DefaultID); errors.Is(err, store.ErrNotFound) {
		row, err := CreateCA(ctx, st, ks, config.CA{ID: DefaultID, Create: &config.CACreate{
			Subject: "CN=scepd Root CA,O=scepd", KeyType: string(o.CAKeyType),
		}}, Inline(), now)
		switch {
		case errors.Is(err, store.ErrConflict):
			o.Log.Info("another replica created the CA first; using it", "ca", DefaultID)
		case err != nil:
			return res, err
		default:
			res.CreatedCA = true
			o.Log.Info("created root CA", "ca", row.ID, "key", o.CAKeyType, "subject", "CN=scepd Root CA,O=scepd")
			audit(ctx, st, now, "ca.create", "ca:"+DefaultID, map[string]string{"key_type": string(o.CAKeyType)})
		}
	} else if err != nil {
		return res, err
	}

	mode := o.ChallengeMode
	if mode == "" {
		mode = store.ChallengeStatic
	}
	existing, err := st.GetProfile(ctx, DefaultID)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	spec := config.Profile{ID: DefaultID, CA: DefaultID, RAKeyType: string(o.RAKeyType), Challenge: config.Challenge{Mode: mode}}
	if mode == store.ChallengeStatic {
		switch {
		case o.Challenge != "":
			spec.Challenge.Password = o.Challenge
		case exists && existing.ChallengeMode == store.ChallengeStatic:
			spec.Challenge.PasswordHash = existing.ChallengeHash
		default:
			if res.GeneratedChallenge, err = generateChallenge(); err != nil {
				return res, err
			}
			spec.Challenge.Password = res.GeneratedChallenge
		}
	}
	if exists {
		// Keep everything else the operator may have changed; only the
		// challenge settings come from the flags and environment.
		unchanged := existing.ChallengeMode == mode && (mode == store.ChallengeDynamic || o.Challenge == "")
		if unchanged {
			return res, nil
		}
		p := existing
		if err := applyChallenge(ctx, &p, spec.Challenge, Inline()); err != nil {
			return res, err
		}
		if p.ChallengeHash == existing.ChallengeHash && p.ChallengeMode == existing.ChallengeMode {
			return res, nil
		}
		p.Updated = now
		if err := st.UpdateProfile(ctx, p); err != nil {
			return res, err
		}
		o.Log.Info("challenge settings changed", "profile", DefaultID, "challenge", mode)
		audit(ctx, st, now, "profile.challenge.rotate", "profile:"+DefaultID, map[string]string{"challenge_mode": mode})
		return res, nil
	}
	p, _, err := UpsertProfile(ctx, st, ks, spec, store.SourceDefault, Inline(), now)
	if errors.Is(err, store.ErrConflict) {
		res.GeneratedChallenge = ""
		o.Log.Info("another replica created the profile first; using it", "profile", DefaultID)
		return res, nil
	}
	if err != nil {
		return res, err
	}
	o.Log.Info("created profile", "profile", p.ID, "ra_key", o.RAKeyType, "challenge", mode)
	audit(ctx, st, now, "profile.create", "profile:"+DefaultID, map[string]string{"challenge_mode": mode})
	return res, nil
}

func raSubject(profile string) pkix.Name {
	return pkix.Name{CommonName: "scepd RA (" + profile + ")", Organization: []string{"scepd"}}
}

func audit(ctx context.Context, st Store, now time.Time, action, object string, details map[string]string) {
	// Best effort at provisioning time; a failure shows in the next enrollment's error anyway.
	_ = st.AppendAudit(ctx, store.AuditEvent{Time: now, Actor: "scepd", Action: action, Object: object, Outcome: "ok", Details: details})
}

// uniqueName appends a random suffix and ".key" to a key file name.
func uniqueName(base string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("%s-%x.key", base, b)
}

// generateChallenge returns 24 random bytes as URL-safe base64 (192 bits).
func generateChallenge() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("provision: generating challenge: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// LoadCA loads a stored CA with its key.
func LoadCA(row store.CA, ks keys.Source) (*ca.CA, error) {
	cert, err := x509.ParseCertificate(row.CertDER)
	if err != nil {
		return nil, fmt.Errorf("provision: CA %q certificate: %w", row.ID, err)
	}
	key, err := ks.Load(row.KeyRef)
	if err != nil {
		return nil, fmt.Errorf("provision: CA %q: %w", row.ID, err)
	}
	out := &ca.CA{Cert: cert, Signer: key}
	for _, d := range row.ChainDER {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("provision: CA %q chain: %w", row.ID, err)
		}
		out.Chain = append(out.Chain, c)
	}
	return out, nil
}

// Overrides change how stored profiles are served, without storing anything.
type Overrides struct {
	// AllowDES lists profiles that accept single DES for this run
	// (SCEPD_ALLOW_DES=1 names the default profile).
	AllowDES map[string]bool
	// PublicURL, when set, puts AIA caIssuers and OCSP URLs and a CRL
	// distribution point in issued certificates: PublicURL/ca/{ca}.crt,
	// PublicURL/ocsp/{ca} and PublicURL/crl/{ca}.crl.
	PublicURL string
	// Now is the clock of dynamic challenges.
	Now func() time.Time
	// Getenv resolves the secrets challenge modes name by variable
	// (webhook HMAC key, Intune client secret); nil means os.Getenv.
	Getenv func(string) string
	// DeferMissingSecrets loads a profile whose challenge secret is not
	// set instead of failing: its validator refuses every request, naming
	// the variable. The CLI approves, rejects and revokes without the
	// secrets of delegated challenges, which none of these calls.
	DeferMissingSecrets bool
	// Log is handed to delegated validators.
	Log *slog.Logger
	// MintLimit rations one-time challenge minting per profile; it lives
	// outside Load so reloading profiles does not refill it.
	MintLimit challenge.MintLimiter
}

// Serving is everything a running server needs, loaded once.
type Serving struct {
	Profiles []*server.Profile
	CAs      map[string]*ca.CA
}

// Load prepares every stored profile for serving. CAs, keys and policies
// are loaded and compiled here, never per request.
func Load(ctx context.Context, st Store, ks keys.Source, ov Overrides) (*Serving, error) {
	if ov.Now == nil {
		ov.Now = time.Now
	}
	if ov.Getenv == nil {
		ov.Getenv = os.Getenv
	}
	if ov.Log == nil {
		ov.Log = slog.New(slog.DiscardHandler)
	}
	rows, err := st.ListProfiles(ctx)
	if err != nil {
		return nil, err
	}
	caRows, err := st.ListCAs(ctx)
	if err != nil {
		return nil, err
	}
	out := &Serving{CAs: map[string]*ca.CA{}}
	for _, r := range caRows {
		c, err := LoadCA(r, ks)
		if err != nil {
			return nil, err
		}
		out.CAs[r.ID] = c
	}
	for _, row := range rows {
		p, err := loadProfile(row, out.CAs, st, ks, ov)
		if err != nil {
			return nil, fmt.Errorf("provision: profile %q: %w", row.ID, err)
		}
		out.Profiles = append(out.Profiles, p)
	}
	return out, nil
}

func loadProfile(row store.Profile, cas map[string]*ca.CA, st Store, ks keys.Source, ov Overrides) (*server.Profile, error) {
	issuer := cas[row.CAID]
	if issuer == nil {
		return nil, fmt.Errorf("CA %q does not exist", row.CAID)
	}
	var lc config.Lifecycle
	if len(row.Lifecycle) > 0 {
		if err := json.Unmarshal(row.Lifecycle, &lc); err != nil {
			return nil, fmt.Errorf("lifecycle: %w", err)
		}
	}
	loadRA := func(certDER []byte, keyRef string, owner *ca.CA) (*x509.Certificate, crypto.Signer, error) {
		c, err := x509.ParseCertificate(certDER)
		if err != nil {
			return nil, nil, fmt.Errorf("RA certificate: %w", err)
		}
		if row.CAMode {
			return c, owner.Signer, nil
		}
		k, err := ks.Load(keyRef)
		if err != nil {
			return nil, nil, fmt.Errorf("RA: %w", err)
		}
		return c, k, nil
	}
	raCert, raKey, err := loadRA(row.RACertDER, row.RAKeyRef, issuer)
	if err != nil {
		return nil, err
	}
	caID := row.CAID
	var predecessor, successor *ca.CA
	var predecessorID, successorID string
	var next *server.NextCA
	if r := lc.Rollover; r.NextCA != "" {
		nextCA := cas[r.NextCA]
		if nextCA == nil {
			return nil, fmt.Errorf("rollover: CA %q does not exist", r.NextCA)
		}
		nextRA, nextKey, err := loadRA(row.NextRACertDER, row.NextRAKeyRef, nextCA)
		if err != nil {
			return nil, fmt.Errorf("rollover: %w", err)
		}
		if ov.Now().Before(r.At) {
			next = &server.NextCA{CA: nextCA, RACert: nextRA}
			successor, successorID = nextCA, r.NextCA
		} else {
			// Switched: issue under the next CA; the old one's
			// certificates (of this profile) still renew.
			predecessor, predecessorID, issuer, raCert, raKey, caID = issuer, caID, nextCA, nextRA, nextKey, r.NextCA
		}
	}
	var chc config.Challenge
	if len(row.ChallengeConfig) > 0 {
		if err := json.Unmarshal(row.ChallengeConfig, &chc); err != nil {
			return nil, fmt.Errorf("challenge settings: %w", err)
		}
	}
	var v challenge.Validator
	var dyn *challenge.Dynamic
	var ndes *server.NDESPage
	switch row.ChallengeMode {
	case store.ChallengeStatic:
		sv, err := challenge.NewStatic(row.ChallengeHash)
		if err != nil {
			return nil, err
		}
		if row.ChallengePrevHash != "" {
			if sv, err = sv.WithPrevious(row.ChallengePrevHash, row.ChallengePrevUntil, ov.Now); err != nil {
				return nil, err
			}
		}
		v = sv
	case store.ChallengeDynamic:
		dyn = &challenge.Dynamic{ProfileID: row.ID, Store: st, TTL: row.ChallengeTTL, MaxPending: row.ChallengeMaxPending, Now: ov.Now, Limit: ov.MintLimit}
		v = dyn
		if n := chc.NDES; n != nil {
			ndes = &server.NDESPage{Username: n.Username, UTF8: n.Encoding == "utf-8"}
			if n.PasswordHash != "" {
				if ndes.Password, err = challenge.NewStatic(n.PasswordHash); err != nil {
					return nil, fmt.Errorf("ndes password: %w", err)
				}
			}
		}
	case "webhook":
		w := chc.Webhook
		secret := ov.Getenv(w.SecretEnv)
		if secret == "" {
			err := fmt.Errorf("webhook: the environment variable %s (its HMAC key) is not set", w.SecretEnv)
			if !ov.DeferMissingSecrets {
				return nil, err
			}
			v = missingSecret{err}
			break
		}
		v = &challenge.Webhook{ProfileID: row.ID, URL: w.URL, Secret: []byte(secret), Timeout: time.Duration(w.Timeout), Notify: w.Notify, Now: ov.Now, Log: ov.Log}
	case "intune":
		in := chc.Intune
		secret := ov.Getenv(in.ClientSecretEnv)
		if secret == "" {
			err := fmt.Errorf("intune: the environment variable %s (the client secret) is not set", in.ClientSecretEnv)
			if !ov.DeferMissingSecrets {
				return nil, err
			}
			v = missingSecret{err}
			break
		}
		v = &challenge.Intune{ProfileID: row.ID, Tenant: in.Tenant, ClientID: in.ClientID, ClientSecret: secret, LoginURL: in.LoginURL,
			GraphURL: in.GraphURL, CAName: issuer.Cert.Subject.CommonName, Now: ov.Now, Log: ov.Log}
	case "entity":
		v = &challenge.Entity{ProfileID: row.ID, Store: st, Now: ov.Now}
	case store.ChallengeNone:
		v = challenge.None{}
	default:
		return nil, fmt.Errorf("unknown challenge mode %q", row.ChallengeMode)
	}
	var pc ca.PolicyConfig
	if len(row.Policy) > 0 {
		if err := json.Unmarshal(row.Policy, &pc); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	policy, err := pc.Compile()
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if ov.PublicURL != "" {
		base := strings.TrimRight(ov.PublicURL, "/")
		policy.IssuingCertificateURL = []string{base + "/ca/" + caID + ".crt"}
		policy.OCSPServer = []string{base + "/ocsp/" + caID}
		policy.CRLDistributionPoints = []string{base + "/crl/" + caID + ".crl"}
	}
	return server.NewProfile(server.ProfileConfig{
		Enroll: &enroll.Profile{ID: row.ID, CAID: caID, CA: issuer, Predecessor: predecessor, PredecessorID: predecessorID,
			Successor: successor, SuccessorID: successorID, RASubject: raCert.RawSubject, Policy: policy, Challenge: v,
			Renewal: renewal(lc.Renewal), Manual: lc.Approval == "manual", PendingTTL: time.Duration(lc.PendingTTL)},
		Next:          next,
		Dynamic:       dyn,
		NDES:          ndes,
		Jamf:          chc.Jamf && dyn != nil,
		RACert:        raCert,
		RAKey:         raKey,
		CAMode:        row.CAMode,
		AllowDES:      row.AllowDES || ov.AllowDES[row.ID],
		IncludeCACert: row.IncludeCACert,
		FullChain:     row.FullChain,
	})
}

// missingSecret stands in for a delegated validator whose secret the
// environment lacks (Overrides.DeferMissingSecrets): it names the secret
// when a request needs it.
type missingSecret struct{ err error }

func (m missingSecret) Validate(context.Context, challenge.Request) (challenge.Grant, error) {
	return challenge.Grant{}, m.err
}

func renewal(r config.Renewal) enroll.Renewal {
	return enroll.Renewal{Disabled: r.Disabled, Window: r.Window, AllowKeyReuse: r.KeyReuse(), RevokeOld: r.RevokeOld,
		AllowSubjectChange: r.AllowSubjectChange, FromProfiles: r.FromProfiles, Approval: r.Approval}
}

// Phase reports, for the reload fingerprint, which profiles have passed
// their rollover time: crossing it changes what they serve.
func Phase(p store.Profile, now time.Time) string {
	var lc config.Lifecycle
	if json.Unmarshal(p.Lifecycle, &lc) != nil || lc.Rollover.NextCA == "" {
		return ""
	}
	if now.Before(lc.Rollover.At) {
		return "before"
	}
	return "after"
}
