package provision

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

// testStore is an empty SQLite store and a key source in a fresh directory.
func testStore(t *testing.T) (*sqlite.Store, keys.Source) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, keys.Source{Dir: dir}
}

// createRoots creates root CAs of the given key types, allow_ca_mode for
// the IDs in caMode, as the API does.
func createRoots(t *testing.T, st Store, ks keys.Source, keyTypes map[string]string, caMode ...string) {
	t.Helper()
	for id, kt := range keyTypes {
		c := &config.CACreate{Subject: "CN=" + id + ",O=Test", KeyType: kt}
		for _, m := range caMode {
			c.AllowCAMode = c.AllowCAMode || m == id
		}
		if _, err := CreateCA(context.Background(), st, ks, config.CA{ID: id, Create: c}, Inline(), time.Now()); err != nil {
			t.Fatalf("CA %s: %v", id, err)
		}
	}
}

// A profile in CA mode uses its CA as its RA, and from the switch on its
// next CA: a next CA that cannot decrypt (ECDSA, or RSA without
// keyEncipherment) is refused when the profile is applied, as the current
// CA is, not accepted and then failing every reload from the switch time.
func TestRolloverCAModeNextCA(t *testing.T) {
	ctx := context.Background()
	st, ks := testStore(t)
	createRoots(t, st, ks, map[string]string{"old": "rsa-2048", "good": "rsa-2048", "ec": "ecdsa-p256", "plain": "rsa-2048"}, "old", "good")
	at := time.Now().Add(24 * time.Hour)
	spec := func(next string) config.Profile {
		return config.Profile{ID: "camode", CA: "old", CAMode: true, Challenge: config.Challenge{Mode: store.ChallengeDynamic},
			Lifecycle: config.Lifecycle{Rollover: config.Rollover{NextCA: next, At: at}}}
	}
	for _, next := range []string{"ec", "plain"} {
		_, _, err := UpsertProfile(ctx, st, ks, spec(next), store.SourceAPI, Inline(), time.Now())
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "rollover.next_ca") || !strings.Contains(err.Error(), `"`+next+`"`) {
			t.Fatalf("ca_mode with next_ca %s: %v, want refused naming rollover.next_ca", next, err)
		}
		if _, err := st.GetProfile(ctx, "camode"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ca_mode with next_ca %s: the profile was stored (%v)", next, err)
		}
	}
	p, _, err := UpsertProfile(ctx, st, ks, spec("good"), store.SourceAPI, Inline(), time.Now())
	if err != nil {
		t.Fatalf("ca_mode with a next CA created with allow_ca_mode: %v", err)
	}
	good, _ := st.GetCA(ctx, "good")
	if string(p.NextRACertDER) != string(good.CertDER) {
		t.Fatal("in CA mode the next RA is not the next CA")
	}
	// An existing profile is not changed to one either.
	if _, _, err := UpsertProfile(ctx, st, ks, spec("ec"), store.SourceAPI, Inline(), time.Now()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("changing next_ca to an ECDSA CA: %v", err)
	}
	if again, _ := st.GetProfile(ctx, "camode"); string(again.NextRACertDER) != string(good.CertDER) {
		t.Fatal("a refused change altered the stored next RA")
	}
}

// Once a rollover's time has passed the profile issues under its next CA
// (its certificates renew through the profile, GetCRL answers for them).
// Taking the rollover away, or changing it or the CA, while ca: still
// names the old CA would move the profile back to it silently: refused,
// saying what to set. The documented end of a rollover (ca: the next CA,
// the block removed) keeps the next RA; before the switch the rollover
// may still be cancelled or changed.
func TestRolloverAfterSwitch(t *testing.T) {
	ctx := context.Background()
	st, ks := testStore(t)
	createRoots(t, st, ks, map[string]string{"old": "ecdsa-p256", "new": "ecdsa-p384", "third": "ecdsa-p256"})
	now := time.Now()
	at := now.Add(time.Hour)
	spec := func(caID, next string, at time.Time) config.Profile {
		s := config.Profile{ID: "roll", CA: caID, Challenge: config.Challenge{Mode: store.ChallengeDynamic}}
		if next != "" {
			s.Rollover = config.Rollover{NextCA: next, At: at}
		}
		return s
	}
	apply := func(s config.Profile, now time.Time) (store.Profile, error) {
		t.Helper()
		p, _, err := UpsertProfile(ctx, st, ks, s, store.SourceAPI, Inline(), now)
		return p, err
	}
	if _, err := apply(spec("old", "new", at), now); err != nil {
		t.Fatal(err)
	}
	// Before the switch: cancelled, and scheduled again.
	if p, err := apply(spec("old", "", time.Time{}), now); err != nil || len(p.NextRACertDER) != 0 {
		t.Fatalf("cancelling a rollover before its time: %v", err)
	}
	scheduled, err := apply(spec("old", "new", at), now)
	if err != nil {
		t.Fatal(err)
	}

	after := at.Add(time.Hour)
	if _, err := apply(spec("old", "new", at), after); err != nil {
		t.Fatalf("re-applying the profile unchanged after the switch (a restart): %v", err)
	}
	for name, s := range map[string]config.Profile{
		"rollover removed":          spec("old", "", time.Time{}),
		"switch time moved on":      spec("old", "new", after.Add(24*time.Hour)),
		"another next CA":           spec("old", "third", at),
		"another CA, same rollover": spec("third", "new", at),
	} {
		_, err := apply(s, after)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "switched to CA new at") || !strings.Contains(err.Error(), "set ca: new") {
			t.Fatalf("%s after the switch: %v, want refused saying to set ca: new", name, err)
		}
	}
	if p, _ := st.GetProfile(ctx, "roll"); p.CAID != "old" || string(p.NextRACertDER) != string(scheduled.NextRACertDER) {
		t.Fatal("a refused change altered the stored profile")
	}
	// The documented end: ca is the next CA, the block is gone, the RA
	// the next CA certified is kept.
	p, err := apply(spec("new", "", time.Time{}), after)
	if err != nil {
		t.Fatalf("ca: new without the rollover after the switch: %v", err)
	}
	if p.CAID != "new" || string(p.RACertDER) != string(scheduled.NextRACertDER) || len(p.NextRACertDER) != 0 {
		t.Fatal("finishing the rollover did not keep the next RA as the profile's RA")
	}
}
