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

// rotateAsAPI rotates the default profile's static challenge as
// POST /api/v1/profiles/default/challenge/rotate does (admin.RotateChallenge).
func rotateAsAPI(t *testing.T, st Store, secret string, overlap time.Duration) store.Profile {
	t.Helper()
	ctx := context.Background()
	p, err := st.GetProfile(ctx, DefaultID)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := challenge.HashPassword(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p.ChallengePrevHash, p.ChallengePrevUntil = "", time.Time{}
	if overlap > 0 {
		p.ChallengePrevHash, p.ChallengePrevUntil = p.ChallengeHash, now.Add(overlap)
	}
	p.ChallengeHash, p.Updated = hash, now
	if err := st.UpdateProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	p, _ = st.GetProfile(ctx, DefaultID)
	return p
}

// current says whether secret is the profile's current static challenge
// (the overlap's previous one aside).
func current(t *testing.T, p store.Profile, secret string) bool {
	t.Helper()
	return p.ChallengeHash != "" && matchesHash(context.Background(), p.ChallengeHash, secret)
}

// TestEnsureDefaultKeepsRotatedChallenge: SCEPD_CHALLENGE is applied when
// the default profile is created and when its value changes, not whenever
// it differs from the profile's: after a rotation through the API, a
// restart with the same environment keeps the rotated challenge and its
// overlap (and says so in the log, without a secret); a new environment
// value replaces it.
func TestEnsureDefaultKeepsRotatedChallenge(t *testing.T) {
	ctx := context.Background()
	st, ks := testStore(t)
	var logged strings.Builder
	o := Options{CAKeyType: ca.ECDSAP256, RAKeyType: ca.RSA2048, Now: time.Now, Challenge: "env-secret-x",
		Log: slog.New(slog.NewTextHandler(&logged, nil))}
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	created, _ := st.GetProfile(ctx, DefaultID)
	if !current(t, created, "env-secret-x") {
		t.Fatal("created with SCEPD_CHALLENGE: it is not the profile's challenge")
	}
	if !matchesHash(ctx, created.ChallengeEnvHash, "env-secret-x") {
		t.Errorf("created with SCEPD_CHALLENGE: the environment's hash is not recorded (%q)", created.ChallengeEnvHash)
	}

	rotated := rotateAsAPI(t, st, "rotated-secret-y", 24*time.Hour)
	logged.Reset()
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	after, _ := st.GetProfile(ctx, DefaultID)
	if after.ChallengeHash != rotated.ChallengeHash || !current(t, after, "rotated-secret-y") || current(t, after, "env-secret-x") {
		t.Fatal("a restart with the unchanged SCEPD_CHALLENGE put it back in force over the rotated challenge")
	}
	if after.ChallengePrevHash != rotated.ChallengePrevHash || after.ChallengePrevHash == "" || !after.ChallengePrevUntil.Equal(rotated.ChallengePrevUntil) {
		t.Fatalf("a restart dropped the rotation's overlap: prev %q until %v, want %q until %v",
			after.ChallengePrevHash, after.ChallengePrevUntil, rotated.ChallengePrevHash, rotated.ChallengePrevUntil)
	}
	if !after.Updated.Equal(rotated.Updated) {
		t.Error("a restart with the unchanged SCEPD_CHALLENGE wrote the profile")
	}
	if n := strings.Count(logged.String(), "changed since SCEPD_CHALLENGE was applied"); n != 1 {
		t.Errorf("the log says %d times that the environment's challenge is not in force, want once:\n%s", n, logged.String())
	}
	if strings.Contains(logged.String(), "env-secret-x") || strings.Contains(logged.String(), "rotated-secret-y") || strings.Contains(logged.String(), "argon2id") {
		t.Errorf("a secret or hash in the log:\n%s", logged.String())
	}

	// A new environment value is applied (without an overlap, as before).
	o.Challenge = "env-secret-z"
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	z, _ := st.GetProfile(ctx, DefaultID)
	if !current(t, z, "env-secret-z") || current(t, z, "rotated-secret-y") || z.ChallengePrevHash != "" || !matchesHash(ctx, z.ChallengeEnvHash, "env-secret-z") {
		t.Fatalf("a changed SCEPD_CHALLENGE was not applied and recorded: in force %v, rotated still in force %v, prev %q, environment's hash %q",
			current(t, z, "env-secret-z"), current(t, z, "rotated-secret-y"), z.ChallengePrevHash, z.ChallengeEnvHash)
	}
	// And kept on the next start.
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	if again, _ := st.GetProfile(ctx, DefaultID); again.ChallengeHash != z.ChallengeHash || !again.Updated.Equal(z.Updated) {
		t.Fatal("an unchanged SCEPD_CHALLENGE was applied again")
	}

	// Switched to dynamic and back to static with the same environment: the
	// environment's value is applied again (the profile had none).
	o.ChallengeMode = store.ChallengeDynamic
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	o.ChallengeMode = store.ChallengeStatic
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	if back, _ := st.GetProfile(ctx, DefaultID); back.ChallengeMode != store.ChallengeStatic || !current(t, back, "env-secret-z") {
		t.Fatalf("back to static: the environment's challenge is not in force (mode %s)", back.ChallengeMode)
	}
}

// TestEnsureDefaultBeforeEnvHash: a profile row from before the
// environment's hash was recorded (migration 0017) gets SCEPD_CHALLENGE as
// before on the first start (replacing a challenge rotated since, once),
// which records it; from then on a rotation stays. A row whose challenge
// already is the environment's only gets the hash recorded.
func TestEnsureDefaultBeforeEnvHash(t *testing.T) {
	ctx := context.Background()
	st, ks := testStore(t)
	o := Options{CAKeyType: ca.ECDSAP256, RAKeyType: ca.RSA2048, Now: time.Now, Challenge: "env-secret-x",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	forget := func() store.Profile { // as the row was before the migration
		t.Helper()
		p, _ := st.GetProfile(ctx, DefaultID)
		p.ChallengeEnvHash = ""
		if err := st.UpdateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	before := forget()
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	p, _ := st.GetProfile(ctx, DefaultID)
	if p.ChallengeHash != before.ChallengeHash || !p.Updated.Equal(before.Updated) || !matchesHash(ctx, p.ChallengeEnvHash, "env-secret-x") {
		t.Errorf("the environment's challenge in force: want only its hash recorded; challenge changed %v, updated changed %v, environment's hash %q",
			p.ChallengeHash != before.ChallengeHash, !p.Updated.Equal(before.Updated), p.ChallengeEnvHash)
	}

	forget()
	rotateAsAPI(t, st, "rotated-secret-y", time.Hour)
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.GetProfile(ctx, DefaultID); !current(t, p, "env-secret-x") || !matchesHash(ctx, p.ChallengeEnvHash, "env-secret-x") {
		t.Errorf("nothing recorded: SCEPD_CHALLENGE is not applied as before and recorded (in force %v, environment's hash %q)",
			current(t, p, "env-secret-x"), p.ChallengeEnvHash)
	}
	rotated := rotateAsAPI(t, st, "rotated-secret-w", time.Hour)
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.GetProfile(ctx, DefaultID); p.ChallengeHash != rotated.ChallengeHash || p.ChallengePrevHash != rotated.ChallengePrevHash {
		t.Fatal("once recorded, a restart still puts SCEPD_CHALLENGE back over a rotation")
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
