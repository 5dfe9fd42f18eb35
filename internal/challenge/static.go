package challenge

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/scepd/scepd/internal/slot"
)

// MinStaticLength is the shortest static challenge accepted.
const MinStaticLength = 8

// argon2id parameters for new hashes: the OWASP Password Storage Cheat
// Sheet lists m=19 MiB/t=2 and m=7 MiB/t=5 as equally strong; the second
// costs the same CPU and a third of the memory, which matters for a server
// that keeps its whole footprint near 40 MB. Stored hashes carry their own
// parameters, so hashes made with others still verify.
const (
	argonTime    = 5
	argonMemory  = 7 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// HashPassword returns a PHC-format argon2id hash of a static challenge.
func HashPassword(password string) (string, error) {
	if len(password) < MinStaticLength {
		return "", fmt.Errorf("challenge: a static challenge needs at least %d characters", MinStaticLength)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("challenge: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

type argonHash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func parseArgonHash(s string) (argonHash, error) {
	var h argonHash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return h, errors.New("challenge: not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return h, errors.New("challenge: unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.memory, &h.time, &h.threads); err != nil {
		return h, fmt.Errorf("challenge: argon2 parameters: %w", err)
	}
	if h.memory == 0 || h.memory > 1<<22 || h.time == 0 || h.time > 16 || h.threads == 0 {
		return h, errors.New("challenge: argon2 parameters out of range")
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return h, fmt.Errorf("challenge: argon2 salt: %w", err)
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) == 0 {
		return h, errors.New("challenge: argon2 key malformed")
	}
	return h, nil
}

// verify computes password's key with h's salt and parameters, one at a
// time among the callers sharing kdf, and compares it in constant time. A
// caller that gives up while waiting for its turn is refused. It waits
// for its turn with the server's processing slot given back (see turn):
// queued behind other checks of this profile, it would otherwise hold a
// slot other profiles' requests could use; the KDF itself, CPU work, runs
// in one.
func (h argonHash) verify(ctx context.Context, password string, kdf chan struct{}) bool {
	if !turn(ctx, kdf) {
		return false
	}
	defer func() { <-kdf }()
	return h.verifyLocked(password)
}

// turn takes the caller's turn at kdf (give it back with <-kdf), waiting
// for it with the processing slot given back; false when ctx ends first.
func turn(ctx context.Context, kdf chan struct{}) bool {
	select {
	case kdf <- struct{}{}:
		return true
	default:
	}
	resume := slot.Yield(ctx)
	defer resume()
	select {
	case kdf <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// verifyLocked is verify for a caller holding its kdf slot.
func (h argonHash) verifyLocked(password string) bool {
	key := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// Static checks a shared secret against its stored argon2id hash.
//
// argon2id costs tens of milliseconds and 7 MiB per check, more than the
// rest of an enrollment together. After a password has verified once,
// Static remembers an HMAC of it under a per-process random key, so the
// right password is then checked in microseconds; a wrong one always pays
// the full KDF, which is what slows guessing. Only the HMAC is kept in
// memory, never the password.
type Static struct {
	hash argonHash
	// previous is the secret a rotation replaced, accepted until prevUntil.
	previous  *Static
	prevUntil time.Time
	now       func() time.Time

	mu       sync.RWMutex
	macKey   []byte
	verified []byte // HMAC-SHA256(macKey, password) of the password that verified

	// kdf admits one argon2id computation at a time: each takes 7 MiB,
	// so a burst of wrong (or first) passwords must not multiply that.
	kdf chan struct{}
}

var _ Validator = (*Static)(nil)

// NewStatic builds a validator from a PHC hash made by HashPassword.
func NewStatic(encoded string) (*Static, error) {
	h, err := parseArgonHash(encoded)
	if err != nil {
		return nil, err
	}
	macKey := make([]byte, 32)
	if _, err := rand.Read(macKey); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	return &Static{hash: h, macKey: macKey, kdf: make(chan struct{}, 1)}, nil
}

// WithPrevious also accepts the challenge a rotation replaced, until until.
func (s *Static) WithPrevious(prevHash string, until time.Time, now func() time.Time) (*Static, error) {
	prev, err := NewStatic(prevHash)
	if err != nil {
		return nil, err
	}
	s.previous, s.prevUntil, s.now = prev, until, now
	return s, nil
}

// Validate checks r.Password in constant time.
func (s *Static) Validate(ctx context.Context, r Request) (Grant, error) {
	g, err := s.validate(ctx, r)
	if err != nil && s.previous != nil && s.now().Before(s.prevUntil) {
		return s.previous.validate(ctx, r)
	}
	return g, err
}

func (s *Static) validate(ctx context.Context, r Request) (Grant, error) {
	mac := hmac.New(sha256.New, s.macKey)
	mac.Write([]byte(r.Password))
	sum := mac.Sum(nil)
	s.mu.RLock()
	known := s.verified
	s.mu.RUnlock()
	if known != nil && hmac.Equal(sum, known) {
		return Grant{}, nil
	}
	if !turn(ctx, s.kdf) {
		return Grant{}, ctx.Err()
	}
	// Another request may have verified the same password while this one waited.
	s.mu.RLock()
	known = s.verified
	s.mu.RUnlock()
	if known != nil && hmac.Equal(sum, known) {
		<-s.kdf
		return Grant{}, nil
	}
	ok := s.hash.verifyLocked(r.Password)
	<-s.kdf
	if !ok {
		return Grant{}, ErrInvalid
	}
	s.mu.Lock()
	s.verified = sum
	s.mu.Unlock()
	return Grant{}, nil
}
