package server_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	chal "github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
)

// TestLoadDeferMissingSecrets: a profile whose delegated challenge's
// secret is not in the environment fails Load (the server must not start
// without it), unless DeferMissingSecrets: then it loads, and its validator
// names the missing variable when a request needs it.
func TestLoadDeferMissingSecrets(t *testing.T) {
	ctx := context.Background()
	st, ks := openStore(t)
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

// TestGetCACertShapes: GetCACert carries the RA and the CA chain whatever
// include_ca_cert says (clients authenticate the CA there), except that a
// profile in CA mode without include_ca_cert answers with its CA alone,
// one DER certificate (Apple's client reads a PKCS#7 as naming RAs besides
// the CA).
func TestGetCACertShapes(t *testing.T) {
	ctx := context.Background()
	st, ks := openStore(t)
	now := time.Now()
	for _, c := range []config.CA{
		{ID: "root", Create: &config.CACreate{Subject: "CN=Root", KeyType: "ecdsa-p256"}},
		{ID: "sub", Create: &config.CACreate{Parent: "root", Subject: "CN=Sub", AllowCAMode: true}},
	} {
		if _, err := provision.CreateCA(ctx, st, ks, c, provision.Inline(), now); err != nil {
			t.Fatal(err)
		}
	}
	no := false
	for _, p := range []config.Profile{
		{ID: "ra-with", CA: "sub", Challenge: config.Challenge{Mode: "dynamic"}},
		{ID: "ra-without", CA: "sub", IncludeCACert: &no, Challenge: config.Challenge{Mode: "dynamic"}},
		{ID: "ca-with", CA: "sub", CAMode: true, Challenge: config.Challenge{Mode: "dynamic"}},
		{ID: "ca-without", CA: "sub", CAMode: true, IncludeCACert: &no, Challenge: config.Challenge{Mode: "dynamic"}},
	} {
		if _, _, err := provision.UpsertProfile(ctx, st, ks, p, store.SourceAPI, provision.Inline(), now); err != nil {
			t.Fatal(err)
		}
	}
	loaded, err := server.Load(ctx, st, ks, server.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Profiles: loaded.Profiles, CAs: loaded.CAs})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for _, tt := range []struct {
		profile, contentType string
		subjects             []string
	}{
		{"ra-with", "application/x-x509-ca-ra-cert", []string{"RA", "CN=Sub", "CN=Root"}},
		{"ra-without", "application/x-x509-ca-ra-cert", []string{"RA", "CN=Sub", "CN=Root"}},
		{"ca-with", "application/x-x509-ca-ra-cert", []string{"CN=Sub", "CN=Root"}},
		{"ca-without", "application/x-x509-ca-cert", []string{"CN=Sub"}},
	} {
		resp, err := http.Get(hs.URL + "/scep/" + tt.profile + "/pkiclient.exe?operation=GetCACert")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != tt.contentType {
			t.Errorf("%s: Content-Type %q, want %q", tt.profile, ct, tt.contentType)
			continue
		}
		var certs []*x509.Certificate
		if tt.contentType == "application/x-x509-ca-cert" {
			c, err := x509.ParseCertificate(body)
			if err != nil {
				t.Fatalf("%s: %v", tt.profile, err)
			}
			certs = []*x509.Certificate{c}
		} else {
			ders, err := scep.DegenerateCertificates(body)
			if err != nil {
				t.Fatalf("%s: %v", tt.profile, err)
			}
			for _, der := range ders {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatalf("%s: %v", tt.profile, err)
				}
				certs = append(certs, c)
			}
		}
		var got []string
		for _, c := range certs {
			s := c.Subject.String()
			if strings.Contains(s, "RA") && !c.IsCA {
				s = "RA"
			}
			got = append(got, s)
		}
		if strings.Join(got, "|") != strings.Join(tt.subjects, "|") {
			t.Errorf("%s: GetCACert %v, want %v", tt.profile, got, tt.subjects)
		}
	}
}
