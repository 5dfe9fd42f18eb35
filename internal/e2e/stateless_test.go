package e2e

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// keyFilesIn lists the *.key files under dir.
func keyFilesIn(t *testing.T, dir string) []string {
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

// TestStatelessReplicas: two replicas started together, with their own
// empty data directories, one PostgreSQL database and one SCEPD_KEY_PASSPHRASE serve
// the same CA and profile, with every key sealed in the database and none
// on disk. Enrollments through both get unique serials; certmonger and
// micromdm's scepclient enroll through the second. A third replica
// without the passphrase, or with a wrong one, refuses to start, names
// the variable, and changes nothing.
func TestStatelessReplicas(t *testing.T) {
	db := pgtest.Schema(t)
	// SCEPD_ALLOW_DES: micromdm's scepclient sends single DES.
	env := []string{"SCEPD_CHALLENGE=" + challenge, "SCEPD_KEY_PASSPHRASE=stateless replicas share this", "SCEPD_ALLOW_DES=1"}
	// Started at the same moment, each on a directory of its own: they
	// race through provisioning (CA, RA and audit key) on the database.
	replicas := sceptest.StartMany(t, 2, sceptest.Options{Env: env, Args: []string{"--database", db}})
	first, second := replicas[0], replicas[1]
	if first.DataDir == second.DataDir {
		t.Fatal("the replicas share a data directory")
	}
	if n := strings.Count(first.Log(), "created root CA") + strings.Count(second.Log(), "created root CA"); n != 1 {
		t.Fatalf("%d replicas created the root CA, want exactly 1", n)
	}
	if !second.LogContains(`new_keys="database (sealed)"`) {
		t.Fatalf("the second replica does not say new keys go to the database:\n%s", second.Log())
	}

	ctx := context.Background()
	st := first.Store()
	caRow, err := st.GetCA(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	prof, err := st.GetProfile(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(caRow.KeyRef, "db:") || !strings.HasPrefix(prof.RAKeyRef, "db:") {
		t.Fatalf("key references %q, %q: want db:", caRow.KeyRef, prof.RAKeyRef)
	}
	sealed, err := st.ListKeys(ctx)
	if err != nil || len(sealed) != 3 {
		t.Fatalf("sealed keys %+v, %v: want the CA's, the RA's and the audit key", sealed, err)
	}
	for _, k := range sealed {
		if k.KDF != "pbkdf2-hmac-sha256" || k.Cipher != "aes-256-gcm" || len(k.Salt) < 16 {
			t.Errorf("key %s sealed with %s/%s, salt %d bytes", k.ID, k.KDF, k.Cipher, len(k.Salt))
		}
	}
	// Both serve the same CA and RA.
	a, b := getCACert(t, first), getCACert(t, second)
	if len(a) != len(b) {
		t.Fatalf("GetCACert: %d and %d certificates", len(a), len(b))
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			t.Fatalf("GetCACert certificate %d differs between the replicas", i)
		}
	}

	l := newLoad(t, []*sceptest.Server{first, second}, "stateless")
	issued, failed := l.run(ctx, 20, 4, challenge)
	if len(failed) > 0 || len(issued) != 20 {
		t.Fatalf("%d issued, %d failed (first: %v)", len(issued), len(failed), failed)
	}
	checkStored(t, first, issued) // unique serials, stored, chain to the CA
	for i, r := range []*sceptest.Server{first, second} {
		if !r.LogContains("certificate issued") {
			t.Errorf("replica %d issued nothing", i+1)
		}
	}
	root := a[len(a)-1]

	t.Run("certmonger through the second replica", func(t *testing.T) {
		sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
		cm := sceptest.StartCertmonger(t)
		cm.AddCA(t, "second", second.URL("default"), root)
		key, cert := cm.KeyAndCertPaths(t, "stateless")
		if out, err := cm.Getcert("request", "-c", "second", "-k", key, "-f", cert, "-N", "CN=cm-stateless", "-L", challenge, "-I", "stateless", "-w", "-v"); err != nil {
			t.Fatalf("getcert request: %v\n%s\n%s", err, out, second.Log())
		}
		pemBytes, err := os.ReadFile(cert)
		if err != nil {
			list, _ := cm.Getcert("list", "-i", "stateless")
			t.Fatalf("certmonger wrote no certificate: %v\n%s", err, list)
		}
		c := parsePEM(t, pemBytes)
		row, err := st.GetCertificate(ctx, c.SerialNumber.Text(16))
		if err != nil || row.Subject != "CN=cm-stateless" {
			t.Fatalf("certmonger's certificate row %+v, %v", row, err)
		}
	})

	t.Run("micromdm scepclient through the second replica", func(t *testing.T) {
		bin := sceptest.RequireTool(t, "scepclient", "scep")
		dir := t.TempDir()
		ra, err := client.Recipient(b)
		if err != nil {
			t.Fatal(err)
		}
		fp := sha256.Sum256(ra.Raw)
		if out, err := sceptest.Run(t, time.Minute, nil, dir, bin, "-server-url", second.URL("default"), "-private-key", filepath.Join(dir, "key.pem"),
			"-challenge", challenge, "-cn", "mm-stateless", "-ca-fingerprint", hex.EncodeToString(fp[:])); err != nil {
			t.Fatalf("scepclient: %v\n%s", err, out)
		}
		pemBytes, err := os.ReadFile(filepath.Join(dir, "client.pem"))
		if err != nil {
			t.Fatal(err)
		}
		c := parsePEM(t, pemBytes)
		if row, err := st.GetCertificate(ctx, c.SerialNumber.Text(16)); err != nil || !strings.HasPrefix(row.Subject, "CN=mm-stateless,") {
			t.Fatalf("scepclient's certificate row: subject %q, %v", row.Subject, err)
		}
	})

	// A third replica without the passphrase, then with a wrong one.
	events, err := st.AuditAfter(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	third := filepath.Join(t.TempDir(), "third")
	for _, c := range []struct{ env, want string }{
		{"SCEPD_KEY_PASSPHRASE=", "SCEPD_KEY_PASSPHRASE"},
		{"SCEPD_KEY_PASSPHRASE=not the passphrase", "does not open with SCEPD_KEY_PASSPHRASE"},
	} {
		out, err := sceptest.Run(t, time.Minute, []string{"SCEPD_CHALLENGE=" + challenge, "SCEPD_KEY_PASSPHRASE_FILE=", c.env}, "",
			sceptest.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", third, "--database", db)
		if err == nil || !strings.Contains(out, c.want) {
			t.Fatalf("third replica with %s: %v, want a refusal naming %q:\n%s", c.env, err, c.want, out)
		}
	}
	after, err := st.AuditAfter(ctx, 0, 100000)
	if err != nil || len(after) != len(events) {
		t.Fatalf("the refused starts changed the audit log: %d events, then %d (%v)", len(events), len(after), err)
	}
	if again, err := st.ListKeys(ctx); err != nil || len(again) != 3 {
		t.Fatalf("the refused starts changed the sealed keys: %d, %v", len(again), err)
	}
	cas, err := st.ListCAs(ctx)
	if err != nil || len(cas) != 1 {
		t.Fatalf("CAs after the refused starts: %d, %v", len(cas), err)
	}

	for _, dir := range []string{first.DataDir, second.DataDir, third} {
		if files := keyFilesIn(t, dir); len(files) != 0 {
			t.Errorf("key files written in %s: %v", dir, files)
		}
	}
	if _, err := st.GetKey(ctx, "audit"); err != nil {
		t.Fatalf("audit key: %v", err)
	}
}

// TestKeysMigrateToDatabase: a PostgreSQL deployment whose keys are files
// in a shared data directory moves them into the database with `scepd
// keys migrate --to database`; a replica with an empty data directory
// then serves the same CA, and a second run moves nothing.
func TestKeysMigrateToDatabase(t *testing.T) {
	db := pgtest.Schema(t)
	old := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--database", db}})
	before := getCACert(t, old)
	enrollOK(t, old, client.Enrollment{Subject: pkix.Name{CommonName: "before-migrate"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	old.Stop()
	if n := len(keyFilesIn(t, old.DataDir)); n != 3 {
		t.Fatalf("%d key files before the move, want the CA's, the RA's and audit.key", n)
	}
	const pass = "moved into the database"
	migrate := func() string {
		t.Helper()
		out, err := sceptest.Run(t, 2*time.Minute, []string{"SCEPD_KEY_PASSPHRASE=" + pass}, "", sceptest.Binary(t),
			"keys", "migrate", "--to", "database", "--data", old.DataDir, "--database", db)
		if err != nil {
			t.Fatalf("keys migrate: %v\n%s", err, out)
		}
		return out
	}
	if out := migrate(); !strings.Contains(out, "3 keys moved") {
		t.Fatalf("keys migrate:\n%s", out)
	}
	if files := keyFilesIn(t, old.DataDir); len(files) != 0 {
		t.Fatalf("key files left after the move: %v", files)
	}
	if out := migrate(); !strings.Contains(out, "nothing to move") {
		t.Fatalf("second keys migrate:\n%s", out)
	}
	fresh := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(t.TempDir(), "fresh"), Args: []string{"--database", db},
		Env: []string{"SCEPD_CHALLENGE=" + challenge, "SCEPD_KEY_PASSPHRASE=" + pass}})
	after := getCACert(t, fresh)
	if len(after) != len(before) || !after[len(after)-1].Equal(before[len(before)-1]) {
		t.Fatal("the replica on the moved keys serves another CA")
	}
	c := enrollOK(t, fresh, client.Enrollment{Subject: pkix.Name{CommonName: "after-migrate"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	checkStored(t, fresh, []*x509.Certificate{c})
	if files := keyFilesIn(t, fresh.DataDir); len(files) != 0 {
		t.Fatalf("key files in the fresh replica's data directory: %v", files)
	}
}
