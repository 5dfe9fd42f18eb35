package challenge

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// EntityStore is the persistence end-entity registration needs.
type EntityStore interface {
	GetEntity(ctx context.Context, profileID, username string) (store.Entity, error)
}

// Entity authorises pre-registered end entities: the CSR's CN is the
// username and its challengePassword the enrollment code given at
// registration, usable a set number of times until it expires. The use is
// spent with the certificate (Grant.EntityUser).
//
// Codes are stored as argon2id hashes (HashEntityCode): an operator may
// choose one, and a chosen code is a password. Codes registered by
// versions before that are SHA-256 digests and still verify.
type Entity struct {
	profileID string
	store     EntityStore
	now       func() time.Time
	// kdf admits one argon2id computation at a time, as Static's does.
	kdf chan struct{}
	// decoy is checked for users not registered, so that the answer takes
	// as long as for one who is: no user enumeration by timing.
	decoy argonHash
}

var _ Validator = (*Entity)(nil)

// NewEntity returns the validator of a profile in entity mode.
func NewEntity(profileID string, st EntityStore, now func() time.Time) (*Entity, error) {
	decoy := argonHash{memory: argonMemory, time: argonTime, threads: argonThreads, salt: make([]byte, argonSaltLen), key: make([]byte, argonKeyLen)}
	if _, err := rand.Read(decoy.salt); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	if _, err := rand.Read(decoy.key); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	return &Entity{profileID: profileID, store: st, now: now, kdf: make(chan struct{}, 1), decoy: decoy}, nil
}

// HashEntityCode is how an end entity's enrollment code is stored: a
// PHC-format argon2id hash, as static challenges are.
func HashEntityCode(code string) ([]byte, error) {
	h, err := HashPassword(code)
	if err != nil {
		return nil, err
	}
	return []byte(h), nil
}

// Validate checks the code of the entity the CSR names, in constant time.
func (e *Entity) Validate(ctx context.Context, r Request) (Grant, error) {
	if r.CSR == nil || r.CSR.Subject.CommonName == "" || r.Password == "" {
		return Grant{}, ErrInvalid
	}
	ent, err := e.store.GetEntity(ctx, e.profileID, r.CSR.Subject.CommonName)
	if errors.Is(err, store.ErrNotFound) {
		e.decoy.verify(ctx, r.Password, e.kdf)
		return Grant{}, ErrInvalid
	}
	if err != nil {
		return Grant{}, fmt.Errorf("challenge: entity: %w", err)
	}
	if !e.codeMatches(ctx, r.Password, ent.CodeHash) {
		if err := ctx.Err(); err != nil {
			return Grant{}, err
		}
		return Grant{}, ErrInvalid
	}
	if ent.UsesLeft <= 0 || !e.now().Before(ent.Expires) {
		return Grant{}, &Rejected{Reason: "the enrollment code is used up or expired"}
	}
	return Grant{EntityUser: ent.Username}, nil
}

// codeMatches checks code against a stored argon2id hash, or the SHA-256
// digest earlier versions stored.
func (e *Entity) codeMatches(ctx context.Context, code string, stored []byte) bool {
	if !bytes.HasPrefix(stored, []byte("$argon2id$")) {
		return subtle.ConstantTimeCompare(Hash(code), stored) == 1
	}
	h, err := parseArgonHash(string(stored))
	if err != nil {
		return false
	}
	return h.verify(ctx, code, e.kdf)
}
