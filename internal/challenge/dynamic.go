package challenge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// DynamicStore is the persistence one-time challenges need.
type DynamicStore interface {
	CreateChallenge(ctx context.Context, c store.Challenge, maxPending int) error
	GetChallenge(ctx context.Context, profileID string, hash []byte) (store.Challenge, error)
}

// ErrCacheFull is returned when a profile already has its maximum of
// pending challenges (NDES: "The password cache is full.").
var ErrCacheFull = errors.New("the profile's pending challenge limit is reached")

// ErrRateLimited is returned (wrapped in *RateLimited) when a profile mints
// challenges faster than its rate allows.
var ErrRateLimited = errors.New("challenges are requested too fast for this profile")

// RateLimited says how long to wait before the next challenge can be minted.
type RateLimited struct{ RetryAfter time.Duration }

func (e *RateLimited) Error() string {
	return fmt.Sprintf("%v; retry in %s", ErrRateLimited, e.RetryAfter.Round(time.Millisecond))
}

func (e *RateLimited) Is(target error) bool { return target == ErrRateLimited }

// MintLimiter rations challenge minting per profile.
type MintLimiter interface {
	Allow(key string, now time.Time) (ok bool, retryAfter time.Duration)
}

// Dynamic hands out and checks one-time challenges (NDES-style). Each is
// 192 random bits, stored as its SHA-256, valid until it expires or one
// enrollment with it commits.
type Dynamic struct {
	ProfileID  string
	Store      DynamicStore
	TTL        time.Duration
	MaxPending int
	Now        func() time.Time
	// Limit, when set, rations minting on top of MaxPending (which bounds
	// what is outstanding, not how fast it is asked for); it is shared by
	// every way of minting (API, console, NDES page, Jamf webhook).
	Limit MintLimiter
	// Hex mints hexadecimal challenges instead of base64url ones: every
	// character is valid in a PrintableString, which is how some clients
	// (certmonger) tag the challengePassword and how some CAs
	// (micromdm's scepserver) insist on parsing it. Profiles in RA mode
	// use it, since their CSRs travel on to the upstream as signed.
	Hex bool
	// Source, when set, supplies each new challenge instead of random
	// bytes: a challenge fetched from an upstream's NDES page (RA mode),
	// valid there too. Its errors are the mint's.
	Source func(ctx context.Context) (string, error)
}

var _ Validator = (*Dynamic)(nil)

// Hash is how a one-time challenge is identified at rest.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Create mints a challenge and returns the secret (shown once) and its expiry.
func (d *Dynamic) Create(ctx context.Context) (string, time.Time, error) {
	return d.CreateFor(ctx, "", "")
}

// CreateFor mints a challenge bound to a CN or SAN value (bind, optional)
// and noting who asked (note, e.g. an MDM's device identity).
func (d *Dynamic) CreateFor(ctx context.Context, bind, note string) (string, time.Time, error) {
	now := d.Now()
	if d.Limit != nil {
		if ok, wait := d.Limit.Allow(d.ProfileID, now); !ok {
			return "", time.Time{}, &RateLimited{RetryAfter: wait}
		}
	}
	var secret string
	if d.Source != nil {
		fetched, err := d.Source(ctx)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("challenge: %w", err)
		}
		secret = fetched
	} else {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return "", time.Time{}, fmt.Errorf("challenge: %w", err)
		}
		secret = base64.RawURLEncoding.EncodeToString(b)
		if d.Hex {
			secret = hex.EncodeToString(b)
		}
	}
	exp := now.Add(d.TTL)
	err := d.Store.CreateChallenge(ctx, store.Challenge{Hash: Hash(secret), ProfileID: d.ProfileID, Created: now, Expires: exp, BoundTo: bind, Note: note}, d.MaxPending)
	if errors.Is(err, store.ErrLimit) {
		return "", time.Time{}, fmt.Errorf("%w (%d)", ErrCacheFull, d.MaxPending)
	}
	if err != nil {
		return "", time.Time{}, err
	}
	return secret, exp, nil
}

// Validate checks the challenge is pending. This is a cheap early answer;
// the authoritative, atomic consumption happens when the certificate is
// stored (Grant.OneTime), so two concurrent requests cannot both use it.
func (d *Dynamic) Validate(ctx context.Context, r Request) (Grant, error) {
	if r.Password == "" {
		return Grant{}, ErrInvalid
	}
	h := Hash(r.Password)
	c, err := d.Store.GetChallenge(ctx, d.ProfileID, h)
	if errors.Is(err, store.ErrNotFound) {
		return Grant{}, ErrInvalid
	}
	if err != nil {
		return Grant{}, fmt.Errorf("challenge: %w", err)
	}
	if !c.Used.IsZero() || (c.ReservedBy != "" && c.ReservedBy != r.TransactionID) || !d.Now().Before(c.Expires) {
		return Grant{}, ErrInvalid
	}
	if c.BoundTo != "" && !Carries(r.CSR, c.BoundTo) {
		return Grant{}, &Rejected{Reason: "the challenge was issued for another device"}
	}
	return Grant{OneTime: h}, nil
}

// Carries reports whether a CSR names v as its CN or one of its SANs.
func Carries(csr *x509.CertificateRequest, v string) bool {
	if csr == nil {
		return false
	}
	if csr.Subject.CommonName == v {
		return true
	}
	for _, d := range csr.DNSNames {
		if strings.EqualFold(d, v) {
			return true
		}
	}
	for _, e := range csr.EmailAddresses {
		if strings.EqualFold(e, v) {
			return true
		}
	}
	for _, ip := range csr.IPAddresses {
		if ip.String() == v {
			return true
		}
	}
	for _, u := range csr.URIs {
		if u.String() == v {
			return true
		}
	}
	return false
}
