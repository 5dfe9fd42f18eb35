// Package provision creates what a zero-config start needs (a root CA and
// a `default` profile with its RA identity and static challenge), creates
// and updates CAs and profiles from specs (config file, API), and reads the
// settings a profile row stores back, typed. Serving profiles are built
// from the rows by the server package.
package provision

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
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
// SCEPD_CHALLENGE is applied when the profile is created and when its
// value changed since it was last applied (the profile records a hash of
// that value), not because the profile's challenge differs from it: a
// challenge rotated since stays in force. A profile recording none (a row
// from before migration 0017) gets the environment's value as before.
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
		fromEnv := mode == store.ChallengeStatic && o.Challenge != ""
		if fromEnv && existing.ChallengeMode == store.ChallengeStatic && existing.ChallengeHash != "" && existing.ChallengeEnvHash != "" {
			// SCEPD_CHALLENGE is applied when it changes, not whenever it
			// differs from the profile's: a challenge rotated since (API,
			// CLI, console), e.g. because the environment's leaked, stays
			// in force with its overlap. One argon2id verification.
			if matchesHash(ctx, existing.ChallengeEnvHash, o.Challenge) {
				if existing.ChallengeHash != existing.ChallengeEnvHash {
					o.Log.Info("the default profile's challenge was changed since SCEPD_CHALLENGE was applied; keeping it, the environment's is not in force (set a new SCEPD_CHALLENGE to replace it)",
						"profile", DefaultID)
				}
				return res, nil
			}
			if existing.ChallengeEnvHash == existing.ChallengeHash {
				// The profile's challenge is the environment's previous
				// value, which the new one does not match: replace it
				// without verifying again (applyChallenge would).
				p.ChallengeHash = ""
			}
		}
		if err := applyChallenge(ctx, &p, spec.Challenge, Inline()); err != nil {
			return res, err
		}
		// The environment's value now in force is recorded (as the
		// profile's hash: it is a hash of that value); no environment
		// value, nothing recorded.
		p.ChallengeEnvHash = ""
		if fromEnv {
			p.ChallengeEnvHash = p.ChallengeHash
		}
		if p.ChallengeHash == existing.ChallengeHash && p.ChallengeMode == existing.ChallengeMode {
			if p.ChallengeEnvHash != existing.ChallengeEnvHash {
				// Unchanged challenge (a row from before the environment's
				// hash was recorded, or one rotated to the new value):
				// record the value without announcing a change, and change
				// nothing else.
				rec := existing
				rec.ChallengeEnvHash = p.ChallengeEnvHash
				if err := st.UpdateProfile(ctx, rec); err != nil {
					return res, err
				}
			}
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
	if mode == store.ChallengeStatic && o.Challenge != "" {
		// Recorded so that later starts apply SCEPD_CHALLENGE only when it
		// changes. Until then a replica starting sees nothing recorded and
		// applies it as before (the same value: nothing changes).
		p.ChallengeEnvHash = p.ChallengeHash
		if err := st.UpdateProfile(ctx, p); err != nil {
			return res, err
		}
	}
	o.Log.Info("created profile", "profile", p.ID, "ra_key", o.RAKeyType, "challenge", mode)
	audit(ctx, st, now, "profile.create", "profile:"+DefaultID, map[string]string{"challenge_mode": mode})
	return res, nil
}

// matchesHash says whether secret is the one an argon2id hash (PHC string)
// was made from; an unreadable hash matches nothing.
func matchesHash(ctx context.Context, hash, secret string) bool {
	v, err := challenge.NewStatic(hash)
	if err != nil {
		return false
	}
	_, err = v.Validate(ctx, challenge.Request{Password: secret})
	return err == nil
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
	// A key that is not the certificate's would sign certificates and CRLs
	// nobody can verify (only RSA signatures are checked as they are made).
	if !ca.KeyMatches(cert, key) {
		return nil, fmt.Errorf("provision: CA %q: the key %s is not the CA certificate's", row.ID, row.KeyRef)
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
