package provision

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/store"
)

// A profile row keeps its policy, challenge settings and lifecycle as JSON
// (UpsertProfile and applyChallenge write them). These functions are the
// one place they are read back, typed; an empty column is the zero value.

// StoredPolicy decodes a profile's policy.
func StoredPolicy(p store.Profile) (ca.PolicyConfig, error) {
	var pc ca.PolicyConfig
	if err := decodeColumn(p.Policy, &pc); err != nil {
		return pc, fmt.Errorf("profile %q: policy: %w", p.ID, err)
	}
	return pc, nil
}

// StoredChallenge decodes a profile's challenge settings (never a secret:
// those are stored as hashes or named by environment variable).
func StoredChallenge(p store.Profile) (config.Challenge, error) {
	var c config.Challenge
	if err := decodeColumn(p.ChallengeConfig, &c); err != nil {
		return c, fmt.Errorf("profile %q: challenge settings: %w", p.ID, err)
	}
	return c, nil
}

// StoredLifecycle decodes a profile's renewal, approval and rollover settings.
func StoredLifecycle(p store.Profile) (config.Lifecycle, error) {
	var lc config.Lifecycle
	if err := decodeColumn(p.Lifecycle, &lc); err != nil {
		return lc, fmt.Errorf("profile %q: lifecycle: %w", p.ID, err)
	}
	return lc, nil
}

func decodeColumn(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

// Phase reports, for the reload fingerprint, which profiles have passed
// their rollover time: crossing it changes what they serve.
func Phase(p store.Profile, now time.Time) string {
	lc, err := StoredLifecycle(p)
	if err != nil || lc.Rollover.NextCA == "" {
		return ""
	}
	if now.Before(lc.Rollover.At) {
		return "before"
	}
	return "after"
}
