package admin

import (
	"context"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/provision"
)

// TestRotationSurvivesEnvRestart: the default profile's challenge rotated
// through the API (e.g. because SCEPD_CHALLENGE's leaked) stays in force,
// with its overlap, when a replica restarts with the same SCEPD_CHALLENGE;
// a changed SCEPD_CHALLENGE replaces it.
func TestRotationSurvivesEnvRestart(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	start := func(env string) {
		t.Helper()
		if _, err := provision.EnsureDefault(ctx, s.Store, s.Keys, provision.Options{CAKeyType: ca.ECDSAP256, RAKeyType: ca.RSA2048,
			Challenge: env, Now: time.Now, Log: s.Log}); err != nil {
			t.Fatal(err)
		}
	}
	accepts := func(secret string) bool { // as the server checks it, overlap included
		t.Helper()
		p, err := s.Store.GetProfile(ctx, provision.DefaultID)
		if err != nil {
			t.Fatal(err)
		}
		v, err := challenge.NewStatic(p.ChallengeHash)
		if err != nil {
			t.Fatal(err)
		}
		if p.ChallengePrevHash != "" {
			if v, err = v.WithPrevious(p.ChallengePrevHash, p.ChallengePrevUntil, time.Now); err != nil {
				t.Fatal(err)
			}
		}
		_, err = v.Validate(ctx, challenge.Request{Password: secret})
		return err == nil
	}

	start("sweep-1-secret")
	if _, err := s.As(LocalAdmin).RotateChallenge(ctx, provision.DefaultID, "mdm-rotated-2025", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	start("sweep-1-secret")
	if !accepts("mdm-rotated-2025") || !accepts("sweep-1-secret") {
		t.Fatal("after a restart with the same SCEPD_CHALLENGE, the rotated challenge or its overlap is gone")
	}
	// Without the overlap the environment's old value is refused.
	if _, err := s.As(LocalAdmin).RotateChallenge(ctx, provision.DefaultID, "mdm-rotated-2026", 0); err != nil {
		t.Fatal(err)
	}
	start("sweep-1-secret")
	if !accepts("mdm-rotated-2026") || accepts("sweep-1-secret") {
		t.Fatal("a restart with the retired SCEPD_CHALLENGE put it back in force")
	}
	start("sweep-2-secret")
	if !accepts("sweep-2-secret") || accepts("mdm-rotated-2026") {
		t.Fatal("a changed SCEPD_CHALLENGE was not applied")
	}
}
