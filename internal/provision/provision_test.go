package provision

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
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
}

// TestPasswordFilePrivate: a static challenge's password_file other users
// may read is refused; one its owner's group may read is not (a systemd
// credential).
func TestPasswordFilePrivate(t *testing.T) {
	ctx := context.Background()
	st, ks := testStore(t)
	dir := ks.Dir
	if _, err := EnsureDefault(ctx, st, ks, Options{CAKeyType: ca.ECDSAP256, RAKeyType: ca.RSA2048, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "challenge")
	if err := os.WriteFile(path, []byte("a static challenge\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := config.Profile{ID: "static", CA: DefaultID, Challenge: config.Challenge{Mode: store.ChallengeStatic, PasswordFile: path}}
	os.Chmod(path, 0o644)
	if _, _, err := UpsertProfile(ctx, st, ks, spec, store.SourceConfig, FromFiles(), time.Now()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "open to other users") {
		t.Fatalf("a password_file others may read: %v", err)
	}
	os.Chmod(path, 0o640)
	if _, _, err := UpsertProfile(ctx, st, ks, spec, store.SourceConfig, FromFiles(), time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestLoadCARefusesAnotherKey: a CA whose key reference names another
// key (a row edited, a file swapped) fails to load, naming the CA, instead
// of signing what nobody can verify.
func TestLoadCARefusesAnotherKey(t *testing.T) {
	ctx := context.Background()
	st, ks := testStore(t)
	var rows []store.CA
	for _, id := range []string{"one", "two"} {
		row, err := CreateCA(ctx, st, ks, config.CA{ID: id, Create: &config.CACreate{Subject: "CN=" + id, KeyType: "ecdsa-p256"}}, Inline(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if _, err := LoadCA(rows[0], ks); err != nil {
		t.Fatal(err)
	}
	swapped := rows[0]
	swapped.KeyRef = rows[1].KeyRef
	if _, err := LoadCA(swapped, ks); err == nil || !strings.Contains(err.Error(), `CA "one"`) || !strings.Contains(err.Error(), "not the CA certificate's") {
		t.Fatalf("LoadCA with another CA's key: %v", err)
	}
}

// TestImportKeyFilePrivate: a CA key a config file imports is read as
// every secret file is: refused while other users may read it.
func TestImportKeyFilePrivate(t *testing.T) {
	ctx := context.Background()
	st, ks := testStore(t)
	key, _ := ca.GenerateKey(ca.ECDSAP256)
	root, err := ca.NewRoot(key, pkix.Name{CommonName: "Imported"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(ks.Dir, "ca.pem"), filepath.Join(ks.Dir, "ca.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Cert.Raw}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o644)
	spec := config.CA{ID: "imported", Import: &config.CAImport{Cert: certFile, Key: keyFile}}
	if _, err := CreateCA(ctx, st, ks, spec, FromFiles(), time.Now()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "open to other users") {
		t.Fatalf("a CA key others may read: %v, want refused", err)
	}
	os.Chmod(keyFile, 0o600)
	if _, err := CreateCA(ctx, st, ks, spec, FromFiles(), time.Now()); err != nil {
		t.Fatal(err)
	}
}
