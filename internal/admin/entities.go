package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/store"
)

// EntityRequest registers an end entity.
type EntityRequest struct {
	Username string `json:"username"`
	Code     string `json:"code,omitempty"`
	Uses     int    `json:"uses,omitempty"`
	TTL      string `json:"ttl,omitempty"` // Go duration, default 168h
}

// EntityView describes an end entity; the code only when just created.
type EntityView struct {
	Profile  string    `json:"profile"`
	Username string    `json:"username"`
	Code     string    `json:"code,omitempty"`
	UsesLeft int       `json:"uses_left"`
	Expires  time.Time `json:"expires"`
}

func (b *bound) PutEntity(ctx context.Context, profile string, req EntityRequest) (EntityView, error) {
	if err := b.check(ctx, ActManage, profile); err != nil {
		return EntityView{}, err
	}
	p, err := b.s.Store.GetProfile(ctx, profile)
	if err != nil {
		return EntityView{}, err
	}
	if p.ChallengeMode != store.ChallengeEntity {
		return EntityView{}, fmt.Errorf("%w: profile %q does not use registered end entities", ErrInvalid, profile)
	}
	if req.Username == "" || len(req.Username) > 64 {
		return EntityView{}, fmt.Errorf("%w: a username of 1 to 64 characters is required", ErrInvalid)
	}
	code := req.Code
	if code == "" {
		if code, err = randomSecret(); err != nil {
			return EntityView{}, err
		}
	}
	if len(code) < challenge.MinStaticLength {
		return EntityView{}, fmt.Errorf("%w: an enrollment code needs at least %d characters", ErrInvalid, challenge.MinStaticLength)
	}
	ttl := 7 * 24 * time.Hour
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return EntityView{}, fmt.Errorf("%w: ttl %q", ErrInvalid, req.TTL)
		}
	}
	uses := req.Uses
	if uses <= 0 {
		uses = 1
	}
	now := b.s.Now()
	hash, err := challenge.HashEntityCode(code)
	if err != nil {
		return EntityView{}, err
	}
	e := store.Entity{ProfileID: profile, Username: req.Username, CodeHash: hash, UsesLeft: uses, Expires: now.Add(ttl), Created: now}
	if err := b.s.Store.PutEntity(ctx, e); err != nil {
		return EntityView{}, err
	}
	b.audit(ctx, "entity.register", "entity:"+profile+"/"+req.Username, "ok", map[string]string{"profile": profile, "uses": fmt.Sprint(uses), "expires_at": e.Expires.UTC().Format(time.RFC3339)})
	v := EntityView{Profile: profile, Username: req.Username, UsesLeft: uses, Expires: e.Expires}
	if req.Code == "" {
		v.Code = code // generated: shown once
	}
	return v, nil
}

func (b *bound) ListEntities(ctx context.Context, profile string) ([]EntityView, error) {
	if err := b.check(ctx, ActRead, profile); err != nil {
		return nil, err
	}
	list, err := b.s.Store.ListEntities(ctx, profile)
	if err != nil {
		return nil, err
	}
	out := []EntityView{}
	for _, e := range list {
		out = append(out, EntityView{Profile: e.ProfileID, Username: e.Username, UsesLeft: e.UsesLeft, Expires: e.Expires})
	}
	return out, nil
}
