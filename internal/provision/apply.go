// Creating and applying CAs and profiles from specs: the config file
// (ApplyConfig), the API (CreateCA, UpsertProfile) and the zero-config
// start all come through here.

package provision

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/store"
)

// ErrInvalid wraps a request that cannot be carried out as given (a bad
// spec, a missing CA); the API answers it with 400 or 404.
var ErrInvalid = errors.New("invalid")

// ErrManaged is returned when the API tries to change a profile the config
// file declares: the file is authoritative for it.
var ErrManaged = errors.New("the profile is declared in the config file; change it there")

// Inputs resolves the file paths and environment variables a config
// refers to. The API passes inline values instead (Inline).
type Inputs struct {
	// ReadFile reads a path from the config; nil means the spec's strings
	// are the content itself (API requests carry inline PEM).
	ReadFile func(path string) ([]byte, error)
	Getenv   func(string) string
}

// FromFiles resolves paths on disk and the process environment (config files).
func FromFiles() Inputs { return Inputs{ReadFile: os.ReadFile, Getenv: os.Getenv} }

// Inline takes spec strings as content (API requests); no environment.
func Inline() Inputs { return Inputs{Getenv: func(string) string { return "" }} }

func (in Inputs) content(s string) ([]byte, error) {
	if in.ReadFile == nil {
		return []byte(s), nil
	}
	return in.ReadFile(s)
}

// secret is content of a file holding a secret (a CA's key, a static
// challenge): from the config file, refused when other users may read or
// write it (keys.ReadSecretFile), as every secret file scepd reads is.
func (in Inputs) secret(s string) ([]byte, error) {
	if in.ReadFile == nil {
		return []byte(s), nil
	}
	return keys.ReadSecretFile(s)
}

// CreateCA creates (root or intermediate) or imports the CA a spec declares
// and stores it. The key file is written before the row; if the row
// cannot be written the file is removed.
func CreateCA(ctx context.Context, st Store, ks keys.Source, spec config.CA, in Inputs, now time.Time) (store.CA, error) {
	if err := spec.Validate(nil); err != nil {
		return store.CA{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var issuer *ca.CA
	// ref names the CA's stored key once there is one; it is removed again
	// if the CA is not created after all.
	var ref string
	created := false
	defer func() {
		if ref != "" && !created {
			ks.Remove(ref)
		}
	}()
	switch {
	case spec.Create != nil:
		c := spec.Create
		kt := ca.KeyType(c.KeyType)
		if kt == "" {
			kt = ca.DefaultKeyType
		}
		subject, _ := ca.ParseName(c.Subject) // validated above
		key, keyRef, err := generateKey(ks, "ca/"+spec.ID, kt)
		if err != nil {
			return store.CA{}, err
		}
		ref = keyRef
		var opts []ca.CAOption
		if c.AllowCAMode {
			opts = append(opts, ca.WithKeyEncipherment())
		}
		if c.Parent == "" {
			validity := time.Duration(c.Validity)
			if validity == 0 {
				validity = 20 * 365 * 24 * time.Hour
			}
			if issuer, err = ca.NewRoot(key, subject, validity, now, opts...); err != nil {
				return store.CA{}, err
			}
		} else {
			parentRow, err := st.GetCA(ctx, c.Parent)
			if errors.Is(err, store.ErrNotFound) {
				return store.CA{}, fmt.Errorf("%w: parent CA %q does not exist", ErrInvalid, c.Parent)
			}
			if err != nil {
				return store.CA{}, err
			}
			if err := notRAIssuer(ctx, st, parentRow, "create.parent"); err != nil {
				return store.CA{}, err
			}
			parent, err := LoadCA(parentRow, ks)
			if err != nil {
				return store.CA{}, err
			}
			validity := time.Duration(c.Validity)
			if validity == 0 {
				validity = 10 * 365 * 24 * time.Hour
			}
			if issuer, err = parent.NewIntermediate(key, subject, validity, now, opts...); err != nil {
				return store.CA{}, err
			}
		}
	case spec.Import != nil:
		im := spec.Import
		var chain []*x509.Certificate
		if im.PKCS12 != "" {
			b, err := in.secret(im.PKCS12)
			if err != nil {
				return store.CA{}, fmt.Errorf("%w: reading %s: %v", ErrInvalid, im.PKCS12, err)
			}
			key, certs, err := ca.ParsePKCS12(b, in.Getenv(im.PKCS12PasswordEnv))
			if err != nil {
				return store.CA{}, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			if issuer, err = ca.Import(certs, key); err != nil {
				return store.CA{}, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			break
		}
		certPEM, err := in.content(im.Cert)
		if err != nil {
			return store.CA{}, fmt.Errorf("%w: reading the CA certificate: %v", ErrInvalid, err)
		}
		if chain, err = ca.ParseCertificatesPEM(certPEM); err != nil {
			return store.CA{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		keyPEM, err := in.secret(im.Key)
		if err != nil {
			return store.CA{}, fmt.Errorf("%w: reading the CA key: %v", ErrInvalid, err)
		}
		key, err := ks.Parse(keyPEM)
		if err != nil {
			return store.CA{}, fmt.Errorf("%w: CA key: %v", ErrInvalid, err)
		}
		if issuer, err = ca.Import(chain, key); err != nil {
			return store.CA{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if ref == "" { // an imported key: stored as a file
		var err error
		if ref, err = ks.Save(uniqueName("ca/"+spec.ID), issuer.Signer); err != nil {
			return store.CA{}, err
		}
	}
	row := store.CA{ID: spec.ID, CertDER: issuer.Cert.Raw, KeyRef: ref, Created: now}
	for _, c := range issuer.Chain {
		row.ChainDER = append(row.ChainDER, c.Raw)
	}
	if err := st.CreateCA(ctx, row); err != nil {
		return store.CA{}, err
	}
	created = true
	return row, nil
}

// UpsertProfile creates the profile a spec declares, or brings an existing
// one in line with it: settings are replaced; the RA is kept unless the
// profile changed CA or switched in or out of CA mode. source says who
// owns it; an API write to a config-owned profile is ErrManaged.
func UpsertProfile(ctx context.Context, st Store, ks keys.Source, spec config.Profile, source string, in Inputs, now time.Time) (store.Profile, bool, error) {
	if err := spec.Validate(); err != nil {
		return store.Profile{}, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	policy, _ := json.Marshal(spec.Policy)
	lifecycle, _ := json.Marshal(spec.Lifecycle)
	existing, err := st.GetProfile(ctx, spec.ID)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return store.Profile{}, false, err
	}
	if !created && existing.Source == store.SourceConfig && source != store.SourceConfig {
		return store.Profile{}, false, ErrManaged
	}
	if !created {
		if err := keepSwitched(existing, spec, now); err != nil {
			return store.Profile{}, false, err
		}
	}
	var upstreamRow []byte
	if spec.Upstream != nil {
		var prev *store.Profile
		if !created {
			prev = &existing
		}
		var err error
		if upstreamRow, spec.CA, err = applyUpstream(ctx, st, ks, spec, prev, in, now); err != nil {
			return store.Profile{}, false, err
		}
	}
	caRow, err := st.GetCA(ctx, spec.CA)
	if errors.Is(err, store.ErrNotFound) {
		return store.Profile{}, false, fmt.Errorf("%w: CA %q does not exist", ErrInvalid, spec.CA)
	}
	if err != nil {
		return store.Profile{}, false, err
	}
	if spec.Upstream == nil { // in RA mode the CA is the profile's own RA issuer
		if err := notRAIssuer(ctx, st, caRow, "ca"); err != nil {
			return store.Profile{}, false, err
		}
	}
	issuer, err := LoadCA(caRow, ks)
	if err != nil {
		return store.Profile{}, false, err
	}
	if spec.CAMode && !ca.CAModeCapable(issuer.Cert) {
		return store.Profile{}, false, fmt.Errorf("%w: ca_mode needs an RSA CA with keyEncipherment; CA %q has neither or not both (create it with allow_ca_mode)", ErrInvalid, spec.CA)
	}

	p := existing
	if created {
		p = store.Profile{ID: spec.ID, Created: now}
	}
	needRA := created || p.CAID != spec.CA || p.CAMode != spec.CAMode
	p.CAID, p.CAMode, p.Source, p.Updated = spec.CA, spec.CAMode, source, now
	p.AllowDES = spec.AllowDES
	p.IncludeCACert = config.Bool(spec.IncludeCACert, true)
	p.FullChain = config.Bool(spec.FullChain, true)
	p.Policy, p.Lifecycle, p.Upstream = policy, lifecycle, upstreamRow
	if err := applyChallenge(ctx, &p, spec.Challenge, in); err != nil {
		return store.Profile{}, false, err
	}
	var newKeyRef, nextKeyRef string
	// A finished rollover: the profile now names the CA its next RA was
	// issued by, so that RA becomes the profile's RA.
	if needRA && !spec.CAMode && len(p.NextRACertDER) > 0 {
		if next, err := x509.ParseCertificate(p.NextRACertDER); err == nil && bytes.Equal(next.RawIssuer, issuer.Cert.RawSubject) {
			p.RACertDER, p.RAKeyRef, p.NextRACertDER, p.NextRAKeyRef = p.NextRACertDER, p.NextRAKeyRef, nil, ""
			needRA = false
		}
	}
	if spec.Rollover.NextCA == "" {
		p.NextRACertDER, p.NextRAKeyRef = nil, ""
	} else if nextRow, err := st.GetCA(ctx, spec.Rollover.NextCA); errors.Is(err, store.ErrNotFound) {
		return store.Profile{}, false, fmt.Errorf("%w: rollover.next_ca %q does not exist", ErrInvalid, spec.Rollover.NextCA)
	} else if err != nil {
		return store.Profile{}, false, err
	} else if err := notRAIssuer(ctx, st, nextRow, "rollover.next_ca"); err != nil {
		return store.Profile{}, false, err
	} else if spec.CAMode {
		// From the switch the next CA is the RA: devices encrypt to it.
		if next, err := x509.ParseCertificate(nextRow.CertDER); err != nil || !ca.CAModeCapable(next) {
			return store.Profile{}, false, fmt.Errorf("%w: ca_mode needs an RSA CA with keyEncipherment, the next CA too (it becomes the RA at the switch); rollover.next_ca %q has neither or not both (create it with allow_ca_mode)", ErrInvalid, spec.Rollover.NextCA)
		}
		p.NextRACertDER, p.NextRAKeyRef = nextRow.CertDER, nextRow.KeyRef
	} else if cur, err := x509.ParseCertificate(p.NextRACertDER); err != nil || !bytes.Equal(cur.RawIssuer, mustSubject(nextRow.CertDER)) {
		next, err := LoadCA(nextRow, ks)
		if err != nil {
			return store.Profile{}, false, err
		}
		raCert, ref, err := newRA(ks, next, spec, now)
		if err != nil {
			return store.Profile{}, false, err
		}
		p.NextRACertDER, p.NextRAKeyRef, nextKeyRef = raCert, ref, ref
	}
	if needRA {
		if spec.CAMode {
			p.RACertDER, p.RAKeyRef = caRow.CertDER, caRow.KeyRef
		} else {
			raCert, ref, err := newRA(ks, issuer, spec, now)
			if err != nil {
				return store.Profile{}, false, err
			}
			p.RACertDER, p.RAKeyRef, newKeyRef = raCert, ref, ref
		}
	}
	if created {
		err = st.CreateProfile(ctx, p)
	} else {
		err = st.UpdateProfile(ctx, p)
	}
	if err != nil {
		for _, ref := range []string{newKeyRef, nextKeyRef} {
			if ref != "" {
				ks.Remove(ref)
			}
		}
		return store.Profile{}, false, err
	}
	return p, created, nil
}

// keepSwitched refuses a change that would move a profile whose rollover
// time has passed back off its next CA. From that time the profile issues
// under the next CA (server.loadProfile), and only the rollover block lets
// the old CA's certificates renew and GetCRL answer for them. Without the
// block, with another one or another ca, the profile would issue from
// ca: again, the next CA's certificates could not renew, GetCRL would
// refuse them and the next RA would be dropped, all silently. The way out
// is the documented end of a rollover: ca: the next CA (then the block
// goes, or names a further CA). Unchanged, the profile applies as before
// (every start applies the config file).
func keepSwitched(p store.Profile, spec config.Profile, now time.Time) error {
	lc, err := StoredLifecycle(p)
	if err != nil {
		// Unreadable: nothing known to keep; the new spec replaces it.
		return nil
	}
	r := lc.Rollover
	switch {
	case r.NextCA == "" || now.Before(r.At) || spec.CA == r.NextCA:
		return nil
	case spec.CA == p.CAID && spec.Rollover.NextCA == r.NextCA && spec.Rollover.At.Equal(r.At):
		return nil
	}
	return fmt.Errorf("%w: profile %s switched to CA %s at %s: set ca: %s (and keep the old CA's CRL published), or keep ca: %s and the rollover as they are",
		ErrInvalid, p.ID, r.NextCA, r.At.UTC().Format(time.RFC3339), r.NextCA, p.CAID)
}

// generateKey makes a key of type kt where ks keeps keys (in the token
// when there is one), under a unique name starting with name.
func generateKey(ks keys.Source, name string, kt ca.KeyType) (crypto.Signer, string, error) {
	alg, err := kt.Algorithm()
	if err != nil {
		return nil, "", err
	}
	return ks.Generate(uniqueName(name), alg)
}

// newRA generates an RA key and has issuer certify it.
func newRA(ks keys.Source, issuer *ca.CA, spec config.Profile, now time.Time) ([]byte, string, error) {
	kt := ca.KeyType(spec.RAKeyType)
	if kt == "" {
		kt = ca.RSA2048
	}
	raKey, ref, err := generateKey(ks, "profiles/"+spec.ID+"/ra", kt)
	if err != nil {
		return nil, "", err
	}
	raCert, err := issuer.IssueRA(raKey.Public(), raSubject(spec.ID), 10*365*24*time.Hour, now)
	if err != nil {
		ks.Remove(ref)
		return nil, "", err
	}
	return raCert.Raw, ref, nil
}

func mustSubject(certDER []byte) []byte {
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil
	}
	return c.RawSubject
}

// applyChallenge sets the profile's challenge fields from a spec. A static
// secret is re-hashed only when it changed, so restarts keep the hash.
func applyChallenge(ctx context.Context, p *store.Profile, c config.Challenge, in Inputs) error {
	// The mode's settings, never a secret: secrets are named by env var.
	settings := c
	settings.Password, settings.PasswordEnv, settings.PasswordFile, settings.PasswordHash = "", "", "", ""
	if settings.NDES != nil && settings.NDES.PasswordEnv != "" {
		n := *settings.NDES
		if n.PasswordHash == "" {
			secret := in.Getenv(n.PasswordEnv)
			if len(secret) < challenge.MinStaticLength {
				return fmt.Errorf("%w: challenge.ndes.password_env: %s must hold at least %d characters", ErrInvalid, n.PasswordEnv, challenge.MinStaticLength)
			}
			h, err := challenge.HashPassword(secret)
			if err != nil {
				return err
			}
			n.PasswordHash = h
		}
		n.PasswordEnv = ""
		settings.NDES = &n
	}
	if c.Mode == store.ChallengeRA && c.TrustedRA != nil {
		// The anchors are stored with the profile: every replica and every
		// CLI command reads them from the database.
		b, err := in.content(c.TrustedRA.CAFile)
		if err != nil {
			return fmt.Errorf("%w: challenge.trusted_ra.ca_file: %v", ErrInvalid, err)
		}
		certs, err := ca.ParseCertificatesPEM(b)
		if err == nil && len(certs) == 0 {
			err = errors.New("no certificate")
		}
		if err != nil {
			return fmt.Errorf("%w: challenge.trusted_ra.ca_file %s: %v", ErrInvalid, fileName(c.TrustedRA.CAFile, in), err)
		}
		t := config.TrustedRA{CAFile: fileName(c.TrustedRA.CAFile, in)}
		for _, c := range certs {
			t.CertsDER = append(t.CertsDER, c.Raw)
		}
		settings.TrustedRA = &t
	}
	p.ChallengeConfig, _ = json.Marshal(settings)
	switch c.Mode {
	case store.ChallengeRA:
		p.ChallengeMode, p.ChallengeHash = c.Mode, ""
		return nil
	case store.ChallengeWebhook, store.ChallengeIntune, store.ChallengeEntity:
		p.ChallengeMode, p.ChallengeHash = c.Mode, ""
		return nil
	case store.ChallengeDynamic:
		p.ChallengeMode, p.ChallengeHash = store.ChallengeDynamic, ""
		p.ChallengeTTL = time.Duration(c.TTL)
		if p.ChallengeTTL == 0 {
			p.ChallengeTTL = DefaultChallengeTTL
		}
		p.ChallengeMaxPending = c.MaxPending
		if p.ChallengeMaxPending == 0 {
			p.ChallengeMaxPending = DefaultChallengeMaxPending
		}
		return nil
	}
	p.ChallengeMode, p.ChallengeTTL, p.ChallengeMaxPending = store.ChallengeStatic, DefaultChallengeTTL, DefaultChallengeMaxPending
	if c.PasswordHash != "" {
		if _, err := challenge.NewStatic(c.PasswordHash); err != nil {
			return fmt.Errorf("%w: challenge.password_hash: %v", ErrInvalid, err)
		}
		p.ChallengeHash = c.PasswordHash
		return nil
	}
	secret := c.Password
	switch {
	case c.PasswordEnv != "":
		if secret = in.Getenv(c.PasswordEnv); secret == "" {
			return fmt.Errorf("%w: challenge.password_env: the environment variable %s is not set", ErrInvalid, c.PasswordEnv)
		}
	case c.PasswordFile != "":
		if in.ReadFile == nil {
			return fmt.Errorf("%w: challenge.password_file is for config files", ErrInvalid)
		}
		b, err := in.secret(c.PasswordFile)
		if err != nil {
			return fmt.Errorf("%w: challenge.password_file: %v", ErrInvalid, err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if len(secret) < challenge.MinStaticLength {
		return fmt.Errorf("%w: a static challenge needs at least %d characters", ErrInvalid, challenge.MinStaticLength)
	}
	if p.ChallengeHash != "" {
		if v, err := challenge.NewStatic(p.ChallengeHash); err == nil {
			if _, err := v.Validate(ctx, challenge.Request{Password: secret}); err == nil {
				return nil // unchanged
			}
		}
	}
	hash, err := challenge.HashPassword(secret)
	if err != nil {
		return err
	}
	if p.ChallengeHash != "" && c.RotationOverlap > 0 {
		// Rotation without downtime: devices still configured with the old
		// secret keep enrolling for the overlap.
		p.ChallengePrevHash, p.ChallengePrevUntil = p.ChallengeHash, time.Now().Add(time.Duration(c.RotationOverlap))
	} else {
		p.ChallengePrevHash, p.ChallengePrevUntil = "", time.Time{}
	}
	p.ChallengeHash = hash
	return nil
}

// fileName is how a stored setting names a file the spec gave: its path
// from a config file, "(inline PEM)" from the API, which sends the content.
func fileName(s string, in Inputs) string {
	if in.ReadFile == nil {
		return "(inline PEM)"
	}
	return s
}

// ApplyConfig brings the database in line with a config file: missing CAs
// are created or imported (existing ones are kept as they are), declared
// profiles are created or updated.
func ApplyConfig(ctx context.Context, st Store, ks keys.Source, f *config.File, in Inputs, now time.Time, log Logger) error {
	for _, spec := range f.CAs {
		if _, err := st.GetCA(ctx, spec.ID); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		row, err := CreateCA(ctx, st, ks, spec, in, now)
		if errors.Is(err, store.ErrConflict) {
			continue // another replica created it meanwhile
		}
		if err != nil {
			return fmt.Errorf("CA %q: %w", spec.ID, err)
		}
		log.Info("CA ready", "ca", row.ID, "how", map[bool]string{true: "created", false: "imported"}[spec.Create != nil])
		audit(ctx, st, now, "ca.create", "ca:"+row.ID, map[string]string{"source": store.SourceConfig})
	}
	for _, spec := range f.Profiles {
		p, created, err := UpsertProfile(ctx, st, ks, spec, store.SourceConfig, in, now)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("profile %q: %w", spec.ID, err)
		}
		action := "profile.update"
		if created {
			action = "profile.create"
			log.Info("created profile", "profile", p.ID, "ca", p.CAID, "challenge", p.ChallengeMode)
		}
		audit(ctx, st, now, action, "profile:"+p.ID, map[string]string{"source": store.SourceConfig})
	}
	return nil
}

// Logger is the logging provisioning needs.
type Logger interface {
	Info(msg string, args ...any)
}
