package challenge

import (
	"context"
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
type Entity struct {
	ProfileID string
	Store     EntityStore
	Now       func() time.Time
}

var _ Validator = (*Entity)(nil)

// Validate checks the code of the entity the CSR names, in constant time.
func (e *Entity) Validate(ctx context.Context, r Request) (Grant, error) {
	if r.CSR == nil || r.CSR.Subject.CommonName == "" || r.Password == "" {
		return Grant{}, ErrInvalid
	}
	ent, err := e.Store.GetEntity(ctx, e.ProfileID, r.CSR.Subject.CommonName)
	if errors.Is(err, store.ErrNotFound) {
		Hash(r.Password) // the same work as a known user: no user enumeration by timing
		return Grant{}, ErrInvalid
	}
	if err != nil {
		return Grant{}, fmt.Errorf("challenge: entity: %w", err)
	}
	if subtle.ConstantTimeCompare(Hash(r.Password), ent.CodeHash) != 1 {
		return Grant{}, ErrInvalid
	}
	if ent.UsesLeft <= 0 || !e.Now().Before(ent.Expires) {
		return Grant{}, &Rejected{Reason: "the enrollment code is used up or expired"}
	}
	return Grant{EntityUser: ent.Username}, nil
}
