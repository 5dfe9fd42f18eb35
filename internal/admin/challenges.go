package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
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
	p, err := b.s.Store.GetProfile(ctx, profile)
	if err != nil {
		return ChallengeView{}, err
	}
	if p.ChallengeMode != store.ChallengeDynamic {
		return ChallengeView{}, fmt.Errorf("%w: profile %q uses %s challenges, not dynamic ones", ErrInvalid, p.ID, p.ChallengeMode)
	}
	d := &challenge.Dynamic{ProfileID: p.ID, Store: b.s.Store, TTL: p.ChallengeTTL, MaxPending: p.ChallengeMaxPending, Now: b.s.Now, Limit: b.s.MintLimit}
	secret, exp, err := d.CreateFor(ctx, bind, b.a.Name)
	if err != nil {
		b.audit(ctx, "challenge.create", "profile:"+p.ID, "failed", map[string]string{"error": err.Error()})
		return ChallengeView{}, err
	}
	b.audit(ctx, "challenge.create", "profile:"+p.ID, "ok", map[string]string{"expires_at": exp.UTC().Format(time.RFC3339), "bound_to": bind})
	return ChallengeView{Challenge: secret, ExpiresAt: exp.UTC()}, nil
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
