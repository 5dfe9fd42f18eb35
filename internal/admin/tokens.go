package admin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// TokenRequest asks for a token.
type TokenRequest struct {
	Name     string   `json:"name"`
	Role     Role     `json:"role"`
	Profiles []string `json:"profiles,omitempty"`
}

// TokenView describes a token; never its secret.
type TokenView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Profiles []string  `json:"profiles,omitempty"`
	Created  time.Time `json:"created"`
	Revoked  time.Time `json:"revoked,omitzero"`
}

// NewTokenView is a created token with its secret, shown once.
type NewTokenView struct {
	TokenView
	Token string `json:"token"`
}

func tokenView(t store.Token) TokenView {
	return TokenView{ID: t.ID, Name: t.Name, Role: t.Role, Profiles: t.Profiles, Created: t.Created, Revoked: t.Revoked}
}

func (b *bound) CreateToken(ctx context.Context, req TokenRequest) (NewTokenView, error) {
	if err := b.checkGlobal(ctx, ActTokens); err != nil {
		return NewTokenView{}, err
	}
	if !ValidRole(req.Role) {
		return NewTokenView{}, fmt.Errorf("%w: role %q: want admin, operator, mdm or auditor", ErrInvalid, req.Role)
	}
	if err := checkLen("the name", req.Name, maxName); err != nil {
		return NewTokenView{}, err
	}
	for _, p := range req.Profiles {
		if _, err := b.s.Store.GetProfile(ctx, p); err != nil {
			return NewTokenView{}, fmt.Errorf("%w: profile %q: %v", ErrInvalid, p, err)
		}
	}
	secret, t, err := NewToken(req.Name, req.Role, req.Profiles)
	if err != nil {
		return NewTokenView{}, err
	}
	t.Created = b.s.Now()
	if err := b.s.Store.CreateToken(ctx, t); err != nil {
		return NewTokenView{}, err
	}
	b.audit(ctx, "token.create", "token:"+t.ID, "ok", map[string]string{"role": t.Role, "name": t.Name, "profiles": strings.Join(t.Profiles, ",")})
	return NewTokenView{TokenView: tokenView(t), Token: secret}, nil
}

func (b *bound) ListTokens(ctx context.Context) ([]TokenView, error) {
	if err := b.checkGlobal(ctx, ActReadTokens); err != nil {
		return nil, err
	}
	rows, err := b.s.Store.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := []TokenView{}
	for _, t := range rows {
		out = append(out, tokenView(t))
	}
	return out, nil
}

func (b *bound) RevokeToken(ctx context.Context, id string) error {
	if err := b.checkGlobal(ctx, ActTokens); err != nil {
		return err
	}
	if err := b.s.Store.RevokeToken(ctx, id, b.s.Now()); err != nil {
		return err
	}
	b.audit(ctx, "token.revoke", "token:"+id, "ok", nil)
	return nil
}
