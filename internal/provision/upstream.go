package provision

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/scepd/scepd/internal/outbound"
	"path/filepath"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/upstream"
)

// StoredUpstream is a profile's upstream CA as the row keeps it (RA
// mode): the configuration and what discovery pinned, so that serving
// needs no network before the first request and a restart while the
// upstream is down still serves GetCACert.
type StoredUpstream struct {
	SCEP *config.UpstreamSCEP `json:"scep,omitempty"`
	// CAChainDER is the upstream's CA chain as GetCACert returned it when
	// it was pinned, the pinned CA first. GetCACert of the profile hands it
	// out after scepd's RA certificate.
	CAChainDER [][]byte `json:"ca_chain_der,omitempty"`
	// Fingerprint is the pinned CA's "sha256:<hex>": the configured one,
	// or (loopback upstreams configured without one) the CA found on the
	// first discovery.
	Fingerprint string `json:"fingerprint"`
}

// StoredUpstreamOf decodes a profile's upstream; nil for a profile with
// a local CA.
func StoredUpstreamOf(p store.Profile) (*StoredUpstream, error) {
	if len(p.Upstream) == 0 {
		return nil, nil
	}
	var u StoredUpstream
	if err := json.Unmarshal(p.Upstream, &u); err != nil {
		return nil, fmt.Errorf("profile %q: upstream: %w", p.ID, err)
	}
	if u.SCEP == nil {
		return nil, nil
	}
	return &u, nil
}

// HexChallenges reports whether a profile's one-time challenges are
// minted in hexadecimal (challenge.Dynamic.Hex): those of profiles in RA
// mode, whose CSRs travel on to an upstream that may parse the
// challengePassword strictly as a PrintableString. Every way of minting
// (served profiles, the API and CLI) asks here.
func HexChallenges(p store.Profile) bool { return len(p.Upstream) > 0 }

// SecretEnvPrefix starts the name of every environment variable a profile
// written through the API (REST, console, `scepd profile apply`) may name.
// The server resolves these names itself and hands the values to the URLs
// the profile names (the Intune client secret to its login URL, the NDES
// password to the upstream's page; the webhook's HMAC key signs what goes
// to its URL), so the API must not reach the server's other variables
// (database URL, key passphrase, PINs). The config file, which the
// operator writes, may name any.
const SecretEnvPrefix = "SCEPD_SECRET_"

// ProfileEnv is getenv as profile p may read it: every variable for a
// profile of the config file, only those starting with SecretEnvPrefix for
// any other (the API refuses other names when it stores a profile; this
// holds for profiles stored before it did, and for any other way a row
// got there). A variable it may not read reads as unset.
func ProfileEnv(p store.Profile, getenv func(string) string) func(string) string {
	if p.Source == store.SourceConfig {
		return getenv
	}
	return func(name string) string {
		if !strings.HasPrefix(name, SecretEnvPrefix) {
			return ""
		}
		return getenv(name)
	}
}

// ChallengeSource returns how a profile in RA mode whose upstream has an
// NDES page mints its one-time challenges (challenge.Dynamic.Source):
// fetched from that page, with the password from getenv (only the names
// ProfileEnv lets the profile read). nil for other profiles.
func ChallengeSource(p store.Profile, getenv func(string) string) (func(context.Context) (string, error), error) {
	su, err := StoredUpstreamOf(p)
	if err != nil || su == nil || su.SCEP.NDES == nil {
		return nil, err
	}
	n := su.SCEP.NDES
	getenv = ProfileEnv(p, getenv)
	page := &upstream.NDESPage{URL: n.URL, Username: n.Username}
	if n.PasswordEnv != "" {
		page.Password = getenv(n.PasswordEnv)
	}
	timeout := time.Duration(su.SCEP.Timeout)
	if timeout <= 0 {
		timeout = upstream.DefaultTimeout
	}
	return func(ctx context.Context) (string, error) {
		if n.PasswordEnv != "" && page.Password == "" {
			return "", fmt.Errorf("the upstream's NDES page: the environment variable %s (its password) is not set", n.PasswordEnv)
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		s, err := page.Fetch(ctx)
		if err != nil {
			return "", fmt.Errorf("the upstream's NDES page %s: %w", outbound.Redact(n.URL), err)
		}
		return s, nil
	}, nil
}

// discoverTimeout bounds discovering an upstream while applying a profile.
const discoverTimeout = 20 * time.Second

// applyUpstream prepares a profile in RA mode: its RA issuer CA (created
// once, kept across restarts) and its upstream, pinned. It returns the
// upstream as stored and the RA issuer's ID, which becomes the profile's
// CA. Discovery contacts the upstream only when it is new or changed.
func applyUpstream(ctx context.Context, st Store, ks keys.Source, spec config.Profile, existing *store.Profile, in Inputs, now time.Time) ([]byte, string, error) {
	want := spec.Upstream.SCEP
	if want.RA != nil {
		var err error
		if want, err = raCredential(want, ks, in, now); err != nil {
			return nil, "", err
		}
	}
	issuerID := config.RAIssuerID(spec.ID)
	if row, err := st.GetCA(ctx, issuerID); err == nil && !madeAsRAIssuer(row, spec.ID) {
		// An operator's CA of that name (another profile may issue from
		// it) must not become the RA's issuer, and the RA-issuer checks
		// must not then refuse the profiles using it.
		return nil, "", fmt.Errorf("%w: CA %q exists and is not the RA issuer scepd creates for profile %s: rename that CA or this profile", ErrInvalid, issuerID, spec.ID)
	} else if errors.Is(err, store.ErrNotFound) {
		// The RA issuer exists to certify the profile's RA (Apple's
		// profile client wants a CA-signed RA certificate); it issues
		// nothing to devices.
		if _, err := CreateCA(ctx, st, ks, config.CA{ID: issuerID, Create: &config.CACreate{Subject: "CN=" + raIssuerCN(spec.ID) + ",O=scepd"}}, in, now); err != nil {
			return nil, "", fmt.Errorf("creating the RA issuer %q: %w", issuerID, err)
		}
	} else if err != nil {
		return nil, "", err
	}
	if existing != nil {
		if old, err := StoredUpstreamOf(*existing); err == nil && old != nil && old.SCEP.URL == want.URL &&
			(want.CAFingerprint == "" || sameFingerprint(old.Fingerprint, want.CAFingerprint)) && len(old.CAChainDER) > 0 {
			old.SCEP = want
			b, err := json.Marshal(old)
			return b, issuerID, err
		}
	}
	var pin []byte
	if want.CAFingerprint != "" {
		pin, _ = config.ParseFingerprint(want.CAFingerprint) // validated
	}
	u, err := upstream.NewSCEP(upstream.SCEPConfig{URL: want.URL, Fingerprint: pin})
	if err != nil {
		return nil, "", err
	}
	dctx, cancel := context.WithTimeout(ctx, discoverTimeout)
	defer cancel()
	d, err := u.Discover(dctx)
	if err != nil {
		return nil, "", fmt.Errorf("%w: upstream %s: %v", ErrInvalid, want.URL, err)
	}
	su := StoredUpstream{SCEP: want, Fingerprint: upstream.Fingerprint(d.CA.Raw)}
	for _, c := range d.Chain {
		su.CAChainDER = append(su.CAChainDER, c.Raw)
	}
	b, err := json.Marshal(su)
	return b, issuerID, err
}

// raIssuerCN is the common name of profile id's RA issuer (organization
// scepd).
func raIssuerCN(id string) string { return id + " RA issuer" }

// raIssuerOf returns the profile whose RA issuer the CA row is, "" when
// it is none. The RA issuer has the ID config.RAIssuerID(profile) and is
// the CA of its profile while that profile is in RA mode; a profile that
// left RA mode keeps it (in trust stores that took it for the RA's chain
// too), recognised then by the subject applyUpstream gave it. A CA an
// operator named "<profile>-ra" for a local profile is none.
func raIssuerOf(ctx context.Context, st Store, row store.CA) (string, error) {
	id, ok := config.RAIssuerProfile(row.ID)
	if !ok {
		return "", nil
	}
	p, err := st.GetProfile(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if len(p.Upstream) > 0 && p.CAID == row.ID {
		return id, nil
	}
	if madeAsRAIssuer(row, id) {
		return id, nil
	}
	return "", nil
}

// madeAsRAIssuer reports whether row carries the subject applyUpstream
// gives profile id's RA issuer.
func madeAsRAIssuer(row store.CA, id string) bool {
	c, err := x509.ParseCertificate(row.CertDER)
	return err == nil && c.Subject.CommonName == raIssuerCN(id) && len(c.Subject.Organization) == 1 && c.Subject.Organization[0] == "scepd"
}

// notRAIssuer refuses an RA issuer as a profile's CA (field ca or
// rollover.next_ca): devices would get certificates from it, and trust it.
func notRAIssuer(ctx context.Context, st Store, row store.CA, field string) error {
	owner, err := raIssuerOf(ctx, st, row)
	if err != nil || owner == "" {
		return err
	}
	return fmt.Errorf("%w: %s: CA %q is the RA issuer of profile %s (RA mode): it certifies that profile's RA and issues nothing to devices; name another CA", ErrInvalid, field, row.ID, owner)
}

// raCredential checks the RA credential of an upstream (the files exist,
// the key is private, RSA and the certificate's, which is valid and may
// sign) and returns the upstream with its files as absolute paths: the
// serving process reads them again at every start (server.Load).
func raCredential(want *config.UpstreamSCEP, ks keys.Source, in Inputs, now time.Time) (*config.UpstreamSCEP, error) {
	if in.ReadFile == nil {
		return nil, fmt.Errorf("%w: upstream.scep.ra names files on the server: set it in the config file", ErrInvalid)
	}
	out := *want
	ra := *want.RA
	var err error
	if ra.Cert, err = filepath.Abs(ra.Cert); err != nil {
		return nil, fmt.Errorf("%w: upstream.scep.ra.cert: %v", ErrInvalid, err)
	}
	if ra.Key, err = filepath.Abs(ra.Key); err != nil {
		return nil, fmt.Errorf("%w: upstream.scep.ra.key: %v", ErrInvalid, err)
	}
	// A certificate outside its validity is a matter of time, not of
	// configuration: applied (every start applies the config), so that an
	// RA certificate expiring does not stop the server; the profile's
	// requests fail saying so until the file is renewed (server.Load).
	if _, err := upstream.LoadCredential(ra.Cert, ra.Key, ks, now); err != nil && !errors.Is(err, upstream.ErrCredentialNotValid) {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	out.RA = &ra
	return &out, nil
}

func sameFingerprint(a, b string) bool {
	x, err1 := config.ParseFingerprint(a)
	y, err2 := config.ParseFingerprint(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
