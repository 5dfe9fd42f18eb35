package server_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	chal "github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

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
	row, err := provision.CreateCA(ctx, st, ks, config.CA{ID: "root", Create: &config.CACreate{Subject: "CN=Root"}}, provision.Inline(), now)
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
		if _, _, err := provision.UpsertProfile(ctx, st, ks, p, store.SourceAPI, provision.Inline(), now); err != nil {
			t.Fatal(err)
		}
	}
	unset := func(string) string { return "" }
	if _, err := server.Load(ctx, st, ks, server.Overrides{Getenv: unset}); err == nil || !strings.Contains(err.Error(), "HOOK_KEY") && !strings.Contains(err.Error(), "INTUNE_SECRET") {
		t.Fatalf("Load without the secrets: %v, want an error naming the variable", err)
	}
	serving, err := server.Load(ctx, st, ks, server.Overrides{Getenv: unset, DeferMissingSecrets: true})
	if err != nil || len(serving.Profiles) != 2 {
		t.Fatalf("Load with DeferMissingSecrets: %v", err)
	}
	want := map[string]string{"hook": "HOOK_KEY", "tenant": "INTUNE_SECRET"}
	for _, p := range serving.Profiles {
		_, err := p.Enroll().Challenge.Validate(ctx, chal.Request{ProfileID: p.ID(), Password: "x"})
		if err == nil || !strings.Contains(err.Error(), want[p.ID()]) {
			t.Errorf("profile %s: Validate: %v, want an error naming %s", p.ID(), err, want[p.ID()])
		}
	}
}
