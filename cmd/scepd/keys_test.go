package main

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/audit"
	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/store"
)

type keyState struct {
	caRef, raRef string
	caPub, raPub crypto.PublicKey
	auditID      string
}

// readKeys opens the store as a server would and loads the default CA's
// and RA's keys and the audit key.
func readKeys(t *testing.T, sf storeFlags) keyState {
	t.Helper()
	ctx := context.Background()
	st, ak, err := openAudited(ctx, sf)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks := withStoreKeys(keys.Source{Dir: sf.dataDir, Passphrase: []byte(os.Getenv("SCEPD_KEY_PASSPHRASE"))}, st, sf)
	c, err := st.GetCA(ctx, provision.DefaultID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.GetProfile(ctx, provision.DefaultID)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := ks.Load(c.KeyRef)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := ks.Load(p.RAKeyRef)
	if err != nil {
		t.Fatal(err)
	}
	return keyState{caRef: c.KeyRef, raRef: p.RAKeyRef, caPub: ck.Public(), raPub: rk.Public(), auditID: ak.ID()}
}

func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".key") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func migrate(t *testing.T, dir, to string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run([]string{"keys", "migrate", "--to", to, "--data", dir}, &out, &errb)
	return code, out.String(), errb.String()
}

// TestKeysMigrate moves the default CA's, RA's and audit keys from files
// into the store and back: references change, the keys stay the same, a
// second run moves nothing, and without the passphrase or with a wrong
// one nothing changes.
func TestKeysMigrate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	sf := storeFlags{dataDir: dir}
	t.Setenv("SCEPD_DATABASE", "")
	t.Setenv("SCEPD_AUDIT_KEY_FILE", "")
	t.Setenv("SCEPD_KEY_PASSPHRASE", "first passphrase")
	ctx := context.Background()
	st, _, err := openAudited(ctx, sf)
	if err != nil {
		t.Fatal(err)
	}
	ks := keys.Source{Dir: dir, Passphrase: []byte("first passphrase")}
	if _, err := provision.EnsureDefault(ctx, st, ks, provision.Options{CAKeyType: ca.ECDSAP256, RAKeyType: ca.RSA2048,
		Challenge: "a static challenge", Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := readKeys(t, sf)
	if !strings.HasPrefix(before.caRef, "file:") || len(keyFiles(t, dir)) != 3 {
		t.Fatalf("setup: CA key %s, key files %v", before.caRef, keyFiles(t, dir))
	}

	t.Setenv("SCEPD_KEY_PASSPHRASE", "")
	if code, _, stderr := migrate(t, dir, "database"); code != 1 || !strings.Contains(stderr, "SCEPD_KEY_PASSPHRASE") {
		t.Fatalf("without a passphrase: exit %d, %q", code, stderr)
	}
	t.Setenv("SCEPD_KEY_PASSPHRASE", "first passphrase")
	if len(keyFiles(t, dir)) != 3 {
		t.Fatal("a refused migration changed the key files")
	}

	code, stdout, stderr := migrate(t, dir, "database")
	if code != 0 || !strings.Contains(stdout, "3 keys moved") || !strings.Contains(stdout, before.caRef+" -> db:") {
		t.Fatalf("to database: exit %d, %q, %q", code, stdout, stderr)
	}
	if files := keyFiles(t, dir); len(files) != 0 {
		t.Fatalf("key files left after moving to the database: %v", files)
	}
	inDB := readKeys(t, sf)
	if !strings.HasPrefix(inDB.caRef, "db:") || !strings.HasPrefix(inDB.raRef, "db:") {
		t.Fatalf("references after the move: %s, %s", inDB.caRef, inDB.raRef)
	}
	if !inDB.caPub.(interface{ Equal(crypto.PublicKey) bool }).Equal(before.caPub) ||
		!inDB.raPub.(interface{ Equal(crypto.PublicKey) bool }).Equal(before.raPub) || inDB.auditID != before.auditID {
		t.Fatal("the keys changed in the move")
	}
	ast, err := openRaw(ctx, sf)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ast.ListAudit(ctx, 1)
	ast.Close()
	if err != nil || len(ev) != 1 || ev[0].Action != "keys.migrate" || ev[0].Object != "database" || !strings.Contains(ev[0].Details["moved"], before.caRef) {
		t.Fatalf("newest audit event %+v, %v; want keys.migrate", ev, err)
	}
	if code, stdout, _ := migrate(t, dir, "database"); code != 0 || !strings.Contains(stdout, "nothing to move") {
		t.Fatalf("second run: exit %d, %q", code, stdout)
	}

	t.Setenv("SCEPD_KEY_PASSPHRASE", "wrong passphrase")
	if code, _, stderr := migrate(t, dir, "files"); code != 1 || !strings.Contains(stderr, "SCEPD_KEY_PASSPHRASE") {
		t.Fatalf("wrong passphrase: exit %d, %q", code, stderr)
	}
	if _, _, err := openAudited(ctx, sf); err == nil || !strings.Contains(err.Error(), "SCEPD_KEY_PASSPHRASE") {
		t.Fatalf("opening with a wrong passphrase: %v", err)
	}
	t.Setenv("SCEPD_KEY_PASSPHRASE", "first passphrase")
	if files := keyFiles(t, dir); len(files) != 0 {
		t.Fatalf("a failed migration wrote %v", files)
	}
	if again := readKeys(t, sf); again.caRef != inDB.caRef {
		t.Fatalf("a failed migration changed the CA reference to %s", again.caRef)
	}

	code, stdout, stderr = migrate(t, dir, "files")
	if code != 0 || !strings.Contains(stdout, "3 keys moved") {
		t.Fatalf("to files: exit %d, %q, %q", code, stdout, stderr)
	}
	back := readKeys(t, sf)
	if back.caRef != before.caRef || back.raRef != before.raRef || back.auditID != before.auditID {
		t.Fatalf("back in files: %+v, want the references of %+v", back, before)
	}
	for _, f := range keyFiles(t, dir) {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", f, fi.Mode(), err)
		}
		if b, _ := os.ReadFile(f); !bytes.Contains(b, []byte("ENCRYPTED PRIVATE KEY")) {
			t.Fatalf("%s is not encrypted", f)
		}
	}
	st2, err := openRaw(ctx, sf)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if left, err := st2.ListKeys(ctx); err != nil || len(left) != 0 {
		t.Fatalf("sealed keys left: %v, %v", left, err)
	}
	if _, err := st2.GetKey(ctx, audit.SealedKeyID); err == nil {
		t.Fatal("audit key still sealed")
	} else if !strings.Contains(err.Error(), store.ErrNotFound.Error()) {
		t.Fatal(err)
	}
}

// TestKeyStoreSetting: SCEPD_KEY_STORE overrides where new keys go, and a
// value scepd cannot honour is refused before anything is written.
func TestKeyStoreSetting(t *testing.T) {
	pg := storeFlags{database: "postgres://db.example/scepd"}
	for _, c := range []struct {
		setting, pass string
		f             storeFlags
		want          bool
	}{
		{"", "pw", pg, true},
		{"", "", pg, false},
		{"", "pw", storeFlags{}, false},
		{"files", "pw", pg, false},
		{"database", "pw", storeFlags{}, true},
	} {
		t.Setenv("SCEPD_KEY_STORE", c.setting)
		if got := keysInDB(c.f, []byte(c.pass)); got != c.want {
			t.Errorf("SCEPD_KEY_STORE=%q, passphrase %q, database %q: in the database %v, want %v", c.setting, c.pass, c.f.database, got, c.want)
		}
	}
	dir := filepath.Join(t.TempDir(), "data")
	for _, c := range []struct{ setting, pass, want string }{
		{"vault", "pw", `SCEPD_KEY_STORE "vault"`},
		{"database", "", "SCEPD_KEY_PASSPHRASE"},
	} {
		t.Setenv("SCEPD_KEY_STORE", c.setting)
		t.Setenv("SCEPD_KEY_PASSPHRASE", c.pass)
		if _, _, err := openAudited(context.Background(), storeFlags{dataDir: dir}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SCEPD_KEY_STORE=%q: %v, want an error naming %s", c.setting, err, c.want)
		}
	}
	if files := keyFiles(t, dir); len(files) != 0 {
		t.Errorf("refused starts wrote %v", files)
	}
}
