package admin

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/store"
)

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
	// Lifecycle is the renewal, approval, pending TTL, expiry notice and
	// rollover settings.
	Lifecycle config.Lifecycle `json:"lifecycle"`
	// UpstreamCAChain is, for a profile in RA mode, the upstream's CA
	// chain as pinned (DER, the pinned CA first): what GetCACert hands out
	// after the RA and what devices' certificates chain to. Its CA is the
	// local RA issuer, which issues nothing to devices.
	UpstreamCAChain [][]byte  `json:"upstream_ca_chain,omitempty"`
	Created         time.Time `json:"created"`
	Updated         time.Time `json:"updated"`
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

func profileView(p store.Profile) (ProfileView, error) {
	v := ProfileView{
		ID: p.ID, CA: p.CAID, Path: "/scep/" + p.ID + "/pkiclient.exe", Source: p.Source, ChallengeMode: p.ChallengeMode,
		CAMode: p.CAMode, IncludeCACert: p.IncludeCACert, FullChain: p.FullChain, AllowDES: p.AllowDES,
		RASHA256: fingerprint(p.RACertDER), Created: p.Created, Updated: p.Updated,
	}
	if p.ChallengeMode == store.ChallengeDynamic {
		v.ChallengeTTL, v.MaxPending = ShortDuration(p.ChallengeTTL), p.ChallengeMaxPending
	}
	if c, err := x509.ParseCertificate(p.RACertDER); err == nil {
		v.RASubject = c.Subject.String()
	}
	pc, err := provision.StoredPolicy(p)
	if err != nil {
		return v, fmt.Errorf("admin: %w", err)
	}
	v.Policy = pc
	if v.Lifecycle, err = provision.StoredLifecycle(p); err != nil {
		return v, fmt.Errorf("admin: %w", err)
	}
	su, err := provision.StoredUpstreamOf(p)
	if err != nil {
		return v, fmt.Errorf("admin: %w", err)
	}
	if su != nil {
		v.UpstreamCAChain = su.CAChainDER
	}
	return v, nil
}

// ShortDuration writes d as operators write it: 24h, 1h30m, 90s, not
// 24h0m0s.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
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

// checkSecretEnvs refuses a profile that names a variable without
// provision.SecretEnvPrefix anywhere: every field whose name ends in "_env" (the
// challenge's, the upstream's NDES password, and any added later) is
// found by walking the spec, so a new one cannot be forgotten here.
func checkSecretEnvs(spec config.Profile) error {
	var bad error
	walkEnvNames(reflect.ValueOf(spec), "", func(path, name string) {
		if bad == nil && name != "" && !strings.HasPrefix(name, provision.SecretEnvPrefix) {
			bad = fmt.Errorf("%w: %s: through the API, only environment variables starting with %s (%s is not one)", ErrInvalid, path, provision.SecretEnvPrefix, name)
		}
	})
	return bad
}

// walkEnvNames calls fn with the path and value of each string field of v
// (a config struct, through pointers, structs, slices and maps) whose JSON
// name ends in "_env".
func walkEnvNames(v reflect.Value, path string, fn func(path, name string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkEnvNames(v.Elem(), path, fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = f.Name
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			if f.Type.Kind() == reflect.String && strings.HasSuffix(name, "_env") {
				fn(p, v.Field(i).String())
				continue
			}
			walkEnvNames(v.Field(i), p, fn)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkEnvNames(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walkEnvNames(iter.Value(), fmt.Sprintf("%s[%v]", path, iter.Key()), fn)
		}
	}
}

// grantsRA reports whether a policy issues RA certificates (id-kp-cmcRA):
// a profile in challenge mode ra that trusts the same CA accepts whatever
// such a certificate signs, beyond the profiles of a scoped token. A
// policy that does not compile grants nothing (it is refused later).
func grantsRA(c ca.PolicyConfig) bool {
	p, err := c.Compile()
	return err == nil && p.GrantsRA()
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
// with revoke_old would revoke theirs; RA certificates, which other
// profiles trusting the CA accept), nor where delegated validation sends
// requests (the mode to or from webhook or intune, their URLs).
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
	if grantsRA(spec.Policy) {
		pc, err := provision.StoredPolicy(cur)
		if err != nil {
			return "the stored policy is unreadable; changes need an unscoped token"
		}
		if !grantsRA(pc) {
			return "the RA extended key usage (id-kp-cmcRA) in ext_key_usage needs an unscoped token"
		}
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
	if err := checkSecretEnvs(spec); err != nil {
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
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return PolicyResult{}, fmt.Errorf("%w: not a PKCS#10 request: %v", ErrInvalid, err)
	}
	return b.preview(ctx, profile, csr, false)
}

// preview is the certificate profile's policy would issue for csr now,
// signed by a throw-away key. verified: csr is a stored request, checked
// when it arrived (the stored copy has its challenge password removed,
// which breaks its signature).
func (b *bound) preview(ctx context.Context, profile string, csr *x509.CertificateRequest, verified bool) (PolicyResult, error) {
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
	evaluate := p.Policy.Evaluate
	if verified {
		evaluate = p.Policy.EvaluateVerified
	}
	tmpl, err := evaluate(csr, issuer, p.ID, b.s.Now())
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
