// Package config is the schema of scepd's YAML configuration file and of
// the CA and profile objects the REST API accepts: strict decoding,
// defaults in one place, and a Validate that names the path of every error.
// Other packages take what they need from it; none of them is imported here
// except for shared value types.
package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/scepd/scepd/internal/outbound"
	"io"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/events"
	"github.com/scepd/scepd/internal/store"
)

// File is the whole configuration file. Every field is optional; flags and
// SCEPD_* variables override the listener, data and database settings.
type File struct {
	// Listen configures the HTTP listeners.
	Listen Listen `yaml:"listen" json:"listen"`
	// PublicURL is the base URL devices and relying parties reach scepd at,
	// e.g. https://pki.example.com. When set, issued certificates carry
	// AIA caIssuers and OCSP URLs and a CRL distribution point under it,
	// and the CA certificates are served at
	// /ca/{id}.crt (DER) and /ca/{id}.pem. Default: none.
	PublicURL string `yaml:"public_url" json:"public_url"`
	// DataDir holds the SQLite database and key files. Default ./scepd-data.
	DataDir string `yaml:"data_dir" json:"data_dir"`
	// Database is a postgres:// URL; empty means SQLite in DataDir.
	Database string `yaml:"database" json:"database"`
	// DBMaxConns sizes the PostgreSQL pool; 0 means max(4, CPUs).
	DBMaxConns int `yaml:"db_max_conns" json:"db_max_conns"`
	// DefaultProfile is served at /cgi-bin/pkiclient.exe and
	// /certsrv/mscep/mscep.dll. Default: the first profile declared.
	DefaultProfile string `yaml:"default_profile" json:"default_profile"`
	// CAs are created or imported at start when missing.
	CAs []CA `yaml:"cas" json:"cas"`
	// Profiles are created or updated at start; the file is authoritative
	// for the profiles it declares.
	Profiles []Profile `yaml:"profiles" json:"profiles"`
	// Events: sinks for notifications (webhook, log).
	Events Events `yaml:"events" json:"events"`
	// Console configures the web console.
	Console Console `yaml:"console" json:"console"`
	// Crypto selects where file-held private keys work: "go" or "openssl"
	// (OpenSSL's libcrypto, about 3x faster RSA; binaries built with -tags
	// openssl, where it is the default when unset).
	Crypto string `yaml:"crypto" json:"crypto"`
}

// Listen configures the HTTP listeners.
type Listen struct {
	// Addr serves SCEP, health checks and CA downloads. Default ":8080".
	Addr string `yaml:"addr" json:"addr"`
	// AdminAddr serves the REST API on its own listener; empty means the
	// API shares Addr. Default: empty.
	AdminAddr string `yaml:"admin_addr" json:"admin_addr"`
	// AdminTLSCert and AdminTLSKey (PEM files) serve the admin listener
	// over TLS. Default: plain HTTP.
	AdminTLSCert string `yaml:"admin_tls_cert" json:"admin_tls_cert"`
	AdminTLSKey  string `yaml:"admin_tls_key" json:"admin_tls_key"`
	// TrustedProxies are the CIDRs (or addresses) of reverse proxies whose
	// X-Forwarded-For and X-Forwarded-Proto the web console believes.
	// Default: none.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty" json:"trusted_proxies,omitempty"`
}

// Console configures the web console.
type Console struct {
	// IdleTimeout ends a session unused this long, besides its 8-hour
	// limit. Default 30m.
	IdleTimeout ca.Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
}

// CA declares a CA: exactly one of Create or Import.
type CA struct {
	// ID names the CA in profiles and URLs: lowercase letters, digits and
	// dashes.
	ID string `yaml:"id" json:"id"`
	// Create makes a new CA at the first start (kept afterwards).
	Create *CACreate `yaml:"create,omitempty" json:"create,omitempty"`
	// Import brings an existing CA and its key. Its certificate must say
	// basicConstraints CA:TRUE and, when it has a keyUsage extension,
	// keyCertSign and cRLSign (one without keyUsage is taken).
	Import *CAImport `yaml:"import,omitempty" json:"import,omitempty"`
}

// CACreate makes a new root (no Parent) or intermediate CA.
type CACreate struct {
	// Parent is the issuing CA's ID for an intermediate; empty for a root.
	Parent string `yaml:"parent,omitempty" json:"parent,omitempty"`
	// KeyType: rsa-2048 (default: every SCEP client can use an RSA chain),
	// rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384.
	KeyType string `yaml:"key_type,omitempty" json:"key_type,omitempty"`
	// Subject, e.g. "CN=Corp Devices CA,O=Corp". Required.
	Subject string `yaml:"subject" json:"subject"`
	// Validity: default 20 years for a root, 10 for an intermediate
	// (never past the parent's).
	Validity ca.Duration `yaml:"validity,omitempty" json:"validity,omitempty"`
	// AllowCAMode adds keyEncipherment so that profiles may use this CA in
	// CA mode (RSA keys only). Default false.
	AllowCAMode bool `yaml:"allow_ca_mode,omitempty" json:"allow_ca_mode,omitempty"`
}

// CAImport brings an existing CA: a PEM chain (the CA first) and its PEM
// key, or a PKCS#12 bundle. In the API the PEM travels inline.
type CAImport struct {
	Cert string `yaml:"cert,omitempty" json:"cert,omitempty"` // file path (config) or PEM (API)
	Key  string `yaml:"key,omitempty" json:"key,omitempty"`   // file path (config, readable by no other users) or PEM (API)
	// PKCS12 is a .p12 file path (readable by no other users); its password
	// comes from the environment variable PKCS12PasswordEnv.
	PKCS12            string `yaml:"pkcs12,omitempty" json:"pkcs12,omitempty"`
	PKCS12PasswordEnv string `yaml:"pkcs12_password_env,omitempty" json:"pkcs12_password_env,omitempty"`
}

// Profile declares one SCEP endpoint, /scep/{id}/pkiclient.exe.
type Profile struct {
	// ID is the URL segment: lowercase letters, digits and dashes.
	ID string `yaml:"id" json:"id"`
	// CA is the issuing CA's ID. Required unless Upstream is set; the two
	// are exclusive.
	CA string `yaml:"ca,omitempty" json:"ca,omitempty"`
	// Upstream makes scepd the RA of a CA it does not hold (RA mode): it
	// authorises devices as for any profile, then obtains the certificate
	// from this upstream CA. The profile's RA certificate is issued by a
	// local RA issuer CA scepd creates for it (ID "<profile id>-ra"),
	// which issues nothing to devices: no profile may name it as ca or
	// rollover.next_ca.
	Upstream *Upstream `yaml:"upstream,omitempty" json:"upstream,omitempty"`
	// CAMode lets the CA itself answer SCEP instead of a separate RA; only
	// for an RSA CA whose certificate has keyEncipherment. Default false.
	CAMode bool `yaml:"ca_mode,omitempty" json:"ca_mode,omitempty"`
	// RAKeyType of the profile's generated RA: rsa-2048 (default),
	// rsa-3072, rsa-4096.
	RAKeyType string `yaml:"ra_key_type,omitempty" json:"ra_key_type,omitempty"`
	// IncludeCACert: CertRep replies carry the CA chain after the issued
	// certificate (some clients need it; Juniper refuses it). GetCACert
	// carries the RA and the chain either way: clients authenticate the CA
	// there (a profile in CA mode without it answers GetCACert with the CA
	// alone). Default true.
	IncludeCACert *bool `yaml:"include_ca_cert,omitempty" json:"include_ca_cert,omitempty"`
	// FullChain: the chain goes up to the root, not just the issuing CA.
	// Default true.
	FullChain *bool `yaml:"full_chain,omitempty" json:"full_chain,omitempty"`
	// AllowDES accepts single-DES requests from legacy devices. Default false.
	AllowDES bool `yaml:"allow_des,omitempty" json:"allow_des,omitempty"`
	// Challenge says how first enrollments are authorised.
	Challenge Challenge `yaml:"challenge" json:"challenge"`
	// Policy is the certificate policy; see ca.PolicyConfig.
	Policy ca.PolicyConfig `yaml:"policy,omitempty" json:"policy,omitempty"`
	// Lifecycle: renewal and approval.
	Lifecycle `yaml:",inline"`
}

// Upstream is the CA a profile in RA mode obtains certificates from.
// Exactly one kind is set.
type Upstream struct {
	// SCEP: the upstream CA answers SCEP (NDES, EJBCA, another SCEP CA).
	SCEP *UpstreamSCEP `yaml:"scep,omitempty" json:"scep,omitempty"`
}

// UpstreamSCEP is a SCEP CA scepd is a client of. scepd forwards the
// device's CSR as the device signed it, so the upstream sees the
// challengePassword the device put there (the front's): an upstream that
// checks its own challenge in the CSR (NDES, scepserver -challenge)
// cannot be given one; see docs/guides/ra-mode.md.
type UpstreamSCEP struct {
	// URL of the upstream's SCEP endpoint, e.g.
	// https://ndes.corp.example/certsrv/mscep/mscep.dll.
	URL string `yaml:"url" json:"url"`
	// CAFingerprint pins the upstream's CA certificate: "sha256:<hex>" of
	// its DER. Required unless the URL is http://127.0.0.1 or localhost.
	CAFingerprint string `yaml:"ca_fingerprint,omitempty" json:"ca_fingerprint,omitempty"`
	// Timeout bounds one exchange with the upstream (a PKCSReq or one
	// CertPoll): an upstream down or slower than this is a SCEP FAILURE
	// (or, while polling, still PENDING). Default 20s, at most 25s (the
	// device's request must be answered within the server's 30s write
	// timeout).
	Timeout ca.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// NDES: the one-time challenges this profile mints (challenge mode
	// dynamic) are fetched from the upstream's NDES admin page, so that
	// each is valid at scepd and at the upstream alike; the device's CSR
	// carries it to both.
	NDES *UpstreamNDES `yaml:"ndes,omitempty" json:"ndes,omitempty"`
	// WhenUnavailable is what a device hears while the upstream cannot be
	// reached (down, slower than timeout, its circuit breaker open):
	// "failure" (default) answers SCEP FAILURE and stores nothing, so the
	// device enrolls again later; "pending" holds the request PENDING (its
	// one-time challenge reserved, the profile's pending_ttl applies) and
	// each poll of the device submits it upstream again until the
	// upstream answers. A refusal by the upstream is a FAILURE either way.
	WhenUnavailable string `yaml:"when_unavailable,omitempty" json:"when_unavailable,omitempty"`
	// MaxInFlight bounds the requests sent to the upstream at once by this
	// profile on each replica (default 16); more wait, each within its
	// timeout, for one to finish, so a fleet enrolling at once does not
	// flood the upstream.
	MaxInFlight int `yaml:"max_in_flight,omitempty" json:"max_in_flight,omitempty"`
	// RA is a certificate the upstream trusts as a registration authority
	// (EJBCA's RA mode, or a scepd upstream with challenge mode ra), and
	// its key: scepd signs the PKCSReqs and CertPolls it sends upstream
	// with it instead of its self-signed requester certificate. Config
	// files only. Independent of NDES: both may be set.
	RA *UpstreamRA `yaml:"ra,omitempty" json:"ra,omitempty"`
}

// UpstreamRA is scepd's RA credential towards an upstream.
type UpstreamRA struct {
	// Cert is a PEM file holding the RA certificate (first in the file).
	// It must be valid and have digitalSignature in its keyUsage, and its
	// key must be RSA (the upstream encrypts its replies to it).
	Cert string `yaml:"cert" json:"cert"`
	// Key is the PEM private key file of Cert, mode 0600; an encrypted key
	// is read with scepd's key passphrase (SCEPD_KEY_PASSPHRASE).
	Key string `yaml:"key" json:"key"`
}

// UpstreamNDES is an upstream's NDES admin page (mscep_admin).
type UpstreamNDES struct {
	// URL of the page, e.g. https://ndes.corp.example/certsrv/mscep_admin/.
	URL string `yaml:"url" json:"url"`
	// Username for HTTP Basic; empty sends none.
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	// PasswordEnv names the environment variable holding Username's
	// password.
	PasswordEnv string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
}

// validate checks an upstream declaration.
func (u *Upstream) validate(errs *Errors) {
	if u.SCEP == nil {
		errs.add("upstream", "scep is required (the only upstream kind so far)")
		return
	}
	s := u.SCEP
	uu, err := checkURL(errs, "upstream.scep.url", s.URL, "scepd authenticates to an upstream by its RA certificate and challenge")
	if s.CAFingerprint == "" {
		if err == nil && !(uu.Scheme == "http" && outbound.IsLoopback(uu.Hostname())) {
			errs.add("upstream.scep.ca_fingerprint", "required (sha256:<hex> of the upstream CA certificate); optional only for http://127.0.0.1 or localhost")
		}
	} else if _, err := ParseFingerprint(s.CAFingerprint); err != nil {
		errs.add("upstream.scep.ca_fingerprint", "%v", err)
	}
	if s.Timeout < 0 || (s.Timeout != 0 && s.Timeout < ca.Duration(time.Second)) || s.Timeout > ca.Duration(25*time.Second) {
		errs.add("upstream.scep.timeout", "between 1s and 25s: the device must hear the answer within the server's 30s write timeout")
	}
	switch s.WhenUnavailable {
	case "", "failure", "pending":
	default:
		errs.add("upstream.scep.when_unavailable", "%q: want failure or pending", s.WhenUnavailable)
	}
	if s.MaxInFlight < 0 || s.MaxInFlight > 1024 {
		errs.add("upstream.scep.max_in_flight", "%d: between 1 and 1024 (0: the default, 16)", s.MaxInFlight)
	}
	if r := s.RA; r != nil && (r.Cert == "" || r.Key == "") {
		errs.add("upstream.scep.ra", "cert and key (PEM files) are both required")
	}
	if n := s.NDES; n != nil {
		checkURL(errs, "upstream.scep.ndes.url", n.URL, "use username and password_env")
		if n.Username != "" && n.PasswordEnv == "" {
			errs.add("upstream.scep.ndes", "a username needs password_env")
		}
	}
}

// checkURL adds an error unless raw is an http:// or https:// URL with a
// host and without credentials: scepd shows a URL in logs and errors
// (redacted, but not every path does so), and stores an upstream's with
// every certificate it issues; credentials says where a secret goes.
func checkURL(errs *Errors, path, raw, credentials string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs.add(path, "%q: want an http:// or https:// URL", outbound.Redact(raw))
	case u.User != nil:
		errs.add(path, "%q: no credentials in the URL, it is logged and stored (%s)", outbound.Redact(raw), credentials)
	}
	return u, err
}

// RAIssuerID is the ID of the local CA that issues the RA certificate of
// the profile id in RA mode.
func RAIssuerID(id string) string { return id + raIssuerSuffix }

// RAIssuerProfile is the profile whose RA issuer a CA with this ID would
// be (RAIssuerID backwards); false for an ID of no such form.
func RAIssuerProfile(caID string) (string, bool) {
	id, ok := strings.CutSuffix(caID, raIssuerSuffix)
	return id, ok && id != ""
}

const raIssuerSuffix = "-ra"

// ParseFingerprint reads "sha256:<64 hex digits>" (colons between bytes
// allowed) into the digest.
func ParseFingerprint(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	if !ok {
		return nil, fmt.Errorf("%q: want sha256:<hex>", s)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(rest, ":", ""))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%q: want sha256: and 64 hex digits", s)
	}
	return b, nil
}

// Lifecycle says how a profile renews and approves; stored as JSON.
type Lifecycle struct {
	// Renewal governs RenewalReq and PKCSReqs signed with a certificate this
	// CA issued (sscep renews that way): no challenge, the old certificate
	// authenticates.
	Renewal Renewal `yaml:"renewal,omitempty" json:"renewal,omitempty"`
	// Approval: auto (default) issues at once; manual answers PENDING and
	// waits for an operator (`scepd request approve`); clients poll.
	Approval string `yaml:"approval,omitempty" json:"approval,omitempty"`
	// PendingTTL: a request nobody decided is rejected after this. Default 72h.
	PendingTTL ca.Duration `yaml:"pending_ttl,omitempty" json:"pending_ttl,omitempty"`
	// Rollover prepares the profile's next CA (RFC 8894 GetNextCACert).
	Rollover Rollover `yaml:"rollover,omitempty" json:"rollover,omitempty"`
	// ExpiryNotices: how long before a certificate expires the
	// certificate.expiring event is raised, e.g. [720h, 168h]. Default
	// 720h and 168h (30 and 7 days); an empty list turns notices off.
	ExpiryNotices []ca.Duration `yaml:"expiry_notices" json:"expiry_notices"`
}

// Notices returns the expiry notice thresholds with the default applied.
func (l Lifecycle) Notices() []time.Duration {
	if l.ExpiryNotices == nil {
		return []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour}
	}
	out := make([]time.Duration, len(l.ExpiryNotices))
	for i, d := range l.ExpiryNotices {
		out[i] = time.Duration(d)
	}
	return out
}

// Events configures where events go: issuance, renewal, revocation,
// expiry notices, pending and rejected requests, failed enrollments and
// repeated failures from one address.
type Events struct {
	// Sinks receive the events; none by default.
	Sinks []Sink `yaml:"sinks" json:"sinks"`
	// ExpiryScan is how often certificates are checked for expiry
	// notices. Default 1h.
	ExpiryScan ca.Duration `yaml:"expiry_scan,omitempty" json:"expiry_scan,omitempty"`
}

// Sink is one event destination.
type Sink struct {
	// Name identifies the sink's delivery position in the database;
	// a renamed sink starts afresh with new events.
	Name string `yaml:"name" json:"name"`
	// Type is webhook or log.
	Type string `yaml:"type" json:"type"`
	// URL (webhook) receives a POST of JSON per event.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// SecretEnv (webhook) names the environment variable holding the
	// HMAC key that signs each body (X-Scepd-Signature).
	SecretEnv string `yaml:"secret_env,omitempty" json:"secret_env,omitempty"`
	// Username and PasswordEnv (webhook, optional) authenticate scepd to
	// a receiver that wants HTTP Basic (a log collector's HTTP input);
	// PasswordEnv names the environment variable holding the password.
	// Not in the URL, which scepd logs.
	Username    string `yaml:"username,omitempty" json:"username,omitempty"`
	PasswordEnv string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	// Timeout per webhook attempt. Default 10s.
	Timeout ca.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Events lists the event types to send; empty means all.
	Events []string `yaml:"events,omitempty" json:"events,omitempty"`
	// Profiles limits the sink to these profiles; empty means all.
	Profiles []string `yaml:"profiles,omitempty" json:"profiles,omitempty"`
	// GiveUpAfter drops an event still undelivered after retrying this
	// long (logged and counted). Default 24h.
	GiveUpAfter ca.Duration `yaml:"give_up_after,omitempty" json:"give_up_after,omitempty"`
}

// Rollover moves a profile to its next CA at a set time. Before it,
// GetNextCACert hands out the next CA and its RA; from it, the profile
// issues under the next CA while certificates of the old one still renew
// (keep this block until they have) and stay on the old CA's CRL.
type Rollover struct {
	// NextCA is the next CA's ID (a new root, or a CA cross-signed as the
	// operator chooses). A profile in CA mode needs an RSA CA created with
	// allow_ca_mode here too: it becomes the RA at the switch.
	NextCA string `yaml:"next_ca,omitempty" json:"next_ca,omitempty"`
	// At is the switch time, RFC 3339. Once it has passed, the block is
	// removed or changed only with ca set to next_ca (the end of a
	// rollover): the profile issues under next_ca from then on.
	At time.Time `yaml:"at,omitempty" json:"at,omitzero"`
}

// Renewal settings. The zero value allows renewal at any time, with the
// same key or a new one, and the same subject.
type Renewal struct {
	// Disabled refuses certificate-based renewal. Default false.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// Window is the fraction of the old certificate's lifetime that must
	// have passed, 0 to 1. Default 0 (any time); EJBCA uses 0.5.
	Window float64 `yaml:"window,omitempty" json:"window,omitempty"`
	// AllowKeyReuse accepts the old certificate's key again. Default true:
	// real clients renew with the key they hold (certmonger's resubmit and
	// automatic renewal, micromdm's scepclient, Cisco IOS without
	// `regenerate`). false demands a new key.
	AllowKeyReuse *bool `yaml:"allow_key_reuse,omitempty" json:"allow_key_reuse,omitempty"`
	// RevokeOld revokes the renewed certificate (reason superseded) once
	// the new one is stored. Default false. Not in RA mode (upstream), and
	// a certificate an upstream CA issued (renewed through from_profiles)
	// is not revoked: only its CA can.
	RevokeOld bool `yaml:"revoke_old,omitempty" json:"revoke_old,omitempty"`
	// AllowSubjectChange lets the issued subject differ from the old
	// certificate's. Default false.
	AllowSubjectChange bool `yaml:"allow_subject_change,omitempty" json:"allow_subject_change,omitempty"`
	// FromProfiles names other profiles whose certificates this profile
	// renews too (moving devices between profiles). Default none: a
	// certificate renews only in the profile that issued it.
	FromProfiles []string `yaml:"from_profiles,omitempty" json:"from_profiles,omitempty"`
	// Approval decides renewals on a profile with approval: manual: auto
	// (default; the device was approved once) issues at once, manual holds
	// them PENDING for an operator like first requests.
	Approval string `yaml:"approval,omitempty" json:"approval,omitempty"`
}

// Challenge configures a profile's challenge mode.
type Challenge struct {
	// Mode: static (one shared secret), dynamic (one-time), webhook,
	// intune, entity, or ra (requests signed by a trusted registration
	// authority, see TrustedRA). Default static.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// A static secret comes from one of: the environment variable
	// PasswordEnv, the file PasswordFile, or PasswordHash (an argon2id PHC
	// string). Config files never hold the secret itself. In the API,
	// Password carries it once (it is hashed at once and never returned).
	PasswordEnv  string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	PasswordHash string `yaml:"password_hash,omitempty" json:"password_hash,omitempty"`
	Password     string `yaml:"-" json:"password,omitempty"`
	// TTL of dynamic challenges. Default 60m.
	TTL ca.Duration `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// MaxPending caps unused dynamic challenges. Default 100.
	MaxPending int `yaml:"max_pending,omitempty" json:"max_pending,omitempty"`
	// RotationOverlap (static): when the secret changes, the old one is
	// still accepted this long. Default 0.
	RotationOverlap ca.Duration `yaml:"rotation_overlap,omitempty" json:"rotation_overlap,omitempty"`
	// NDES (dynamic) serves the NDES-compatible admin page Jamf Pro,
	// Workspace ONE, Ivanti and Okta call: /scep/{id}/mscep_admin/ (and
	// /certsrv/mscep_admin/ for the default profile).
	NDES *NDES `yaml:"ndes,omitempty" json:"ndes,omitempty"`
	// Jamf (dynamic) accepts Jamf Pro's SCEPChallenge webhook at
	// /scep/{id}/jamf-challenge.
	Jamf bool `yaml:"jamf,omitempty" json:"jamf,omitempty"`
	// Webhook (mode webhook) is the operator's validation service.
	Webhook *Webhook `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	// Intune (mode intune) is the Microsoft Intune tenant that validates.
	Intune *Intune `yaml:"intune,omitempty" json:"intune,omitempty"`
	// TrustedRA (mode ra) names the CA certificates registration
	// authorities' certificates must chain to.
	TrustedRA *TrustedRA `yaml:"trusted_ra,omitempty" json:"trusted_ra,omitempty"`
}

// TrustedRA authorises requests signed by a registration authority
// (challenge mode ra): the SCEP message's signer certificate must chain
// to one of these CAs, be valid, carry the RA extended key usage
// id-kp-cmcRA (1.3.6.1.5.5.7.3.28; device certificates of the same CA do
// not), have digitalSignature if it has a keyUsage, and not be revoked
// when scepd issued it. The CSR's challengePassword is then not checked, as in
// EJBCA's RA mode: the RA authorised the device. This is how one scepd
// sits behind another (upstream.scep.ra on the front).
type TrustedRA struct {
	// CAFile is a PEM file of the trust anchors (config file); in the API
	// the PEM itself. Read when the profile is applied and stored with it.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// CertsDER holds the anchors as stored (not configured).
	CertsDER [][]byte `yaml:"-" json:"certs_der,omitempty"`
}

// NDES configures the NDES-compatible admin page. Callers authenticate with
// HTTP Basic: Username and a password (from PasswordEnv, or PasswordHash, an
// argon2id PHC string), or any user name with an API token (role mdm,
// operator or admin for the profile) as the password.
type NDES struct {
	// Username is the HTTP Basic user name the MDM is configured with.
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	// PasswordEnv names the environment variable holding Username's
	// password (stored argon2id-hashed).
	PasswordEnv string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	// PasswordHash is Username's password as an argon2id PHC string,
	// instead of PasswordEnv.
	PasswordHash string `yaml:"password_hash,omitempty" json:"password_hash,omitempty"`
	// Encoding of the page: utf-16le (NDES's, default) or utf-8.
	Encoding string `yaml:"encoding,omitempty" json:"encoding,omitempty"`
}

// Webhook is an operator's validation service.
type Webhook struct {
	// URL receives a POST of JSON per request to validate. Required.
	URL string `yaml:"url" json:"url"`
	// SecretEnv names the environment variable holding the HMAC key.
	SecretEnv string `yaml:"secret_env" json:"secret_env"`
	// Timeout per call. Default 5s.
	Timeout ca.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Notify also reports issued and failed requests. Default false.
	Notify bool `yaml:"notify,omitempty" json:"notify,omitempty"`
}

// Intune identifies the Entra ID app that holds the Intune permission
// scep_challenge_provider.
type Intune struct {
	// Tenant is the Entra ID tenant (ID or domain). Required.
	Tenant string `yaml:"tenant" json:"tenant"`
	// ClientID is the app registration's application (client) ID. Required.
	ClientID string `yaml:"client_id" json:"client_id"`
	// ClientSecretEnv names the environment variable holding the secret.
	ClientSecretEnv string `yaml:"client_secret_env" json:"client_secret_env"`
	// LoginURL and GraphURL override Microsoft's endpoints (tests, sovereign clouds).
	LoginURL string `yaml:"login_url,omitempty" json:"login_url,omitempty"`
	GraphURL string `yaml:"graph_url,omitempty" json:"graph_url,omitempty"`
}

// Load reads and strictly decodes a config file: unknown keys are errors.
// It does not validate; call Validate.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse strictly decodes YAML (JSON is YAML too).
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &f, nil
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidID reports whether s can name a CA or profile (it appears in URLs).
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Errors collects validation errors, each prefixed by its path.
type Errors []string

func (e Errors) Error() string { return strings.Join(e, "\n") }

func (e *Errors) add(path, format string, args ...any) {
	*e = append(*e, path+": "+fmt.Sprintf(format, args...))
}

// Validate checks the whole file and returns every problem found, each
// with its path (profiles[1].challenge.mode: ...).
func (f *File) Validate() error {
	var errs Errors
	if f.PublicURL != "" && !strings.HasPrefix(f.PublicURL, "http://") && !strings.HasPrefix(f.PublicURL, "https://") {
		errs.add("public_url", "%q must start with http:// or https://", f.PublicURL)
	}
	if (f.Listen.AdminTLSCert == "") != (f.Listen.AdminTLSKey == "") {
		errs.add("listen", "admin_tls_cert and admin_tls_key go together")
	}
	if f.Listen.AdminTLSCert != "" && f.Listen.AdminAddr == "" {
		errs.add("listen.admin_addr", "required when the admin listener has TLS")
	}
	for i, p := range f.Listen.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				errs.add(fmt.Sprintf("listen.trusted_proxies[%d]", i), "%q is neither a CIDR nor an address", p)
			}
		}
	}
	if f.Console.IdleTimeout < 0 {
		errs.add("console.idle_timeout", "must not be negative")
	}
	if f.Crypto != "" && f.Crypto != "go" && f.Crypto != "openssl" {
		errs.add("crypto", "%q: want go or openssl", f.Crypto)
	}
	if f.Database != "" && !strings.HasPrefix(f.Database, "postgres://") && !strings.HasPrefix(f.Database, "postgresql://") {
		errs.add("database", "want a postgres:// URL, or nothing for SQLite")
	}
	cas := map[string]bool{}
	// caModeless holds the CAs the file creates without allow_ca_mode: no
	// profile can use them in CA mode.
	caModeless := map[string]bool{}
	for i, c := range f.CAs {
		path := fmt.Sprintf("cas[%d]", i)
		if err := c.Validate(cas); err != nil {
			for _, e := range err.(Errors) {
				errs = append(errs, path+"."+e)
			}
		}
		cas[c.ID] = true
		caModeless[c.ID] = c.Create != nil && !c.Create.AllowCAMode
	}
	// raIssuers maps the RA issuers scepd creates for the file's profiles
	// in RA mode to their profile: they issue nothing to devices.
	raIssuers := map[string]string{}
	for _, p := range f.Profiles {
		if p.Upstream != nil {
			raIssuers[RAIssuerID(p.ID)] = p.ID
		}
	}
	ids := map[string]bool{}
	for i, p := range f.Profiles {
		path := fmt.Sprintf("profiles[%d]", i)
		if ids[p.ID] {
			errs.add(path+".id", "%q is declared twice", p.ID)
		}
		ids[p.ID] = true
		if err := p.Validate(); err != nil {
			for _, e := range err.(Errors) {
				errs = append(errs, path+"."+e)
			}
		}
		if p.CA != "" && len(f.CAs) > 0 && !cas[p.CA] {
			errs.add(path+".ca", "no CA %q is declared in cas", p.CA)
		}
		if p.Upstream != nil && cas[RAIssuerID(p.ID)] {
			errs.add(path+".upstream", "the CA ID %q is taken by cas: scepd creates it as this profile's RA issuer", RAIssuerID(p.ID))
		}
		if owner, ok := raIssuers[p.CA]; ok && p.Upstream == nil {
			errs.add(path+".ca", "CA %q is the RA issuer of profile %s (RA mode): it issues nothing to devices", p.CA, owner)
		}
		if owner, ok := raIssuers[p.Rollover.NextCA]; ok {
			errs.add(path+".rollover.next_ca", "CA %q is the RA issuer of profile %s (RA mode): it issues nothing to devices", p.Rollover.NextCA, owner)
		}
		if p.CAMode && caModeless[p.CA] {
			errs.add(path+".ca_mode", "CA %q is created without allow_ca_mode: CA mode needs its key to decrypt (an RSA CA with keyEncipherment)", p.CA)
		}
		if p.CAMode && caModeless[p.Rollover.NextCA] {
			errs.add(path+".rollover.next_ca", "CA %q is created without allow_ca_mode: a profile in CA mode needs it on its next CA too", p.Rollover.NextCA)
		}
	}
	if f.DefaultProfile != "" && !ids[f.DefaultProfile] {
		errs.add("default_profile", "no profile %q is declared", f.DefaultProfile)
	}
	for i, p := range f.Profiles {
		for j, id := range p.Renewal.FromProfiles {
			if ValidID(id) && id != p.ID && !ids[id] {
				errs.add(fmt.Sprintf("profiles[%d].renewal.from_profiles[%d]", i, j), "no profile %q is declared", id)
			}
		}
	}
	f.Events.validate(&errs)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Validate checks one CA declaration; known holds the IDs declared before it.
func (c CA) Validate(known map[string]bool) error {
	var errs Errors
	if !ValidID(c.ID) {
		errs.add("id", "%q must be lowercase letters, digits and dashes", c.ID)
	}
	if known[c.ID] {
		errs.add("id", "%q is declared twice", c.ID)
	}
	switch {
	case (c.Create == nil) == (c.Import == nil):
		errs.add("create", "exactly one of create and import is required")
	case c.Create != nil:
		if c.Create.Subject == "" {
			errs.add("create.subject", "required")
		} else if _, err := ca.ParseName(c.Create.Subject); err != nil {
			errs.add("create.subject", "%v", err)
		}
		if c.Create.KeyType != "" && !ca.KeyType(c.Create.KeyType).Valid() {
			errs.add("create.key_type", "%q: want %s", c.Create.KeyType, ca.KeyTypeList(ca.KeyTypes()))
		}
		if c.Create.Parent != "" && known != nil && !known[c.Create.Parent] {
			errs.add("create.parent", "no CA %q is declared before this one", c.Create.Parent)
		}
		if c.Create.Validity < 0 {
			errs.add("create.validity", "must be positive")
		}
		if c.Create.AllowCAMode && c.Create.KeyType != "" && !ca.KeyType(c.Create.KeyType).RSA() {
			errs.add("create.allow_ca_mode", "CA mode needs an RSA key (key_type rsa-*)")
		}
	case c.Import != nil:
		im := c.Import
		if im.PKCS12 != "" {
			if im.Cert != "" || im.Key != "" {
				errs.add("import", "either pkcs12, or cert and key")
			}
		} else if im.Cert == "" || im.Key == "" {
			errs.add("import", "cert and key are both required (or pkcs12)")
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Validate checks one profile declaration.
func (p Profile) Validate() error {
	var errs Errors
	if !ValidID(p.ID) {
		errs.add("id", "%q must be lowercase letters, digits and dashes", p.ID)
	}
	switch {
	case p.Upstream != nil && p.CA != "":
		errs.add("upstream", "ca and upstream are exclusive: a profile issues from a local CA or obtains from an upstream")
	case p.Upstream != nil:
		p.Upstream.validate(&errs)
		if p.Upstream.SCEP != nil && p.Upstream.SCEP.NDES != nil && p.Challenge.Mode != store.ChallengeDynamic {
			errs.add("upstream.scep.ndes", "challenges fetched from the upstream are one-time: the profile needs challenge mode dynamic")
		}
		if p.CAMode {
			errs.add("ca_mode", "a profile in RA mode (upstream) has an RA of its own")
		}
		if p.Rollover.NextCA != "" {
			errs.add("rollover", "a profile in RA mode (upstream) has no local CA to roll over")
		}
		if p.Renewal.RevokeOld {
			errs.add("renewal.revoke_old", "a profile in RA mode (upstream) cannot revoke at its upstream CA: the old certificate would stay valid there while scepd listed it revoked; revoke it at the upstream")
		}
	case p.CA == "":
		errs.add("ca", "required (or upstream)")
	}
	if p.RAKeyType != "" && !ca.KeyType(p.RAKeyType).RSA() {
		errs.add("ra_key_type", "%q: an RA key must be %s", p.RAKeyType, ca.KeyTypeList(ca.RAKeyTypes()))
	}
	if p.CAMode && p.RAKeyType != "" {
		errs.add("ra_key_type", "a profile in CA mode has no RA of its own")
	}
	c := p.Challenge
	switch c.Mode {
	case "", store.ChallengeStatic:
		n := 0
		for _, s := range []string{c.PasswordEnv, c.PasswordFile, c.PasswordHash, c.Password} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			errs.add("challenge", "a static challenge needs exactly one of password_env, password_file, password_hash (or password in the API)")
		}
		if c.Password != "" && len(c.Password) < 8 {
			errs.add("challenge.password", "at least 8 characters")
		}
		if c.TTL != 0 || c.MaxPending != 0 {
			errs.add("challenge", "ttl and max_pending apply to dynamic challenges only")
		}
		if c.RotationOverlap < 0 {
			errs.add("challenge.rotation_overlap", "must be positive")
		}
	case store.ChallengeDynamic:
		if c.PasswordEnv != "" || c.PasswordFile != "" || c.PasswordHash != "" || c.Password != "" {
			errs.add("challenge", "a dynamic challenge takes no password")
		}
		if c.TTL < 0 || (c.TTL != 0 && c.TTL < ca.Duration(1e9)) {
			errs.add("challenge.ttl", "at least 1s")
		}
		if c.MaxPending < 0 || c.MaxPending > 100000 {
			errs.add("challenge.max_pending", "%d is outside 0..100000", c.MaxPending)
		}
	case store.ChallengeWebhook:
		if c.Webhook == nil || c.Webhook.URL == "" || c.Webhook.SecretEnv == "" {
			errs.add("challenge.webhook", "url (http or https) and secret_env are required")
		} else {
			checkURL(&errs, "challenge.webhook.url", c.Webhook.URL, "the service authenticates scepd by secret_env's signature; a key may go in the query, which scepd does not log")
		}
	case store.ChallengeIntune:
		if c.Intune == nil || c.Intune.Tenant == "" || c.Intune.ClientID == "" || c.Intune.ClientSecretEnv == "" {
			errs.add("challenge.intune", "tenant, client_id and client_secret_env are required")
		} else {
			for field, u := range map[string]string{"login_url": c.Intune.LoginURL, "graph_url": c.Intune.GraphURL} {
				if u != "" {
					checkURL(&errs, "challenge.intune."+field, u, "use client_secret_env")
				}
			}
		}
		if p.Approval == "manual" {
			errs.add("approval", "Intune has no pending state: an intune profile cannot require manual approval")
		}
		if p.Upstream != nil && p.Upstream.SCEP != nil && p.Upstream.SCEP.WhenUnavailable == "pending" {
			errs.add("upstream.scep.when_unavailable", "Intune has no pending state: an intune profile cannot hold requests while its upstream is down")
		}
	case store.ChallengeEntity:
		if p.Approval == "manual" {
			errs.add("approval", "entity profiles issue at once; manual approval is not supported with them")
		}
	case store.ChallengeRA:
		if c.TrustedRA == nil || c.TrustedRA.CAFile == "" {
			errs.add("challenge.trusted_ra", "ca_file (the CA certificates RA certificates chain to) is required")
		}
		if c.PasswordEnv != "" || c.PasswordFile != "" || c.PasswordHash != "" || c.Password != "" {
			errs.add("challenge", "mode ra takes no password: the RA's certificate authorises the request")
		}
	default:
		errs.add("challenge.mode", "%q: want static, dynamic, webhook, intune, entity or ra", c.Mode)
	}
	if c.TrustedRA != nil && c.Mode != store.ChallengeRA {
		errs.add("challenge.trusted_ra", "applies to mode ra only")
	}
	if (c.NDES != nil || c.Jamf) && c.Mode != store.ChallengeDynamic {
		errs.add("challenge", "ndes and jamf hand out one-time challenges: they need mode dynamic")
	}
	if c.NDES != nil {
		switch c.NDES.Encoding {
		case "", "utf-16le", "utf-8":
		default:
			errs.add("challenge.ndes.encoding", "%q: want utf-16le or utf-8", c.NDES.Encoding)
		}
		if c.NDES.Username != "" && c.NDES.PasswordEnv == "" && c.NDES.PasswordHash == "" {
			errs.add("challenge.ndes", "a username needs password_env or password_hash")
		}
	}
	switch p.Approval {
	case "", "auto", "manual":
	default:
		errs.add("approval", "%q: want auto or manual", p.Approval)
	}
	if p.PendingTTL < 0 {
		errs.add("pending_ttl", "must be positive")
	}
	for i, d := range p.ExpiryNotices {
		if d < ca.Duration(time.Minute) {
			errs.add(fmt.Sprintf("expiry_notices[%d]", i), "%v: want at least 1m", time.Duration(d))
		}
	}
	if (p.Rollover.NextCA == "") != p.Rollover.At.IsZero() {
		errs.add("rollover", "next_ca and at go together")
	}
	if p.Rollover.NextCA != "" && p.Rollover.NextCA == p.CA {
		errs.add("rollover.next_ca", "is the profile's current CA")
	}
	if p.Renewal.Window < 0 || p.Renewal.Window > 1 {
		errs.add("renewal.window", "%v is outside 0..1", p.Renewal.Window)
	}
	switch p.Renewal.Approval {
	case "", "auto":
	case "manual":
		if p.Approval != "manual" {
			errs.add("renewal.approval", "manual applies to profiles with approval: manual (this one issues first requests at once)")
		}
	default:
		errs.add("renewal.approval", "%q: want auto or manual", p.Renewal.Approval)
	}
	for i, id := range p.Renewal.FromProfiles {
		switch {
		case !ValidID(id):
			errs.add(fmt.Sprintf("renewal.from_profiles[%d]", i), "%q must be lowercase letters, digits and dashes", id)
		case id == p.ID:
			errs.add(fmt.Sprintf("renewal.from_profiles[%d]", i), "%q is this profile (its own certificates always renew here)", id)
		}
	}
	if _, err := p.Policy.Compile(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs.add("policy."+strings.SplitN(line, ":", 2)[0], "%s", strings.TrimSpace(strings.SplitN(line, ":", 2)[1]))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// KeyReuse reports whether a renewal may keep its key, with the default
// (true) applied.
func (r Renewal) KeyReuse() bool { return Bool(r.AllowKeyReuse, true) }

// Bool reads an optional boolean with its default.
func Bool(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func (e Events) validate(errs *Errors) {
	if e.ExpiryScan < 0 || (e.ExpiryScan > 0 && e.ExpiryScan < ca.Duration(time.Second)) {
		errs.add("events.expiry_scan", "want at least 1s")
	}
	names := map[string]bool{}
	for i, s := range e.Sinks {
		path := fmt.Sprintf("events.sinks[%d]", i)
		if !idPattern.MatchString(s.Name) {
			errs.add(path+".name", "%q must be lowercase letters, digits and dashes", s.Name)
		}
		if names[s.Name] {
			errs.add(path+".name", "%q is declared twice", s.Name)
		}
		names[s.Name] = true
		switch s.Type {
		case "webhook":
			checkURL(errs, path+".url", s.URL, "use username and password_env for HTTP Basic")
			if s.SecretEnv == "" {
				errs.add(path+".secret_env", "required: events are signed")
			}
			if (s.Username == "") != (s.PasswordEnv == "") {
				errs.add(path, "username and password_env go together (HTTP Basic)")
			}
		case "log":
			if s.URL != "" || s.SecretEnv != "" || s.Username != "" || s.PasswordEnv != "" {
				errs.add(path, "url, secret_env, username and password_env are for webhook sinks")
			}
		default:
			errs.add(path+".type", "%q: want webhook or log", s.Type)
		}
		for j, t := range s.Events {
			if !slices.Contains(events.Types, t) {
				errs.add(fmt.Sprintf("%s.events[%d]", path, j), "%q: want one of %s", t, strings.Join(events.Types, ", "))
			}
		}
		if s.Timeout < 0 || s.GiveUpAfter < 0 {
			errs.add(path, "timeout and give_up_after must be positive")
		}
	}
}
