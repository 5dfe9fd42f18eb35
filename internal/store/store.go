// Package store defines scepd's persistence: the domain records, the Store
// interface every backend implements, and the errors backends map their
// driver errors onto. The conformance suite in storetest checks backends.
package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// Errors every backend maps its driver errors onto.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: already exists")
	// ErrLimit: a per-profile cap (pending challenges) is reached.
	ErrLimit = errors.New("store: limit reached")
	// ErrChallengeSpent: the one-time challenge of an enrollment was used,
	// expired or unknown when the enrollment committed; nothing was written.
	ErrChallengeSpent = errors.New("store: one-time challenge already used or expired")
	// ErrUnavailable: the database cannot be reached, is out of space,
	// does not take writes (a read-only standby) or timed out on a lock;
	// the request may succeed later.
	ErrUnavailable = errors.New("store: database unavailable")
	// ErrContention is ErrUnavailable for one transaction, not the
	// database: it lost to a concurrent one (a deadlock, a serialization
	// failure). The caller is answered as for ErrUnavailable (retry), but
	// the database is not taken to be down (Ready).
	ErrContention = fmt.Errorf("store: transaction lost to a concurrent one: %w", ErrUnavailable)
	// ErrNonceReused: another transaction was created by a message with the
	// same senderNonce; nothing was written.
	ErrNonceReused = errors.New("store: senderNonce already used by another transaction")
	// ErrSuperseded: the certificate an issuance was to supersede is
	// revoked already (another renewal of it committed first); nothing was
	// written.
	ErrSuperseded = errors.New("store: the certificate to supersede is already revoked")
)

// ErrDuplicateTransaction: the transaction (profile and transactionID)
// is stored already, so RecordIssued or RecordPending wrote nothing. It
// is an ErrConflict; telling it apart lets enrollment treat a commit that
// lost to a retransmission as the replay it is, without looking the
// transaction up first.
var ErrDuplicateTransaction = fmt.Errorf("store: transaction already exists: %w", ErrConflict)

// CA is an issuer's certificate and where its key lives.
type CA struct {
	ID      string
	CertDER []byte
	// ChainDER holds the certificates above CertDER, root last; empty for a root.
	ChainDER [][]byte
	KeyRef   string
	Created  time.Time
}

// Challenge modes: how a profile authorises a first enrollment. The
// config file, the API and the profile row all spell them so.
const (
	ChallengeStatic  = "static"
	ChallengeDynamic = "dynamic"
	ChallengeWebhook = "webhook"
	ChallengeIntune  = "intune"
	ChallengeEntity  = "entity"
	// ChallengeRA authorises requests signed by a trusted registration
	// authority's certificate (config.TrustedRA).
	ChallengeRA = "ra"
	// ChallengeNone is the zero-config test mode: every request passes.
	ChallengeNone = "none"
)

// Profile is one SCEP endpoint's stored configuration.
type Profile struct {
	ID        string
	CAID      string
	RACertDER []byte
	RAKeyRef  string
	// ChallengeMode is one of the Challenge* modes.
	ChallengeMode string
	// ChallengeHash is the PHC-encoded hash of a static challenge; never the secret.
	ChallengeHash string
	// ChallengeConfig is the mode's settings as JSON (config.Challenge
	// without secrets): webhook URL, Intune tenant, NDES page options.
	ChallengeConfig []byte
	// ChallengePrevHash is the static challenge a rotation replaced; it is
	// still accepted until ChallengePrevUntil.
	ChallengePrevHash  string
	ChallengePrevUntil time.Time
	// ChallengeEnvHash is the PHC-encoded hash of the SCEPD_CHALLENGE value
	// last applied to the default profile's static challenge ("" when none
	// was recorded: no environment value, or a row from before migration
	// 0017). A start applies the environment's value only when it differs
	// from this one, so that a challenge rotated since stays in force.
	ChallengeEnvHash string
	// ChallengeTTL is the lifetime of dynamic challenges.
	ChallengeTTL time.Duration
	// ChallengeMaxPending caps the unused, unexpired dynamic challenges.
	ChallengeMaxPending int
	// AllowDES accepts single-DES requests from legacy devices.
	AllowDES bool
	// IncludeCACert puts the CA chain in CertRep (GetCACert has it always).
	IncludeCACert bool
	// CAMode: the CA itself is the RA (RSA CA with keyEncipherment only);
	// RACertDER and RAKeyRef are then the CA's.
	CAMode bool
	// FullChain: GetCACert and CertRep carry the whole chain up to the
	// root, not just the issuing CA.
	FullChain bool
	// Policy is the profile's certificate policy as JSON (ca.PolicyConfig).
	Policy []byte
	// Lifecycle is the profile's renewal, approval and rollover settings as
	// JSON (config.Lifecycle).
	Lifecycle []byte
	// NextRACertDER and NextRAKeyRef are the RA issued by the next CA of a
	// rollover (GetNextCACert hands it out before the switch).
	NextRACertDER []byte
	NextRAKeyRef  string
	// Upstream is the upstream CA of a profile in RA mode as JSON
	// (provision.StoredUpstream: the config without secrets, and the
	// upstream's pinned CA chain); nil for a profile with a local CA.
	Upstream []byte
	// Source is "config" for profiles the config file declares (the file
	// is authoritative for them), "api" for those created at run time, and
	// "default" for the zero-config profile.
	Source  string
	Created time.Time
	Updated time.Time
}

// Profile sources.
const (
	SourceConfig  = "config"
	SourceAPI     = "api"
	SourceDefault = "default"
)

// Transaction statuses.
const (
	StatusIssued   = "issued"
	StatusPending  = "pending"
	StatusRejected = "rejected"
)

// Transaction is one SCEP enrollment, keyed by profile and transactionID.
// It makes retransmissions idempotent.
type Transaction struct {
	ProfileID     string
	TransactionID string
	Status        string
	// PublicKeySHA256 identifies the requester's key: the same transactionID
	// with another key is a different request.
	PublicKeySHA256 []byte
	// SenderNonce is the nonce of the message that created the transaction
	// (written, never read back): it must be unique across transactions.
	SenderNonce []byte
	CSRDER      []byte
	CertSerial  string
	// ChallengeHash is a one-time challenge reserved by a pending request.
	ChallengeHash []byte
	// Expires is when a pending request lapses.
	Expires time.Time
	// DecidedBy and Reason record an operator's decision on a pending
	// request, or why it was rejected.
	DecidedBy string
	Reason    string
	// ClientTransactionID is the transactionID the client sent.
	// TransactionID equals it, or qualifies it when the client reused it
	// for another request (a renewal, a changed CSR). Empty means
	// TransactionID.
	ClientTransactionID string
	// SignerKeySHA256 is the SHA-256 of the (PKIX) public key that signed
	// the request: CertPoll is answered to it and to the CSR's key.
	SignerKeySHA256 []byte
	// RenewsSerial is the certificate a renewal renews (a renewal held for
	// approval is issued as that renewal).
	RenewsSerial string
	// UpstreamPoll is set on a request an upstream CA holds PENDING (RA
	// mode): the issuer's token to poll it with (enroll.Issuer.Poll). Such
	// a request waits for the upstream, not for an operator's approval.
	UpstreamPoll []byte
	Created      time.Time
	Updated      time.Time
}

// ClientID is the transactionID the client sent.
func (t Transaction) ClientID() string {
	if t.ClientTransactionID == "" {
		return t.TransactionID
	}
	return t.ClientTransactionID
}

// TransactionFilter selects transactions to list.
type TransactionFilter struct {
	ProfileID string
	// Profiles, when set, keeps the transactions of these profiles only
	// (a token limited to profiles).
	Profiles []string
	Status   string
	// ClientTransactionID keeps the requests a client sent under that
	// transactionID (see Transaction.ClientTransactionID).
	ClientTransactionID string
	Limit               int
	// Newest lists newest first (oldest first otherwise); Before then
	// continues after that row: only transactions strictly older in
	// (Created, TransactionID) are listed (keyset paging).
	Newest bool
	Before TransactionKey
}

// TransactionKey is a transaction's place in the newest-first order.
type TransactionKey struct {
	Created       time.Time
	TransactionID string
}

// IsZero reports whether k is no key (the first page).
func (k TransactionKey) IsZero() bool { return k.Created.IsZero() && k.TransactionID == "" }

// Certificate statuses.
const (
	CertValid   = "valid"
	CertRevoked = "revoked"
)

// Certificate is an issued certificate.
type Certificate struct {
	// Serial is lowercase hex without leading zeros.
	Serial        string
	ProfileID     string
	TransactionID string
	Subject       string
	SANs          []string
	NotBefore     time.Time
	NotAfter      time.Time
	DER           []byte
	Status        string
	// CAID is the issuing CA (profiles may move to another CA; a
	// certificate's CRL is its issuer's).
	CAID string
	// RenewedSerial is the certificate this one renewed, if any.
	RenewedSerial string
	// RevokedAt and RevocationReason (RFC 5280 §5.3.1) are set once revoked.
	RevokedAt        time.Time
	RevocationReason int
	Created          time.Time
	// Upstream names the upstream CA that issued the certificate (RA
	// mode: "scep:<url>"); "" when a local CA signed it. CAID is then the
	// profile's RA issuer, which did not sign it.
	Upstream string
}

// CertificateStat is one profile's certificate counts.
type CertificateStat struct {
	ProfileID string
	Valid     int
	Revoked   int
	Expiring  int
}

// CRL is a signed certificate revocation list of one CA.
type CRL struct {
	CAID       string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
	// Generation is the CA's revocation generation the CRL covers (read
	// before its entries were listed): the CRL is stale once
	// RevocationGeneration is higher.
	Generation int64
}

// AuditEvent is one entry of the append-only, hash-chained audit log.
type AuditEvent struct {
	Seq     int64             `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Object  string            `json:"object"`
	Outcome string            `json:"outcome"`
	Details map[string]string `json:"details,omitempty"`
	// PrevHash and Hash chain the log. From the ActionChainKeyed event on,
	// Hash = HMAC-SHA256(audit key, Seq || PrevHash || event); before it
	// (logs written by earlier versions) Hash = SHA-256(PrevHash || event).
	PrevHash []byte `json:"prev_hash"`
	Hash     []byte `json:"hash"`
}

// AuditProfile is the profile an event concerns, stored beside it so that
// reads can be limited to profiles: the "profile" detail, else an object
// "profile:ID", else "" (CAs, tokens, sign-ins: no single profile). It is
// derived from hashed fields only, so the chain covers it.
func AuditProfile(e AuditEvent) string {
	if p := e.Details["profile"]; p != "" {
		return p
	}
	if p, ok := strings.CutPrefix(e.Object, "profile:"); ok {
		return p
	}
	return ""
}

// ActionChainKeyed is the action of the event from which the audit chain
// is keyed: it is the first event hashed with the audit key, and since its
// HMAC covers PrevHash, it also pins the unkeyed events before it.
const ActionChainKeyed = "audit.chain_keyed"

// LinkAudit sets e's Seq, PrevHash and Hash so that it follows head, the
// newest event (nil for an empty log), keyed with key (nil: the unkeyed
// SHA-256 chain of earlier versions, left for tests of packages that
// open a store without an audit key). It is the one place the chain is
// computed: every backend calls it in the transaction that appends e,
// holding the lock that serialises appenders.
//
// With a key, it refuses (ErrAuditHead) to append onto a head that
// verifies neither with the key nor as an unkeyed event, and onto an
// unkeyed head once the chain is keyed: chainKeyed, asked only for a head
// that verifies the unkeyed way, reports whether the log holds an
// ActionChainKeyed event. A replica with another audit key must not fork
// the chain, and a head forged without the key shows at once.
func LinkAudit(key []byte, e *AuditEvent, head *AuditEvent, chainKeyed func() (bool, error)) error {
	if head != nil && key != nil {
		switch head.verifies(key) {
		case headKeyed:
		case headUnkeyed:
			keyed, err := chainKeyed()
			if err != nil {
				return err
			}
			if keyed {
				return fmt.Errorf("%w (event %d)", ErrAuditHeadUnkeyed, head.Seq)
			}
		default:
			return fmt.Errorf("%w (event %d)", ErrAuditHead, head.Seq)
		}
	}
	return LinkAuditVerified(key, e, head)
}

// LinkAuditVerified is LinkAudit onto a head known to verify already:
// the event this process appended last, read back unchanged field for
// field (its hash was computed here, with this key).
func LinkAuditVerified(key []byte, e *AuditEvent, head *AuditEvent) error {
	e.Seq = 1
	e.PrevHash = []byte{}
	if head != nil {
		e.Seq, e.PrevHash = head.Seq+1, head.Hash
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	var err error
	if key == nil {
		e.Hash, err = e.ChainHash(e.PrevHash)
	} else {
		e.Hash, err = e.KeyedHash(key, e.PrevHash)
	}
	return err
}

// ErrAuditHead: the newest audit event verifies neither with the audit
// key nor as an unkeyed event; nothing was written.
var ErrAuditHead = errors.New("store: the newest audit event does not verify with this audit key")

// ErrAuditHeadUnkeyed, an ErrAuditHead: the newest audit event is hashed
// the unkeyed way (anyone can compute it) in a chain already keyed.
var ErrAuditHeadUnkeyed = fmt.Errorf("%w: it is hashed without the key, after the chain was keyed", ErrAuditHead)

// How an audit event's hash verifies (AuditEvent.verifies).
const (
	headForged = iota
	headKeyed
	headUnkeyed
)

// verifies reports whether e's hash is its keyed hash under key
// (headKeyed), its unkeyed hash (headUnkeyed, which anyone can compute;
// never for the ActionChainKeyed marker), or neither.
func (e *AuditEvent) verifies(key []byte) int {
	if h, err := e.KeyedHash(key, e.PrevHash); err == nil && hmac.Equal(h, e.Hash) {
		return headKeyed
	}
	if h, err := e.ChainHash(e.PrevHash); err == nil && bytes.Equal(h, e.Hash) && e.Action != ActionChainKeyed {
		return headUnkeyed
	}
	return headForged
}

// ChainVerifier checks an audit hash chain fed oldest first. Events before
// the first ActionChainKeyed event are checked the unkeyed way (anyone can
// recompute those, so they prove little on their own); from it on, every
// event must carry the HMAC of Key.
type ChainVerifier struct {
	// Key is the audit chain key; nil checks unkeyed events only.
	Key   []byte
	prev  []byte
	n     int64
	keyed bool
	// Unkeyed counts the events before the chain became keyed.
	Unkeyed int64
	// NoKey is set when a keyed event was reached without a Key: the
	// chain could not be checked, which is not evidence of tampering.
	NoKey bool
}

// Keyed reports whether the chain has become keyed.
func (v *ChainVerifier) Keyed() bool { return v.keyed }

// Head returns the hash of the last event checked.
func (v *ChainVerifier) Head() []byte { return v.prev }

// Next checks one event; it returns a description of the break, or "".
func (v *ChainVerifier) Next(e AuditEvent) string {
	v.n++
	if v.prev == nil {
		v.prev = []byte{}
	}
	if !bytes.Equal(e.PrevHash, v.prev) {
		return fmt.Sprintf("audit event %d does not link to the event before it (an event was removed, inserted or altered)", e.Seq)
	}
	if v.keyed || e.Action == ActionChainKeyed {
		if v.Key == nil {
			v.NoKey = true
			return fmt.Sprintf("audit event %d is keyed and no audit key was given to check it", e.Seq)
		}
		h, err := e.KeyedHash(v.Key, v.prev)
		if err != nil || !hmac.Equal(h, e.Hash) {
			return fmt.Sprintf("audit event %d was altered or inserted (its HMAC does not match: written without the audit key)", e.Seq)
		}
		v.keyed = true
	} else {
		h, err := e.ChainHash(v.prev)
		if err != nil || !bytes.Equal(h, e.Hash) {
			return fmt.Sprintf("audit event %d was altered (hash mismatch)", e.Seq)
		}
		v.Unkeyed++
	}
	v.prev = e.Hash
	return ""
}

// Done reports, after the last event, a log that should be keyed and is
// not: with a key, a log of events none of which is keyed was rewritten
// (or never served by a version that keys it).
func (v *ChainVerifier) Done() string {
	if v.Key != nil && v.n > 0 && !v.keyed {
		return fmt.Sprintf("none of the %d audit events is keyed: the keyed events were removed and the rest rewritten, or this log was never served by a version of scepd that keys it", v.n)
	}
	return ""
}

// ChainHash computes an event's unkeyed hash (earlier versions' chain)
// from the previous hash and its fields.
func (e *AuditEvent) ChainHash(prev []byte) ([]byte, error) {
	h := sha256.New()
	h.Write(prev)
	if err := e.writeFields(h); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// KeyedHash computes an event's keyed hash: HMAC-SHA256 under key over a
// version label, the sequence number, the previous hash and the fields.
func (e *AuditEvent) KeyedHash(key, prev []byte) ([]byte, error) {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("scepd audit chain v2\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(e.Seq))
	h.Write(b[:])
	binary.BigEndian.PutUint32(b[:4], uint32(len(prev)))
	h.Write(b[:4])
	h.Write(prev)
	if err := e.writeFields(h); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// writeFields writes the event's time and length-prefixed fields.
func (e *AuditEvent) writeFields(h hash.Hash) error {
	details, err := json.Marshal(e.Details) // map keys are sorted: deterministic
	if err != nil {
		return err
	}
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(e.Time.UTC().UnixMicro()))
	h.Write(ts[:])
	for _, f := range []string{e.Actor, e.Action, e.Object, e.Outcome, string(details)} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return nil
}

// Challenge is a one-time (dynamic) challenge. Only the SHA-256 of the
// secret is stored: the secret is 192 random bits, so a fast hash is
// enough and lets the database look it up by value.
type Challenge struct {
	Hash      []byte
	ProfileID string
	Created   time.Time
	Expires   time.Time
	// Used is zero while the challenge is pending.
	Used       time.Time
	UsedSerial string
	// ReservedBy is the transactionID of a pending request holding it.
	ReservedBy string
	// BoundTo, when set, is a CN or SAN value the request must carry.
	BoundTo string
	// Note records who asked for it (an MDM's device identity).
	Note string
}

// Entity is a pre-registered end entity: a username (the certificate's
// CN) and a hashed enrollment code usable a number of times.
type Entity struct {
	ProfileID string
	Username  string
	CodeHash  []byte
	UsesLeft  int
	Expires   time.Time
	Created   time.Time
}

// Issued is everything one successful enrollment commits, atomically.
type Issued struct {
	Transaction Transaction
	Certificate Certificate
	Audit       AuditEvent
	// ChallengeHash, when set, names a one-time challenge consumed in the
	// same transaction: if it is no longer pending, nothing is written and
	// RecordIssued returns ErrChallengeSpent.
	ChallengeHash []byte
	// FromPending issues an approved pending request: its transaction row
	// is updated (it must still be pending, else ErrConflict) instead of
	// inserted.
	FromPending bool
	// EntityUser, when set, spends one use of that end entity's code in
	// the same transaction (ErrChallengeSpent if none is left or it expired).
	EntityUser string
	// Supersede, when set, revokes the certificate this one replaces (a
	// renewal with revoke_old) in the same transaction, as
	// RevokeCertificate would at Certificate.Created. If it is revoked
	// already, nothing is written and RecordIssued returns ErrSuperseded:
	// of two renewals of one certificate, one wins.
	Supersede *Supersede
}

// Supersede is the revocation of a renewed certificate that goes with its
// renewal (see Issued.Supersede).
type Supersede struct {
	Serial string
	Reason int
	Audit  AuditEvent
}

// Revoked is a CRL entry as stored: a CA's CRL of 100,000 entries is
// listed in a few MiB.
type Revoked struct {
	Serial string
	At     time.Time
	Reason int
}

// IntegrityReport is the outcome of Store.CheckIntegrity.
type IntegrityReport struct {
	Certificates int
	Transactions int
	AuditEvents  int
	// Problems lists every inconsistency found; empty means sound.
	Problems []string
}

// CertificateFilter selects certificates to list.
type CertificateFilter struct {
	ProfileID string
	// Profiles, when set, keeps the certificates of these profiles only
	// (a token limited to profiles).
	Profiles []string
	// Subject matches certificates whose subject contains it (case-insensitive).
	Subject string
	// Status is CertValid or CertRevoked; empty means any.
	Status string
	// ExpiringBefore keeps certificates whose notAfter is before it;
	// ExpiringAfter those whose notAfter is at or after it.
	ExpiringBefore time.Time
	ExpiringAfter  time.Time
	// SAN matches certificates with a SAN containing it (case-insensitive).
	SAN string
	// RenewedSerial keeps the certificates that renewed this one.
	RenewedSerial string
	// SerialPrefixes keeps certificates whose serial (lower-case hex, no
	// leading zeros) starts with one of these; each is lower-case hex.
	SerialPrefixes []string
	// Order is the listing order: CertOrderNewest (the default) or
	// CertOrderExpiry.
	Order  string
	Limit  int
	Offset int
	// After continues a listing after this row (keyset paging): newest
	// first, only certificates strictly older in (Created, Serial) are
	// listed (the certificates_created order); in CertOrderExpiry, those
	// strictly later in (notAfter, Serial). Zero: from the start.
	After CertificateKey
}

// Certificate listing orders.
const (
	// CertOrderNewest lists newest first: created_at, then serial, descending.
	CertOrderNewest = ""
	// CertOrderExpiry lists the soonest to expire first: not_after, then
	// serial, ascending.
	CertOrderExpiry = "expiry"
)

// FailureCount is how many enrollments were refused with a failInfo
// (its RFC 8894 name) and reason.
type FailureCount struct {
	FailInfo, Reason string
	Count            int
}

// CertificateKey is a certificate's place in a listing order: its
// creation time (newest first) or its notAfter (CertOrderExpiry), then
// its serial for rows with the same time.
type CertificateKey struct {
	Created time.Time
	Serial  string
}

// IsZero reports whether k names no row.
func (k CertificateKey) IsZero() bool { return k.Serial == "" && k.Created.IsZero() }

// Token is an API token. The secret is shown once at creation; only its
// SHA-256 is stored (it is 256 random bits, so a fast hash is enough).
type Token struct {
	// ID is the public part of the token, used to find it.
	ID   string
	Hash []byte
	Name string
	// Role is admin, operator, mdm or auditor.
	Role string
	// Profiles limits the token to these profiles; empty means all.
	Profiles []string
	Created  time.Time
	// Revoked is zero while the token is valid.
	Revoked time.Time
}

// Session is a signed-in web console session. Only the SHA-256 of the
// cookie value is stored; the token is checked again on every request.
type Session struct {
	IDHash  []byte
	TokenID string
	// CSRFHash is the hex SHA-256 of the per-session token every console
	// form carries; never the token itself.
	CSRFHash string
	Created  time.Time
	Expires  time.Time
	// LastSeen is the last request of the session (kept to about a
	// minute), for the idle timeout.
	LastSeen time.Time
	// HasFlash tells that a flash is waiting (TakeSessionFlash).
	HasFlash bool
}

// DayCount is the number of certificates a profile issued on a UTC day.
type DayCount struct {
	Day       string // YYYY-MM-DD
	ProfileID string
	Count     int
}

// SealedKey is a private key kept in the database, sealed (AEAD) under a
// key derived from the operator's passphrase; the database never holds
// the passphrase or the key in the clear. Keys are referenced as "db:ID"
// in the key-reference columns (CA.KeyRef, Profile.RAKeyRef, ...).
type SealedKey struct {
	ID string
	// KDF names the key derivation ("pbkdf2-hmac-sha256"), Iterations and
	// Salt (random, per key) its parameters.
	KDF        string
	Iterations int
	Salt       []byte
	// Cipher names the AEAD ("aes-256-gcm"); Sealed is nonce || ciphertext
	// with the ID as associated data.
	Cipher  string
	Sealed  []byte
	Created time.Time
}

// KeyMove is one change of where keys live (see Store.MoveKeys): sealed
// keys to store, key references to rewrite (old -> new) in every CA and
// profile, and sealed keys to delete.
type KeyMove struct {
	Put    []SealedKey
	Refs   map[string]string
	Delete []string
}

// Store is the persistence interface. Every method is safe for concurrent
// use, and every multi-record change is one database transaction.
type Store interface {
	CreateCA(ctx context.Context, ca CA) error
	GetCA(ctx context.Context, id string) (CA, error)
	ListCAs(ctx context.Context) ([]CA, error)

	CreateProfile(ctx context.Context, p Profile) error
	GetProfile(ctx context.Context, id string) (Profile, error)
	// UpdateProfile replaces a profile's mutable fields (everything but ID,
	// CAID and Created).
	UpdateProfile(ctx context.Context, p Profile) error
	ListProfiles(ctx context.Context) ([]Profile, error)

	GetTransaction(ctx context.Context, profileID, transactionID string) (Transaction, error)
	ListTransactions(ctx context.Context, f TransactionFilter) ([]Transaction, error)
	// LatestRequest returns the newest request a client sent to a profile
	// under transactionID clientID whose CSR's key or signing key has the
	// SHA-256 keySHA256 (see Transaction.ClientTransactionID,
	// PublicKeySHA256, SignerKeySHA256); ErrNotFound if there is none.
	// CertPoll asks it: one indexed row, however many requests share the ID.
	LatestRequest(ctx context.Context, profileID, clientID string, keySHA256 []byte) (Transaction, error)
	// RecordPending stores a request awaiting approval, reserving its
	// one-time challenge (ErrChallengeSpent if it is gone). entityUser,
	// when set, spends one use of that end entity's code (ErrChallengeSpent
	// if none is left): a request held for an upstream is issued without
	// the code being asked again.
	RecordPending(ctx context.Context, t Transaction, entityUser string, audit AuditEvent) error
	// RejectPending rejects a pending request and frees its challenge;
	// ErrNotFound if it is not pending.
	RejectPending(ctx context.Context, profileID, transactionID, decidedBy, reason string, at time.Time, audit AuditEvent) error
	// SetUpstreamPoll replaces the upstream token of a pending request,
	// old, by token (compare and swap: ErrConflict, nothing written, when
	// the request is no longer pending with the token old).
	SetUpstreamPoll(ctx context.Context, profileID, transactionID string, old, token []byte) error
	// ExpirePending rejects pending requests whose time ran out, frees
	// their challenges and appends a request.reject event by scepd for
	// each, in the transaction that rejects it; it returns how many it
	// rejected.
	ExpirePending(ctx context.Context, now time.Time) (int, error)
	// RecordIssued commits an issued certificate, its transaction and its
	// audit event together. A transaction that already exists is ErrConflict
	// and nothing is written.
	RecordIssued(ctx context.Context, rec Issued) error
	// Expect announces a write that will follow shortly with the
	// returned context (an enrollment being decided), so that a commit
	// about to begin may wait a little for it to join; done settles the
	// announcement if no write comes.
	Expect(ctx context.Context) (_ context.Context, done func())

	GetCertificate(ctx context.Context, serial string) (Certificate, error)
	ListCertificates(ctx context.Context, f CertificateFilter) ([]Certificate, error)
	// CountCertificates counts the certificates f selects, whatever its
	// Limit, Offset and After.
	CountCertificates(ctx context.Context, f CertificateFilter) (int, error)
	// CertificateStats counts certificates per profile: valid (not yet
	// expired), revoked, and valid ones expiring within the given window.
	CertificateStats(ctx context.Context, now time.Time, expiringWithin time.Duration) ([]CertificateStat, error)
	// RevokeCertificate marks a certificate revoked with its audit event
	// and bumps its CA's revocation generation; revoking again changes
	// nothing (the first time and reason stay), except that keySHA256,
	// set for a revocation for key compromise, records the certificate's
	// key as compromised (see KeyCompromised) and makes reason the
	// revocation's reason, also when it was revoked already.
	RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time, keySHA256 []byte, audit AuditEvent) error
	// KeyCompromised returns the serial of the certificate whose
	// revocation recorded the key with this SHA-256 (of its
	// SubjectPublicKeyInfo as ca.MarshalPublicKey encodes it) as
	// compromised; ErrNotFound when none did.
	KeyCompromised(ctx context.Context, keySHA256 []byte) (string, error)
	// ListRevoked returns a CA's revoked certificates for its CRL, ordered
	// by serial.
	ListRevoked(ctx context.Context, caID string) ([]Revoked, error)

	// NextCRLNumber hands out the CA's next CRL number, atomically and
	// monotonically across replicas, while the CA's revocation generation
	// is still gen (ErrConflict, no number taken, once a revocation moved
	// it): a CRL listing what generation gen counts never gets a number
	// above one a later generation's CRL got. The number is at least
	// floor (the signing time in Unix milliseconds): a database restored from a
	// backup must not hand out again numbers its CRLs had since.
	NextCRLNumber(ctx context.Context, caID string, gen, floor int64) (int64, error)
	SaveCRL(ctx context.Context, c CRL) error
	// LatestCRL returns the CA's CRL with the highest number.
	LatestCRL(ctx context.Context, caID string) (CRL, error)
	// RevocationGeneration returns the CA's revocation generation: the
	// number of revocations of its certificates so far (0 for an unknown
	// CA). Comparing it with the latest CRL's Generation is the cheap
	// check that the CRL still lists every revocation.
	RevocationGeneration(ctx context.Context, caID string) (int64, error)

	// CreateChallenge stores a pending one-time challenge unless the profile
	// already has maxPending pending ones (ErrLimit).
	CreateChallenge(ctx context.Context, c Challenge, maxPending int) error
	// GetChallenge returns a challenge of a profile by hash.
	GetChallenge(ctx context.Context, profileID string, hash []byte) (Challenge, error)
	// PendingChallenges lists a profile's one-time challenges neither used
	// nor expired at now, newest first, at most limit.
	PendingChallenges(ctx context.Context, profileID string, now time.Time, limit int) ([]Challenge, error)
	// CancelChallenge deletes a pending one-time challenge no request
	// holds (ErrNotFound when there is none such).
	CancelChallenge(ctx context.Context, profileID string, hash []byte) error
	// PurgeChallenges deletes challenges that expired before t and were never
	// used nor reserved by a pending request (which consumes it past expiry).
	PurgeChallenges(ctx context.Context, t time.Time) (int, error)

	// PutEntity creates or replaces an end entity registration.
	PutEntity(ctx context.Context, e Entity) error
	GetEntity(ctx context.Context, profileID, username string) (Entity, error)
	ListEntities(ctx context.Context, profileID string) ([]Entity, error)

	CreateToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, id string) (Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks a token revoked; revoking twice is not an error.
	RevokeToken(ctx context.Context, id string, at time.Time) error

	AppendAudit(ctx context.Context, e AuditEvent) error
	// EnrollFailures counts the enrollments refused since a time by
	// failInfo and reason, most first (at most 100 rows); of these
	// profiles when any are given.
	EnrollFailures(ctx context.Context, since time.Time, profiles []string) ([]FailureCount, error)
	// RequestedBy is the actor of a request's first enrollment audit
	// event (device:ADDRESS of the client that sent it); "" when none.
	RequestedBy(ctx context.Context, profileID, transactionID string) (string, error)
	// ListAudit returns the newest events first; with profiles, only the
	// events of those profiles (AuditProfile), filtered in the query.
	ListAudit(ctx context.Context, limit int, profiles ...string) ([]AuditEvent, error)
	// AuditAfter returns up to limit events with Seq > after, oldest first
	// (for exporting and verifying the whole chain page by page).
	AuditAfter(ctx context.Context, after int64, limit int) ([]AuditEvent, error)

	// ClaimSink takes or renews the delivery lease of an event sink for
	// holder until the given time, when the lease is free, expired or
	// holder's already. It returns the sink's cursor: the last audit seq
	// delivered. A sink seen for the first time starts at the newest event
	// (it is not sent the history). ok is false while another holds it;
	// the cursor is returned either way.
	ClaimSink(ctx context.Context, name, holder string, now, until time.Time) (cursor int64, ok bool, err error)
	// AdvanceSink moves a sink's cursor to seq if holder still holds the
	// lease; ErrConflict when the lease was lost (another replica took it).
	AdvanceSink(ctx context.Context, name, holder string, seq int64) error

	// DueExpiryNotices returns up to limit valid certificates of a profile
	// expiring after now and no later than now+before, not renewed by a
	// newer certificate, without a notice recorded for this threshold;
	// soonest expiry first.
	DueExpiryNotices(ctx context.Context, profileID string, before time.Duration, now time.Time, limit int) ([]Certificate, error)
	// RecordExpiryNotice records notices for a certificate for each
	// threshold and, when audit is not nil and the first threshold was not
	// recorded before, appends audit, all in one transaction. It reports
	// whether the first threshold's notice is new (raised exactly once,
	// also across replicas).
	RecordExpiryNotice(ctx context.Context, serial string, thresholds []time.Duration, at time.Time, audit *AuditEvent) (bool, error)

	// CreateSession stores a console session; DeleteSessions removes a
	// session (idHash) or, with nil, every session that expired before now.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns an unexpired session; ErrNotFound otherwise.
	GetSession(ctx context.Context, idHash []byte, now time.Time) (Session, error)
	DeleteSessions(ctx context.Context, idHash []byte, now time.Time) error
	// TouchSession records a session's latest request.
	TouchSession(ctx context.Context, idHash []byte, at time.Time) error
	// PutSessionFlash keeps an opaque note for a session's next page (the
	// console encrypts it to the session's cookie); it replaces any other.
	PutSessionFlash(ctx context.Context, idHash, flash []byte) error
	// TakeSessionFlash returns a session's note and removes it, atomically:
	// of two requests taking it at once, only one gets it. Nil when none.
	TakeSessionFlash(ctx context.Context, idHash []byte) ([]byte, error)

	// IssuedPerDay counts certificates issued since a time, per UTC day and
	// profile, oldest day first.
	IssuedPerDay(ctx context.Context, since time.Time) ([]DayCount, error)
	// ChallengeCounts counts a profile's one-time challenges: pending
	// (unused, unexpired), used, and expired unused ones not yet purged.
	ChallengeCounts(ctx context.Context, profileID string, now time.Time) (pending, used, expired int, err error)

	// CheckIntegrity verifies cross-record consistency: every certificate
	// has its transaction and vice versa, used challenges name a stored
	// certificate, and the audit hash chain is intact.
	CheckIntegrity(ctx context.Context) (IntegrityReport, error)

	// PutKey stores a sealed key; ErrConflict if its ID exists (a sealed
	// key is never replaced).
	PutKey(ctx context.Context, k SealedKey) error
	// GetKey returns a sealed key; ErrNotFound if there is none.
	GetKey(ctx context.Context, id string) (SealedKey, error)
	// ListKeys returns every sealed key, ordered by ID.
	ListKeys(ctx context.Context) ([]SealedKey, error)
	// DeleteKey removes a sealed key; deleting a missing one is not an error.
	DeleteKey(ctx context.Context, id string) error
	// MoveKeys applies a KeyMove in one transaction: on any error (an ID
	// in Put that exists is ErrConflict) nothing changed.
	MoveKeys(ctx context.Context, m KeyMove) error

	Ping(ctx context.Context) error
	Close() error
}

// NotReadyError is why a store cannot take requests (readiness): Reason
// in words anyone may read (no address, path or driver message: /readyz
// shows it), Err the cause, for the log.
type NotReadyError struct {
	Reason string
	Err    error
}

func (e *NotReadyError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *NotReadyError) Unwrap() error { return e.Err }

// Observer is told of every store call: the Store method's name, how long
// it took and its error (nil on success). The metrics package times the
// store through it.
type Observer interface {
	ObserveStore(op string, took time.Duration, err error)
}

// IntegrityQueries count inconsistent rows for CheckIntegrity. The SQL is
// plain enough to read the same in every dialect.
var IntegrityQueries = []struct{ Problem, Query string }{
	// A join, not NOT EXISTS: SQLite builds an automatic index on
	// transactions.cert_serial for it (the column has no index of its
	// own: only this reads it), where a correlated NOT EXISTS would read
	// every transaction for each certificate.
	{"certificates without their transaction", `SELECT count(*) FROM certificates c LEFT JOIN transactions t ON t.cert_serial = c.serial
		WHERE t.cert_serial IS NULL`},
	{"issued transactions without their certificate", `SELECT count(*) FROM transactions t WHERE t.status = 'issued' AND NOT EXISTS
		(SELECT 1 FROM certificates c WHERE c.serial = t.cert_serial)`},
	{"used challenges without a certificate", `SELECT count(*) FROM challenges h WHERE h.used_at IS NOT NULL AND NOT EXISTS
		(SELECT 1 FROM certificates c WHERE c.serial = h.used_serial)`},
}
