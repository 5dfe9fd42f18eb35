package challenge_test

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

// Hex challenges (RA mode) hold only characters a PrintableString may.
func TestDynamicHexChallenges(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	if err := st.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "file:x", Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateProfile(ctx, store.Profile{ID: "p", CAID: "ca", RACertDER: []byte{1}, RAKeyRef: "file:y", ChallengeMode: store.ChallengeDynamic, Created: now}); err != nil {
		t.Fatal(err)
	}
	d := &challenge.Dynamic{ProfileID: "p", Store: st, TTL: time.Hour, MaxPending: 100, Now: time.Now, Hex: true}
	hex := regexp.MustCompile(`^[0-9a-f]{48}$`)
	for range 20 {
		secret, _, err := d.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !hex.MatchString(secret) {
			t.Fatalf("challenge %q is not 48 hex digits", secret)
		}
		if _, err := d.Validate(ctx, challenge.Request{ProfileID: "p", Password: secret}); err != nil {
			t.Fatalf("a minted hex challenge does not validate: %v", err)
		}
	}
}
