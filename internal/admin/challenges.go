package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/store"
)

// ChallengeView is a new one-time challenge, shown once.
type ChallengeView struct {
	Challenge string    `json:"challenge"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (b *bound) CreateChallenge(ctx context.Context, profile, bind string) (ChallengeView, error) {
	if err := b.check(ctx, ActChallenge, profile); err != nil {
		return ChallengeView{}, err
	}
	// A CN is at most 64 characters, a DNS name 253: a longer value binds
	// to no device.
	if err := checkLen("bind", bind, maxName); err != nil {
		return ChallengeView{}, err
	}
	p, err := b.s.Store.GetProfile(ctx, profile)
	if err != nil {
		return ChallengeView{}, err
	}
	if p.ChallengeMode != store.ChallengeDynamic {
		return ChallengeView{}, fmt.Errorf("%w: profile %q uses %s challenges, not dynamic ones", ErrInvalid, p.ID, p.ChallengeMode)
	}
	d := &challenge.Dynamic{ProfileID: p.ID, Store: b.s.Store, TTL: p.ChallengeTTL, MaxPending: p.ChallengeMaxPending, Now: b.s.Now, Limit: b.s.MintLimit,
		Hex: provision.HexChallenges(p)}
	if d.Source, err = provision.ChallengeSource(p, os.Getenv); err != nil {
		return ChallengeView{}, err
	}
	secret, exp, err := d.CreateFor(ctx, bind, b.a.Name)
	if err != nil {
		b.audit(ctx, "challenge.create", "profile:"+p.ID, "failed", map[string]string{"error": err.Error()})
		return ChallengeView{}, err
	}
	b.audit(ctx, "challenge.create", "profile:"+p.ID, "ok", map[string]string{"expires_at": exp.UTC().Format(time.RFC3339), "bound_to": bind})
	return ChallengeView{Challenge: secret, ExpiresAt: exp.UTC()}, nil
}

// PendingChallengeView is a one-time challenge not yet used or expired;
// never its secret. ID (the SHA-256 of the secret, hex) names it to
// cancel it.
type PendingChallengeView struct {
	ID      string    `json:"id"`
	Profile string    `json:"profile"`
	BoundTo string    `json:"bound_to,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// By is who minted it (an operator's token or an MDM's device identity).
	By string `json:"by,omitempty"`
	// HeldBy is the transactionID of a pending request holding it.
	HeldBy string `json:"held_by,omitempty"`
}

// maxPendingListed bounds a listing of pending challenges.
const maxPendingListed = 1000

// ListChallenges lists a profile's pending one-time challenges: for
// readers, not for an MDM's token, which mints and nothing more (the list
// names the devices challenges are bound to and who minted them).
func (b *bound) ListChallenges(ctx context.Context, profile string) ([]PendingChallengeView, error) {
	if err := b.check(ctx, ActRead, profile); err != nil {
		return nil, err
	}
	list, err := b.s.Store.PendingChallenges(ctx, profile, b.s.Now(), maxPendingListed)
	if err != nil {
		return nil, err
	}
	out := []PendingChallengeView{}
	for _, c := range list {
		out = append(out, PendingChallengeView{ID: hex.EncodeToString(c.Hash), Profile: c.ProfileID, BoundTo: c.BoundTo, Created: c.Created,
			Expires: c.Expires, By: c.Note, HeldBy: c.ReservedBy})
	}
	return out, nil
}

// CancelChallenge withdraws a pending one-time challenge: an operator's
// decision, like a request's (an MDM's token may not cancel what others
// minted).
func (b *bound) CancelChallenge(ctx context.Context, profile, id string) error {
	if err := b.check(ctx, ActOperate, profile); err != nil {
		return err
	}
	hash, err := hex.DecodeString(id)
	if err != nil || len(hash) != 32 {
		return fmt.Errorf("%w: a challenge ID is 64 hex digits", ErrInvalid)
	}
	if err := b.s.Store.CancelChallenge(ctx, profile, hash); err != nil {
		return err
	}
	b.audit(ctx, "challenge.cancel", "profile:"+profile, "ok", map[string]string{"challenge": id[:16]})
	return nil
}

func randomSecret() (string, error) {
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

func (b *bound) RotateChallenge(ctx context.Context, profile, secret string, overlap time.Duration) (ChallengeView, error) {
	if err := b.check(ctx, ActManage, profile); err != nil {
		return ChallengeView{}, err
	}
	p, err := b.s.Store.GetProfile(ctx, profile)
	if err != nil {
		return ChallengeView{}, err
	}
	if p.Source == store.SourceConfig {
		return ChallengeView{}, provision.ErrManaged
	}
	if p.ChallengeMode != store.ChallengeStatic {
		return ChallengeView{}, fmt.Errorf("%w: profile %q uses %s challenges, not a static one", ErrInvalid, p.ID, p.ChallengeMode)
	}
	shown := ""
	if secret == "" {
		if secret, err = randomSecret(); err != nil {
			return ChallengeView{}, err
		}
		shown = secret
	}
	if len(secret) < challenge.MinStaticLength {
		return ChallengeView{}, fmt.Errorf("%w: a static challenge needs at least %d characters", ErrInvalid, challenge.MinStaticLength)
	}
	hash, err := challenge.HashPassword(secret)
	if err != nil {
		return ChallengeView{}, err
	}
	now := b.s.Now()
	p.ChallengePrevHash, p.ChallengePrevUntil = "", time.Time{}
	if overlap > 0 {
		p.ChallengePrevHash, p.ChallengePrevUntil = p.ChallengeHash, now.Add(overlap)
	}
	p.ChallengeHash, p.Updated = hash, now
	if err := b.s.Store.UpdateProfile(ctx, p); err != nil {
		return ChallengeView{}, err
	}
	b.audit(ctx, "profile.challenge.rotate", "profile:"+p.ID, "ok", map[string]string{"overlap": overlap.String()})
	b.reload(ctx)
	return ChallengeView{Challenge: shown, ExpiresAt: p.ChallengePrevUntil}, nil
}
