package admin

import (
	"context"

	"github.com/scepd/scepd/internal/store"
)

func (b *bound) ListAudit(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	if err := b.check(ctx, ActRead, ""); err != nil {
		return nil, err
	}
	if !b.a.ReadsAudit() {
		return nil, ErrForbidden
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	// A token limited to profiles reads their events only (subjects and
	// client addresses of other profiles are not its business); events of
	// no profile (CAs, tokens, sign-ins) are for unscoped tokens.
	return b.s.Store.ListAudit(ctx, limit, b.a.Profiles...)
}
