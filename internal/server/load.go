package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/upstream"
)

// Stored profiles become served ones here, next to the Profile they
// build: provision writes the rows, this reads them for serving.

// ProfileStore is what loading profiles needs from the store: the rows,
// and what the dynamic and entity validators keep there.
type ProfileStore interface {
	ListProfiles(ctx context.Context) ([]store.Profile, error)
	ListCAs(ctx context.Context) ([]store.CA, error)
	// GetCertificate finds a trusted RA's certificate if this server
	// issued it (challenge mode ra refuses a revoked one).
	GetCertificate(ctx context.Context, serial string) (store.Certificate, error)
	challenge.DynamicStore
	challenge.EntityStore
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
	// ObserveUpstream, when set, hears every exchange with an upstream CA
	// (RA mode), for metrics.
	ObserveUpstream func(upstream, outcome string, took time.Duration)
}

// Loaded is everything a running server needs, loaded once.
type Loaded struct {
	Profiles []*Profile
	CAs      map[string]*ca.CA
}

// Load prepares every stored profile for serving. CAs, keys and policies
// are loaded and compiled here, never per request.
func Load(ctx context.Context, st ProfileStore, ks keys.Source, ov Overrides) (*Loaded, error) {
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
	out := &Loaded{CAs: map[string]*ca.CA{}}
	for _, r := range caRows {
		c, err := provision.LoadCA(r, ks)
		if err != nil {
			return nil, err
		}
		if err := ca.KeyUsageProblem(c.Cert); err != nil {
			// Imported before import refused it: it still serves, and the
			// operator hears why relying parties refuse its CRLs.
			ov.Log.Warn("CA certificate unfit", "ca", r.ID, "problem", err.Error())
		}
		out.CAs[r.ID] = c
	}
	for _, row := range rows {
		p, err := loadProfile(row, out.CAs, st, ks, ov)
		if err != nil {
			return nil, fmt.Errorf("server: profile %q: %w", row.ID, err)
		}
		out.Profiles = append(out.Profiles, p)
	}
	return out, nil
}

func loadProfile(row store.Profile, cas map[string]*ca.CA, st ProfileStore, ks keys.Source, ov Overrides) (*Profile, error) {
	issuer := cas[row.CAID]
	if issuer == nil {
		return nil, fmt.Errorf("CA %q does not exist", row.CAID)
	}
	lc, err := provision.StoredLifecycle(row)
	if err != nil {
		return nil, err
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
	var next *NextCA
	var altRA *x509.Certificate
	var altKey crypto.Signer
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
			next = &NextCA{CA: nextCA, RACert: nextRA}
			successor, successorID = nextCA, r.NextCA
			// A replica that switched a few seconds earlier handed out
			// the next RA: requests encrypted to it are answered here too.
			altRA, altKey = nextRA, nextKey
		} else {
			// Switched: issue under the next CA; the old one's
			// certificates (of this profile) still renew.
			predecessor, predecessorID, issuer, caID = issuer, caID, nextCA, r.NextCA
			// Devices that fetched GetCACert before the switch (a request
			// pending across it) still encrypt to the old RA: it answers
			// them until the rollover is finished.
			altRA, altKey, raCert, raKey = raCert, raKey, nextRA, nextKey
		}
	}
	chc, err := provision.StoredChallenge(row)
	if err != nil {
		return nil, err
	}
	var v challenge.Validator
	var dyn *challenge.Dynamic
	var ndes *NDESPage
	getenv := provision.ProfileEnv(row, ov.Getenv) // the secrets the profile may name
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
		dyn = &challenge.Dynamic{ProfileID: row.ID, Store: st, TTL: row.ChallengeTTL, MaxPending: row.ChallengeMaxPending, Now: ov.Now, Limit: ov.MintLimit,
			Hex: provision.HexChallenges(row)}
		if dyn.Source, err = provision.ChallengeSource(row, getenv); err != nil {
			return nil, err
		}
		v = dyn
		if n := chc.NDES; n != nil {
			ndes = &NDESPage{Username: n.Username, UTF8: n.Encoding == "utf-8"}
			if n.PasswordHash != "" {
				if ndes.Password, err = challenge.NewStatic(n.PasswordHash); err != nil {
					return nil, fmt.Errorf("ndes password: %w", err)
				}
			}
		}
	case store.ChallengeWebhook:
		w := chc.Webhook
		secret := getenv(w.SecretEnv)
		if secret == "" {
			err := fmt.Errorf("webhook: the environment variable %s (its HMAC key) is not set", w.SecretEnv)
			if !ov.DeferMissingSecrets {
				return nil, err
			}
			v = missingSecret{err}
			break
		}
		v = &challenge.Webhook{ProfileID: row.ID, URL: w.URL, Secret: []byte(secret), Timeout: time.Duration(w.Timeout), Notify: w.Notify, Now: ov.Now, Log: ov.Log}
	case store.ChallengeIntune:
		in := chc.Intune
		secret := getenv(in.ClientSecretEnv)
		if secret == "" {
			err := fmt.Errorf("intune: the environment variable %s (the client secret) is not set", in.ClientSecretEnv)
			if !ov.DeferMissingSecrets {
				return nil, err
			}
			v = missingSecret{err}
			break
		}
		v = &challenge.Intune{ProfileID: row.ID, Tenant: in.Tenant, ClientID: in.ClientID, ClientSecret: secret, LoginURL: in.LoginURL,
			GraphURL: in.GraphURL, Now: ov.Now, Log: ov.Log}
	case store.ChallengeEntity:
		if v, err = challenge.NewEntity(row.ID, st, ov.Now); err != nil {
			return nil, err
		}
	case store.ChallengeRA:
		var anchors [][]byte
		if chc.TrustedRA != nil {
			anchors = chc.TrustedRA.CertsDER
		}
		ra, err := challenge.NewTrustedRA(anchors, ov.Now)
		if err != nil {
			return nil, err
		}
		ra.Revoked = func(ctx context.Context, c *x509.Certificate) (bool, error) {
			got, err := st.GetCertificate(ctx, c.SerialNumber.Text(16))
			if errors.Is(err, store.ErrNotFound) || (err == nil && !bytes.Equal(got.DER, c.Raw)) {
				return false, nil // not one of ours: its issuer's business
			}
			return err == nil && got.Status == store.CertRevoked, err
		}
		v = ra
	case store.ChallengeNone:
		v = challenge.None{}
	default:
		return nil, fmt.Errorf("unknown challenge mode %q", row.ChallengeMode)
	}
	pc, err := provision.StoredPolicy(row)
	if err != nil {
		return nil, err
	}
	policy, err := servedPolicy(pc, ov.PublicURL, caID)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	var up *upstream.SCEP
	var upChain [][]byte
	su, err := provision.StoredUpstreamOf(row)
	if err != nil {
		return nil, err
	}
	if su != nil {
		pin, err := config.ParseFingerprint(su.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("upstream: pinned fingerprint: %w", err)
		}
		signer, signerErr := upstreamSigner(row.ID, su.SCEP, raCert, raKey, ks, ov)
		switch {
		case signerErr != nil && errors.Is(signerErr, upstream.ErrCredentialNotValid):
			// Expired (or not yet valid): this profile's requests fail
			// saying so until the file is renewed; the others serve on.
			ov.Log.LogAttrs(context.Background(), slog.LevelError, "the profile's RA certificate for its upstream is not valid: it cannot enroll",
				slog.String("profile", row.ID), slog.String("error", signerErr.Error()))
		case signerErr != nil && (su.SCEP.RA == nil || !ov.DeferMissingSecrets):
			return nil, signerErr
		}
		if up, err = upstream.NewSCEP(upstream.SCEPConfig{URL: su.SCEP.URL, Fingerprint: pin, Timeout: time.Duration(su.SCEP.Timeout),
			Observe: ov.ObserveUpstream, Signer: signer, SignerErr: signerErr, MaxInFlight: su.SCEP.MaxInFlight}); err != nil {
			return nil, err
		}
		upChain = su.CAChainDER
	}
	cfg := ProfileConfig{
		Enroll: &enroll.Profile{ID: row.ID, CAID: caID, CA: issuer, Predecessor: predecessor, PredecessorID: predecessorID,
			Successor: successor, SuccessorID: successorID, RASubject: raCert.RawSubject, Policy: policy, Challenge: v,
			Renewal: renewal(lc.Renewal), Manual: lc.Approval == "manual", PendingTTL: time.Duration(lc.PendingTTL),
			NoPending: row.ChallengeMode == store.ChallengeIntune},
		Next:          next,
		Dynamic:       dyn,
		NDES:          ndes,
		Jamf:          chc.Jamf && dyn != nil,
		RACert:        raCert,
		RAKey:         raKey,
		AltRACert:     altRA,
		AltRAKey:      altKey,
		CAMode:        row.CAMode,
		AllowDES:      row.AllowDES || ov.AllowDES[row.ID],
		IncludeCACert: row.IncludeCACert,
		FullChain:     row.FullChain,
	}
	if up != nil {
		cfg.Enroll.Issuer, cfg.Upstream, cfg.UpstreamChain = up, up, upChain
		// Not for a profile that cannot wait (Intune), whatever a row
		// stored before config validation refused it says.
		cfg.Enroll.HoldWhenUpstreamDown = su.SCEP.WhenUnavailable == "pending" && !cfg.Enroll.NoPending
	}
	return NewProfile(cfg)
}

// upstreamSigner is who signs the requests a profile in RA mode sends
// upstream: its RA credential (upstream.scep.ra) when configured, else
// its requester certificate over the profile's persisted RA key, the same
// on every replica and after restarts. A credential that cannot be read
// fails the load, unless ov.DeferMissingSecrets (CLI commands, which may
// lack the files): the upstream then refuses to issue, saying why.
func upstreamSigner(profile string, su *config.UpstreamSCEP, raCert *x509.Certificate, raKey crypto.Signer, ks keys.Source, ov Overrides) (client.Requester, error) {
	if ra := su.RA; ra != nil {
		return upstream.LoadCredential(ra.Cert, ra.Key, ks, ov.Now())
	}
	key, ok := raKey.(client.Key)
	if !ok {
		return client.Requester{}, fmt.Errorf("upstream: the RA key (%T) cannot decrypt the upstream's replies", raKey)
	}
	cert, err := upstream.RequesterCertificate(profile, raKey, raCert)
	if err != nil {
		return client.Requester{}, err
	}
	return client.Requester{Cert: cert, Key: key}, nil
}

// missingSecret stands in for a delegated validator whose secret the
// environment lacks (Overrides.DeferMissingSecrets): it names the secret
// when a request needs it.
type missingSecret struct{ err error }

var _ challenge.Validator = missingSecret{}

func (m missingSecret) Validate(context.Context, challenge.Request) (challenge.Grant, error) {
	return challenge.Grant{}, m.err
}

func renewal(r config.Renewal) enroll.Renewal {
	return enroll.Renewal{Disabled: r.Disabled, Window: r.Window, AllowKeyReuse: r.KeyReuse(), RevokeOld: r.RevokeOld,
		AllowSubjectChange: r.AllowSubjectChange, FromProfiles: r.FromProfiles, Approval: r.Approval}
}

// servedPolicy compiles a stored policy as issuance applies it: with
// publicURL set, certificates of the CA caID (the profile's issuer now,
// after a rollover its next CA) carry its AIA, OCSP and CRL URLs. Every
// dry run uses the policy compiled here too (the served enroll.Profile).
func servedPolicy(pc ca.PolicyConfig, publicURL, caID string) (*ca.Policy, error) {
	policy, err := pc.Compile()
	if err != nil {
		return nil, err
	}
	if publicURL != "" {
		base := strings.TrimRight(publicURL, "/")
		policy.IssuingCertificateURL = []string{base + "/ca/" + caID + ".crt"}
		policy.OCSPServer = []string{base + "/ocsp/" + caID}
		policy.CRLDistributionPoints = []string{base + "/crl/" + caID + ".crl"}
	}
	return policy, nil
}
