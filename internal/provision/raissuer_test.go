package provision

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
)

// The RA issuer of a profile in RA mode certifies its RA and issues
// nothing to devices: no profile names it as ca or rollover.next_ca, also
// not its own profile, and not once that profile has left RA mode (the
// issuer stays, in trust stores that took it for the RA's chain). A CA
// whose ID merely ends in "-ra" is no RA issuer.
func TestRAIssuerIssuesNothing(t *testing.T) {
	up := sceptest.StartScepserver(t)
	ctx := context.Background()
	st, ks := testStore(t)
	createRoots(t, st, ks, map[string]string{"corp": "ecdsa-p256", "vpn-ra": "ecdsa-p256"})
	legacy := config.Profile{ID: "legacy", Upstream: &config.Upstream{SCEP: &config.UpstreamSCEP{URL: up.URL}},
		Challenge: config.Challenge{Mode: store.ChallengeDynamic}}
	if _, _, err := UpsertProfile(ctx, st, ks, legacy, store.SourceAPI, Inline(), time.Now()); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(24 * time.Hour)
	local := func(id, caID, next string) config.Profile {
		p := config.Profile{ID: id, CA: caID, Challenge: config.Challenge{Mode: store.ChallengeDynamic}}
		if next != "" {
			p.Rollover = config.Rollover{NextCA: next, At: at}
		}
		return p
	}
	refused := func(when string, spec config.Profile, field string) {
		t.Helper()
		_, _, err := UpsertProfile(ctx, st, ks, spec, store.SourceAPI, Inline(), time.Now())
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), ": "+field+": CA") || !strings.Contains(err.Error(), `"legacy-ra" is the RA issuer of profile legacy`) {
			t.Fatalf("%s: %v, want refused naming %s and the RA issuer", when, err, field)
		}
	}
	refused("another profile's ca", local("devices", "legacy-ra", ""), "ca")
	refused("another profile's next_ca", local("devices", "corp", "legacy-ra"), "rollover.next_ca")
	refused("its own profile's ca", local("legacy", "legacy-ra", ""), "ca")
	if _, err := st.GetProfile(ctx, "devices"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused profile was stored: %v", err)
	}
	// Nor through an intermediate under it.
	if _, err := CreateCA(ctx, st, ks, config.CA{ID: "sub", Create: &config.CACreate{Subject: "CN=Sub", KeyType: "ecdsa-p256", Parent: "legacy-ra"}}, Inline(), time.Now()); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), `create.parent: CA "legacy-ra" is the RA issuer of profile legacy`) {
		t.Fatalf("an intermediate under the RA issuer: %v, want refused", err)
	}

	// legacy leaves RA mode; its RA issuer stays and is still refused.
	if _, _, err := UpsertProfile(ctx, st, ks, local("legacy", "corp", ""), store.SourceAPI, Inline(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetCA(ctx, "legacy-ra"); err != nil {
		t.Fatal(err)
	}
	refused("the RA issuer of a profile that left RA mode", local("devices", "legacy-ra", ""), "ca")

	// An operator's CA named <profile>-ra for a local profile is a CA.
	if _, _, err := UpsertProfile(ctx, st, ks, local("vpn", "corp", ""), store.SourceAPI, Inline(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := UpsertProfile(ctx, st, ks, local("devices", "vpn-ra", ""), store.SourceAPI, Inline(), time.Now()); err != nil {
		t.Fatalf("a CA named vpn-ra that is no RA issuer: %v", err)
	}
	// ... and vpn moving to RA mode does not take it over as its RA issuer
	// (devices's certificates would chain to what certifies vpn's RA).
	vpnRA := config.Profile{ID: "vpn", Upstream: &config.Upstream{SCEP: &config.UpstreamSCEP{URL: up.URL}}, Challenge: config.Challenge{Mode: store.ChallengeDynamic}}
	if _, _, err := UpsertProfile(ctx, st, ks, vpnRA, store.SourceAPI, Inline(), time.Now()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `CA "vpn-ra" exists and is not the RA issuer`) {
		t.Fatalf("RA mode for vpn with an operator's CA vpn-ra: %v, want refused", err)
	}
}
