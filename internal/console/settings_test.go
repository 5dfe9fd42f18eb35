package console

import (
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/admin"
	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
)

// TestProfileSettings: the profile page writes out every default (an
// empty policy is not "{}") and durations as operators write them.
func TestProfileSettings(t *testing.T) {
	flat := func(p admin.ProfileView) map[string]setting {
		m := map[string]setting{}
		for _, g := range profileSettings(p) {
			for _, r := range g.Rows {
				m[r.Name] = r
			}
		}
		return m
	}
	def := flat(admin.ProfileView{ChallengeMode: "static"})
	for name, want := range map[string]string{"Validity": "8760h", "Extended key usage": "clientAuth", "Approval": "auto", "Expiry notices": "720h and 168h", "RSA keys": "2048"} {
		if r := def[name]; !r.Default || !strings.Contains(r.Value, want) {
			t.Errorf("default %s = %+v, want %q marked default", name, r, want)
		}
	}
	set := flat(admin.ProfileView{ChallengeMode: "dynamic", ChallengeTTL: admin.ShortDuration(time.Hour),
		Policy:    ca.PolicyConfig{Validity: ca.Duration(24 * time.Hour), ExtKeyUsage: []string{"serverAuth"}},
		Lifecycle: config.Lifecycle{Approval: "manual", PendingTTL: ca.Duration(90 * time.Minute), ExpiryNotices: []ca.Duration{ca.Duration(48 * time.Hour)}}})
	for name, want := range map[string]string{"Validity": "24h", "Extended key usage": "serverAuth", "Approval": "manual",
		"Pending requests expire after": "1h30m", "Expiry notices": "48h before", "One-time challenges live": "1h"} {
		if r := set[name]; r.Default || r.Value != want && !strings.HasPrefix(r.Value, want) {
			t.Errorf("%s = %+v, want %q as set", name, r, want)
		}
	}
	for _, r := range set {
		if strings.Contains(r.Value, "0m0s") || strings.Contains(r.Value, "h0m") {
			t.Errorf("%s = %q: a duration as Go prints it", r.Name, r.Value)
		}
	}
}
