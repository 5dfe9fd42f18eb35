package events

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// ExpiryStore is what the expiry scan needs from the database.
type ExpiryStore interface {
	ListProfiles(ctx context.Context) ([]store.Profile, error)
	DueExpiryNotices(ctx context.Context, profileID string, before time.Duration, now time.Time, limit int) ([]store.Certificate, error)
	RecordExpiryNotice(ctx context.Context, serial string, thresholds []time.Duration, at time.Time, audit *store.AuditEvent) (bool, error)
}

// Expiry raises certificate.expiring notices: once per certificate and
// threshold, also with several replicas scanning (the database decides).
//
// A certificate already inside several thresholds when first seen gets
// only the nearest one's notice. A threshold at least as long as a
// certificate's validity is skipped for it (a one-day certificate does
// not warn at issuance that it expires within a week, nor a 30-day one
// that it expires within 30 days). Revoked certificates and those
// renewed by a newer certificate get no notice.
type Expiry struct {
	Store ExpiryStore
	// Thresholds returns a profile's notice thresholds (e.g. 720h, 168h).
	Thresholds func(p store.Profile) []time.Duration
	Log        *slog.Logger
	Now        func() time.Time
}

// Scan raises every due notice and returns how many it raised.
func (x *Expiry) Scan(ctx context.Context) (int, error) {
	now := time.Now().UTC()
	if x.Now != nil {
		now = x.Now().UTC()
	}
	profiles, err := x.Store.ListProfiles(ctx)
	if err != nil {
		return 0, fmt.Errorf("expiry scan: %w", err)
	}
	raised := 0
	for _, p := range profiles {
		ths := slices.Clone(x.Thresholds(p))
		slices.Sort(ths) // nearest first: it covers the farther ones
		ths = slices.Compact(ths)
		for i, t := range ths {
			if t <= 0 {
				continue
			}
			for {
				due, err := x.Store.DueExpiryNotices(ctx, p.ID, t, now, 500)
				if err != nil {
					return raised, fmt.Errorf("expiry scan %s: %w", p.ID, err)
				}
				for _, c := range due {
					var audit *store.AuditEvent
					if validity(c) > t {
						audit = &store.AuditEvent{Time: now, Actor: "scepd", Action: "certificate.expiring", Object: "certificate:" + c.Serial, Outcome: "notice",
							Details: map[string]string{"profile": p.ID, "subject": c.Subject, "not_after": c.NotAfter.UTC().Format(time.RFC3339),
								"threshold": t.String(), "days_left": strconv.Itoa(int(c.NotAfter.Sub(now).Hours() / 24))}}
					}
					isNew, err := x.Store.RecordExpiryNotice(ctx, c.Serial, ths[i:], now, audit)
					if err != nil {
						return raised, fmt.Errorf("expiry scan %s: %w", p.ID, err)
					}
					if isNew && audit != nil {
						raised++
					}
				}
				if len(due) < 500 {
					break
				}
			}
		}
	}
	if raised > 0 && x.Log != nil {
		x.Log.LogAttrs(ctx, slog.LevelInfo, "expiry notices raised", slog.Int("count", raised))
	}
	return raised, nil
}

// validity is a certificate's lifetime as its policy set it: from
// issuance to notAfter. notBefore is earlier by the policy's backdate, so
// notAfter - notBefore would exceed a 720h threshold for a 720h policy
// and warn seconds after issuance.
func validity(c store.Certificate) time.Duration {
	issued := c.Created
	if issued.IsZero() || issued.Before(c.NotBefore) || issued.After(c.NotAfter) {
		issued = c.NotBefore
	}
	return c.NotAfter.Sub(issued)
}

// Run scans at start and then every interval until ctx ends.
func (x *Expiry) Run(ctx context.Context, interval time.Duration) {
	for {
		if _, err := x.Scan(ctx); err != nil && ctx.Err() == nil && x.Log != nil {
			x.Log.LogAttrs(ctx, slog.LevelError, "expiry scan failed", slog.String("error", err.Error()))
		}
		if !sleep(ctx, interval) {
			return
		}
	}
}
