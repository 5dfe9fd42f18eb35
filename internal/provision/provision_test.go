package provision

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

func TestEnsureDefault(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks := keys.Source{Dir: dir}
	o := Options{CAKeyType: ca.RSA2048, RAKeyType: ca.RSA2048, Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	first, err := EnsureDefault(ctx, st, ks, o)
	if err != nil {
		t.Fatal(err)
	}
	if !first.CreatedCA || len(first.GeneratedChallenge) < 32 {
		t.Fatalf("first start: %+v", first)
	}
	p1, _ := st.GetProfile(ctx, DefaultID)
	second, err := EnsureDefault(ctx, st, ks, o)
	if err != nil || second.CreatedCA || second.GeneratedChallenge != "" {
		t.Fatalf("second start: %+v %v", second, err)
	}
	p2, _ := st.GetProfile(ctx, DefaultID)
	if p1.ChallengeHash != p2.ChallengeHash || string(p1.RACertDER) != string(p2.RACertDER) {
		t.Fatal("a second start changed the profile")
	}
	v, _ := challenge.NewStatic(p2.ChallengeHash)
	if _, err := v.Validate(ctx, challenge.Request{Password: first.GeneratedChallenge}); err != nil {
		t.Fatal("the printed challenge does not validate")
	}

	// SCEPD_CHALLENGE on a later start replaces the stored challenge.
	o.Challenge = "operator-chosen"
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	p3, _ := st.GetProfile(ctx, DefaultID)
	v, _ = challenge.NewStatic(p3.ChallengeHash)
	_, errNew := v.Validate(ctx, challenge.Request{Password: "operator-chosen"})
	_, errOld := v.Validate(ctx, challenge.Request{Password: first.GeneratedChallenge})
	if errNew != nil || errOld == nil {
		t.Fatal("SCEPD_CHALLENGE did not replace the challenge")
	}
	// The same value again changes nothing.
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	if p4, _ := st.GetProfile(ctx, DefaultID); p4.ChallengeHash != p3.ChallengeHash {
		t.Fatal("an unchanged SCEPD_CHALLENGE was re-hashed")
	}

	profiles, err := Load(ctx, st, ks, Overrides{})
	if err != nil || len(profiles.Profiles) != 1 || profiles.Profiles[0].ID() != DefaultID {
		t.Fatalf("Load: %v", err)
	}
}

// TestLoadDeferMissingSecrets: a profile whose delegated challenge's
// secret is not in the environment fails Load (the server must not start
// without it), unless DeferMissingSecrets: then it loads, and its validator
// names the missing variable when a request needs it.
func TestLoadDeferMissingSecrets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks := keys.Source{Dir: dir}
	now := time.Now()
	row, err := CreateCA(ctx, st, ks, config.CA{ID: "root", Create: &config.CACreate{Subject: "CN=Root"}}, Inline(), now)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := x509.ParseCertificate(row.CertDER); err != nil || ca.PublicKeyAlgorithm(c.PublicKey) != "RSA-2048" {
		t.Fatalf("a CA created without a key type: %v %v, want RSA-2048", err, c)
	}
	for _, p := range []config.Profile{
		{ID: "hook", CA: "root", Challenge: config.Challenge{Mode: "webhook", Webhook: &config.Webhook{URL: "http://127.0.0.1:1", SecretEnv: "HOOK_KEY"}}},
		{ID: "tenant", CA: "root", Challenge: config.Challenge{Mode: "intune", Intune: &config.Intune{Tenant: "t", ClientID: "c", ClientSecretEnv: "INTUNE_SECRET"}}},
	} {
		if _, _, err := UpsertProfile(ctx, st, ks, p, store.SourceAPI, Inline(), now); err != nil {
			t.Fatal(err)
		}
	}
	unset := func(string) string { return "" }
	if _, err := Load(ctx, st, ks, Overrides{Getenv: unset}); err == nil || !strings.Contains(err.Error(), "HOOK_KEY") && !strings.Contains(err.Error(), "INTUNE_SECRET") {
		t.Fatalf("Load without the secrets: %v, want an error naming the variable", err)
	}
	serving, err := Load(ctx, st, ks, Overrides{Getenv: unset, DeferMissingSecrets: true})
	if err != nil || len(serving.Profiles) != 2 {
		t.Fatalf("Load with DeferMissingSecrets: %v", err)
	}
	want := map[string]string{"hook": "HOOK_KEY", "tenant": "INTUNE_SECRET"}
	for _, p := range serving.Profiles {
		_, err := p.Enroll().Challenge.Validate(ctx, challenge.Request{ProfileID: p.ID(), Password: "x"})
		if err == nil || !strings.Contains(err.Error(), want[p.ID()]) {
			t.Errorf("profile %s: Validate: %v, want an error naming %s", p.ID(), err, want[p.ID()])
		}
	}
}
