package provision

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

// selfSignedPEM is a certificate (PEM) and its key (PKCS#8 PEM).
func selfSignedPEM(t *testing.T, cn string, ku x509.KeyUsage, isCA bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: ku, IsCA: isCA, BasicConstraintsValid: isCA}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// upstream.scep.ra: checked when applied (before anything is created),
// stored with absolute paths, refused through the API.
func TestUpsertProfileRACredential(t *testing.T) {
	up := sceptest.StartScepserver(t)
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks := keys.Source{Dir: dir}
	certPEM, keyPEM := selfSignedPEM(t, "front RA", x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, false)
	os.WriteFile(filepath.Join(dir, "ra.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "ra.key"), keyPEM, 0o644)
	t.Chdir(dir)
	spec := config.Profile{ID: "legacy", Upstream: &config.Upstream{SCEP: &config.UpstreamSCEP{URL: up.URL,
		RA: &config.UpstreamRA{Cert: "ra.pem", Key: "ra.key"}}}, Challenge: config.Challenge{Mode: store.ChallengeDynamic}}

	_, _, err = UpsertProfile(ctx, st, ks, spec, store.SourceConfig, FromFiles(), time.Now())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ra.key is readable by others") {
		t.Fatalf("a key readable by others: %v", err)
	}
	if _, err := st.GetCA(ctx, "legacy-ra"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the RA issuer was created for a refused profile: %v", err)
	}
	os.Chmod(filepath.Join(dir, "ra.key"), 0o600)
	p, _, err := UpsertProfile(ctx, st, ks, spec, store.SourceConfig, FromFiles(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	su, err := StoredUpstreamOf(p)
	if err != nil || su.SCEP.RA == nil || su.SCEP.RA.Cert != filepath.Join(dir, "ra.pem") || su.SCEP.RA.Key != filepath.Join(dir, "ra.key") {
		t.Fatalf("stored RA credential %+v (%v), want absolute paths", su.SCEP.RA, err)
	}
	// Applied again (a restart) once the RA certificate has expired: the
	// profile stays (its requests fail saying why), the server starts.
	if _, _, err := UpsertProfile(ctx, st, ks, spec, store.SourceConfig, FromFiles(), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatalf("applying after the RA certificate expired: %v", err)
	}

	spec.ID = "api"
	_, _, err = UpsertProfile(ctx, st, ks, spec, store.SourceAPI, Inline(), time.Now())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "set it in the config file") {
		t.Fatalf("upstream.scep.ra through the API: %v", err)
	}
}

// Challenge mode ra stores its trust anchors with the profile, from a
// file (config) or inline PEM (API).
func TestApplyChallengeTrustedRA(t *testing.T) {
	caPEM, _ := selfSignedPEM(t, "RA CA", x509.KeyUsageCertSign, true)
	path := filepath.Join(t.TempDir(), "ra-ca.pem")
	os.WriteFile(path, caPEM, 0o644)
	for _, tc := range []struct {
		name, caFile string
		in           Inputs
		stored       string
	}{
		{"file", path, FromFiles(), path},
		{"inline", string(caPEM), Inline(), "(inline PEM)"},
	} {
		var p store.Profile
		if err := applyChallenge(context.Background(), &p, config.Challenge{Mode: store.ChallengeRA, TrustedRA: &config.TrustedRA{CAFile: tc.caFile}}, tc.in); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got config.Challenge
		if err := json.Unmarshal(p.ChallengeConfig, &got); err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(caPEM)
		if p.ChallengeMode != store.ChallengeRA || got.TrustedRA == nil || len(got.TrustedRA.CertsDER) != 1 ||
			string(got.TrustedRA.CertsDER[0]) != string(block.Bytes) || got.TrustedRA.CAFile != tc.stored {
			t.Fatalf("%s: stored mode %q, %+v", tc.name, p.ChallengeMode, got.TrustedRA)
		}
	}
	var p store.Profile
	err := applyChallenge(context.Background(), &p, config.Challenge{Mode: store.ChallengeRA, TrustedRA: &config.TrustedRA{CAFile: "not PEM"}}, Inline())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "challenge.trusted_ra.ca_file") {
		t.Fatalf("no certificate: %v", err)
	}
}
