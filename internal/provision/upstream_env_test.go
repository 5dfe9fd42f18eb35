package provision

import (
	"testing"

	"github.com/scepd/scepd/internal/store"
)

// TestProfileEnv: a profile of the config file reads any variable; one
// written through the API (also one stored before the API refused other
// names) or by any other source reads only SCEPD_SECRET_ variables, so a
// profile row naming the key passphrase sends nothing to its URLs.
func TestProfileEnv(t *testing.T) {
	env := map[string]string{"SCEPD_KEY_PASSPHRASE": "passphrase", "SCEPD_SECRET_HOOK": "hook"}
	getenv := func(k string) string { return env[k] }
	for _, tt := range []struct {
		source, name, want string
	}{
		{store.SourceConfig, "SCEPD_KEY_PASSPHRASE", "passphrase"},
		{store.SourceConfig, "SCEPD_SECRET_HOOK", "hook"},
		{store.SourceAPI, "SCEPD_KEY_PASSPHRASE", ""},
		{store.SourceAPI, "SCEPD_SECRET_HOOK", "hook"},
		{store.SourceDefault, "SCEPD_KEY_PASSPHRASE", ""},
		{"", "SCEPD_KEY_PASSPHRASE", ""},
	} {
		if got := ProfileEnv(store.Profile{Source: tt.source}, getenv)(tt.name); got != tt.want {
			t.Errorf("a profile of source %q reads %s as %q, want %q", tt.source, tt.name, got, tt.want)
		}
	}
}
