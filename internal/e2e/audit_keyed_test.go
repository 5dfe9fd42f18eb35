package e2e

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepd/scepd/internal/audit"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/events"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// attacker has SQL access to a server's database, and no audit key.
type attacker struct {
	t    *testing.T
	exec func(q string, args ...any) error
	rows func(q string) ([]store.AuditEvent, error)
}

// newAttacker opens the server's database (SQLite file or PostgreSQL).
func newAttacker(t *testing.T, s *sceptest.Server) *attacker {
	a := &attacker{t: t}
	if u := s.Database(); u != "" {
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		a.exec = func(q string, args ...any) error {
			n := 0
			q = regexp.MustCompile(`\?`).ReplaceAllStringFunc(q, func(string) string { n++; return fmt.Sprintf("$%d", n) })
			_, err := conn.Exec(context.Background(), q, args...)
			return err
		}
		a.rows = func(q string) ([]store.AuditEvent, error) {
			rows, err := conn.Query(context.Background(), q)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []store.AuditEvent
			for rows.Next() {
				var e store.AuditEvent
				var details string
				if err := rows.Scan(&e.Seq, &e.Time, &e.Actor, &e.Action, &e.Object, &e.Outcome, &details, &e.PrevHash, &e.Hash); err != nil {
					return nil, err
				}
				json.Unmarshal([]byte(details), &e.Details)
				out = append(out, e)
			}
			return out, rows.Err()
		}
		return a
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.DataDir, "scepd.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	a.exec = func(q string, args ...any) error { _, err := db.Exec(q, args...); return err }
	a.rows = func(q string) ([]store.AuditEvent, error) {
		rows, err := db.Query(q)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []store.AuditEvent
		for rows.Next() {
			var e store.AuditEvent
			var at, details string
			if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Outcome, &details, &e.PrevHash, &e.Hash); err != nil {
				return nil, err
			}
			e.Time, _ = time.Parse("2006-01-02T15:04:05.000000Z", at)
			json.Unmarshal([]byte(details), &e.Details)
			out = append(out, e)
		}
		return out, rows.Err()
	}
	return a
}

func (a *attacker) sql(q string, args ...any) {
	a.t.Helper()
	if err := a.exec(q, args...); err != nil {
		a.t.Fatalf("%s: %v", q, err)
	}
}

// recompute rewrites every hash from event seq on with plain SHA-256 (the
// unkeyed chain), each event linking to the one before: what an attacker
// without the key can do to hide an edit.
func (a *attacker) recompute(from int64) {
	a.t.Helper()
	events, err := a.rows(`SELECT seq, at, actor, action, object, outcome, details, prev_hash, hash FROM audit_events ORDER BY seq`)
	if err != nil {
		a.t.Fatal(err)
	}
	prev := []byte{}
	for _, e := range events {
		if e.Seq >= from {
			h, err := e.ChainHash(prev)
			if err != nil {
				a.t.Fatal(err)
			}
			a.sql(`UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?`, prev, h, e.Seq)
			e.Hash = h
		}
		prev = e.Hash
	}
}

// auditCLI runs scepd audit against the server's data directory/database.
func auditCLI(t *testing.T, s *sceptest.Server, args ...string) (string, error) {
	t.Helper()
	args = append(append([]string{"audit"}, args...), "--data", s.DataDir)
	if u := s.Database(); u != "" {
		args = append(args, "--database", u)
	}
	return sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), args...)
}

// TestAuditRewrittenAndRecomputed: an event edited in the database with
// every later hash recomputed the unkeyed way (all an attacker without
// the audit key can do) is caught by `scepd audit verify` without any
// checkpoint, naming the event; so is a forged event inserted.
func TestAuditRewrittenAndRecomputed(t *testing.T) {
	s := startServer(t)
	for i := range 3 {
		enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: fmt.Sprintf("rewrite-%d", i)}, Cipher: cms.AES128, Digest: crypto.SHA256})
	}
	s.Stop()
	if out, err := auditCLI(t, s, "verify"); err != nil || !strings.Contains(out, "audit chain intact") || !strings.Contains(out, "keyed with audit key") {
		t.Fatalf("untouched log: %v\n%s", err, out)
	}
	a := newAttacker(t, s)
	a.sql(`UPDATE audit_events SET actor = 'someone else' WHERE seq = 3`)
	out, err := auditCLI(t, s, "verify")
	if err == nil || !strings.Contains(out, "TAMPERED at event 3") {
		t.Fatalf("an event rewritten: %v\n%s", err, out)
	}
	// A server started on it (its newest event intact) says so at once.
	s.Restart()
	waitFor(t, "the rewrite reported at start", 20*time.Second, func() bool { return s.LogContains("AUDIT LOG TAMPERED") })
	checkMetrics(t, s, "scepd_audit_chain_broken 1")
	s.Stop()
	// The chain recomputed from there the unkeyed way, as one without the
	// key must: the newest event is then unkeyed in a keyed chain, and a
	// server refuses to start on it rather than key the chain again over
	// the forged events.
	a.recompute(3)
	out, err = auditCLI(t, s, "verify")
	if err == nil || !strings.Contains(out, "TAMPERED at event 3") {
		t.Fatalf("an event rewritten with the chain recomputed: %v\n%s", err, out)
	}
	out, err = sceptest.Run(t, time.Minute, []string{"SCEPD_CHALLENGE=" + challenge}, "", sceptest.Binary(t),
		"serve", "--addr", "127.0.0.1:0", "--data", s.DataDir)
	if err == nil || !strings.Contains(out, "without the audit key") || !strings.Contains(out, "scepd audit verify") {
		t.Fatalf("a server started on an unkeyed newest event: %v\n%s", err, out)
	}

	// Put it back (the attacker cannot: the original HMACs are gone), on
	// a fresh server, and insert a forged event after event 2 instead.
	s2 := startServer(t)
	for i := range 3 {
		enrollOK(t, s2, client.Enrollment{Subject: pkix.Name{CommonName: fmt.Sprintf("insert-%d", i)}, Cipher: cms.AES128, Digest: crypto.SHA256})
	}
	s2.Stop()
	a2 := newAttacker(t, s2)
	a2.sql(`UPDATE audit_events SET seq = -seq WHERE seq > 2`)
	a2.sql(`UPDATE audit_events SET seq = 1 - seq WHERE seq < 0`)
	a2.sql(`INSERT INTO audit_events (seq, at, actor, action, object, outcome, details, prev_hash, hash)
		SELECT 3, at, 'operator', 'certificate.revoke', object, 'ok', details, prev_hash, hash FROM audit_events WHERE seq = 2`)
	a2.recompute(3)
	out, err = auditCLI(t, s2, "verify")
	if err == nil || !strings.Contains(out, "TAMPERED at event 3") {
		t.Fatalf("an event inserted: %v\n%s", err, out)
	}
}

// TestAuditCheckpointCLI, on SQLite and PostgreSQL: `scepd audit
// checkpoint` signs the log's count and head while the server runs;
// deleting the newest rows passes a verify without the checkpoint (all
// that is left is intact) and fails one with it, naming the first
// missing event.
func TestAuditCheckpointCLI(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var args []string
			if backend == "postgres" {
				args = []string{"--database", pgtest.Schema(t)}
			}
			s := sceptest.Start(t, sceptest.Options{Args: args, Env: []string{"SCEPD_CHALLENGE=" + challenge}})
			for i := range 2 {
				enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: fmt.Sprintf("cp-%d", i)}, Cipher: cms.AES128, Digest: crypto.SHA256})
			}
			cpFile := filepath.Join(t.TempDir(), "checkpoint.json")
			out, err := auditCLI(t, s, "checkpoint", "--out", cpFile)
			if err != nil || !strings.Contains(out, "written to "+cpFile) {
				t.Fatalf("scepd audit checkpoint: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(cpFile)
			cp, err := audit.ParseCheckpoint(b)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			// Whoever holds only the public key can check the signature.
			pub, err := sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), "audit", "pubkey", "--data", s.DataDir)
			if err != nil || !strings.Contains(pub, "BEGIN PUBLIC KEY") {
				t.Fatalf("scepd audit pubkey: %v\n%s", err, pub)
			}
			pubFile := filepath.Join(t.TempDir(), "audit.pub")
			os.WriteFile(pubFile, []byte(pub), 0o644)
			checkSig := func() (string, error) {
				return sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), "audit", "check-checkpoint", "--public-key", pubFile, cpFile)
			}
			if out, err := checkSig(); err != nil || !strings.Contains(out, fmt.Sprintf("checkpoint signature valid: %d events", cp.Seq)) {
				t.Fatalf("check-checkpoint: %v\n%s", err, out)
			}
			enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "cp-after"}, Cipher: cms.AES128, Digest: crypto.SHA256})
			s.Stop()
			out, err = auditCLI(t, s, "verify", "--checkpoint", cpFile)
			if err != nil || !strings.Contains(out, "audit chain intact") || !strings.Contains(out, fmt.Sprintf("all %d events it covers are present and unchanged", cp.Seq)) {
				t.Fatalf("untouched log with its checkpoint: %v\n%s", err, out)
			}

			newAttacker(t, s).sql(`DELETE FROM audit_events WHERE seq > ?`, cp.Seq-2)
			if out, err := auditCLI(t, s, "verify"); err != nil || !strings.Contains(out, "audit chain intact") {
				t.Fatalf("without a checkpoint a cut end cannot show; got %v\n%s", err, out)
			}
			out, err = auditCLI(t, s, "verify", "--checkpoint", cpFile)
			want := fmt.Sprintf("TAMPERED at event %d: the log ends at event %d but the checkpoint", cp.Seq-1, cp.Seq-2)
			if err == nil || !strings.Contains(out, want) || !strings.Contains(out, "cut from the end") {
				t.Fatalf("newest rows deleted, verified with the checkpoint: %v\n%s\nwant %q", err, out, want)
			}

			// A checkpoint edited to cover less is refused.
			var raw map[string]any
			json.Unmarshal(b, &raw)
			raw["seq"] = cp.Seq - 2
			b, _ = json.Marshal(raw)
			os.WriteFile(cpFile, b, 0o644)
			if out, err := auditCLI(t, s, "verify", "--checkpoint", cpFile); err == nil || !strings.Contains(out, "CHECKPOINT REFUSED") {
				t.Fatalf("an edited checkpoint: %v\n%s", err, out)
			}
			if out, err := checkSig(); err == nil || !strings.Contains(out, "CHECKPOINT REFUSED") {
				t.Fatalf("check-checkpoint of an edited checkpoint: %v\n%s", err, out)
			}
		})
	}
}

// TestAuditCheckpointSinks: the server signs checkpoints on its own
// (--audit-checkpoint-interval) and the audit.checkpoint event reaches a
// webhook and the log sink; the copy the webhook kept is enough for
// `scepd audit verify --checkpoint` to show rows later cut from the end.
func TestAuditCheckpointSinks(t *testing.T) {
	rcv := &hookReceiver{t: t}
	hook := serve(t, rcv)
	cfg := filepath.Join(t.TempDir(), "scepd.yaml")
	os.WriteFile(cfg, []byte(`
cas:
  - id: root
    create: {subject: "CN=Audit Root", key_type: ecdsa-p256}
profiles:
  - id: devices
    ca: root
    challenge: {password_env: E2E_STATIC}
events:
  sinks:
    - name: hook
      type: webhook
      url: "`+hook+`"
      secret_env: E2E_EVENT_SECRET
      timeout: 2s
    - name: audit-log
      type: log
      events: [audit.checkpoint]
`), 0o600)
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", cfg, "--audit-checkpoint-interval", "1s"},
		Env: []string{"E2E_STATIC=" + challenge, "E2E_EVENT_SECRET=" + eventSecret}})
	for i := range 2 {
		if _, err := enrollWith(s, "devices", fmt.Sprintf("sink-%d", i), challenge); err != nil {
			t.Fatal(err)
		}
	}
	// The newest enrollment's event (a checkpoint signed meanwhile may be
	// newer; it covers the enrollments then).
	recent, err := s.Store().ListAudit(context.Background(), 10)
	i := slices.IndexFunc(recent, func(e store.AuditEvent) bool { return e.Action == "enroll" })
	if err != nil || i < 0 {
		t.Fatalf("no enrollment among the newest audit events %+v %v", recent, err)
	}
	head := recent[i:]
	// A checkpoint that covers both enrollments (the first may predate them).
	var got events.Event
	waitFor(t, "an audit.checkpoint event covering the enrollments", 30*time.Second, func() bool {
		for _, e := range rcv.of(events.AuditCheckpoint) {
			if strings.HasPrefix(e.ID, "evt-") && e.Details["signature"] != "" {
				var seq int64
				fmt.Sscan(e.Details["seq"], &seq)
				if seq >= head[0].Seq {
					got = e
					return true
				}
			}
		}
		return false
	})
	if !s.LogContains("type=audit.checkpoint") || !s.LogContains("detail.signature=") {
		t.Errorf("the log sink did not write the checkpoint:\n%s", s.Log())
	}
	s.Stop()
	copyFile := filepath.Join(t.TempDir(), "from-webhook.json")
	b, _ := json.Marshal(got)
	os.WriteFile(copyFile, b, 0o644)
	if out, err := auditCLI(t, s, "verify", "--checkpoint", copyFile); err != nil || !strings.Contains(out, "present and unchanged") {
		t.Fatalf("verify with the webhook's copy: %v\n%s", err, out)
	}
	var seq int64
	fmt.Sscan(got.Details["seq"], &seq)
	newAttacker(t, s).sql(`DELETE FROM audit_events WHERE seq >= ?`, seq-1)
	out, err := auditCLI(t, s, "verify", "--checkpoint", copyFile)
	if err == nil || !strings.Contains(out, fmt.Sprintf("TAMPERED at event %d", seq-1)) || !strings.Contains(out, "cut from the end") {
		t.Fatalf("rows cut, verified with the webhook's copy: %v\n%s", err, out)
	}
}

// TestAuditKeyReplicas: replicas on one PostgreSQL database must share
// the audit key. A replica with a data directory of its own (a copy of
// the CA and RA keys, but no audit key) refuses to start rather than
// chain events with a key of its own; pointed at the shared key with
// SCEPD_AUDIT_KEY_FILE, it serves, and the log verifies.
func TestAuditKeyReplicas(t *testing.T) {
	db := pgtest.Schema(t)
	a := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--database", db}})
	dirB := filepath.Join(t.TempDir(), "b")
	if out, err := sceptest.Run(t, time.Minute, nil, "", "cp", "-a", a.DataDir, dirB); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	os.Remove(filepath.Join(dirB, audit.DefaultKeyFile))
	out, err := sceptest.Run(t, time.Minute, []string{"SCEPD_CHALLENGE=" + challenge}, "", sceptest.Binary(t),
		"serve", "--addr", "127.0.0.1:0", "--data", dirB, "--database", db)
	if err == nil || !strings.Contains(out, "every replica must use the same audit key") || !strings.Contains(out, "SCEPD_AUDIT_KEY_FILE") {
		t.Fatalf("a replica with an audit key of its own: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(dirB, audit.DefaultKeyFile))
	b := sceptest.Start(t, sceptest.Options{DataDir: dirB, Args: []string{"--database", db},
		Env: []string{"SCEPD_CHALLENGE=" + challenge, "SCEPD_AUDIT_KEY_FILE=" + filepath.Join(a.DataDir, audit.DefaultKeyFile)}})
	for i, s := range []*sceptest.Server{a, b, a} {
		enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: fmt.Sprintf("replica-%d", i)}, Cipher: cms.AES128, Digest: crypto.SHA256})
	}
	b.Stop()
	a.Stop()
	if out, err := auditCLI(t, a, "verify"); err != nil || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("the log two replicas wrote: %v\n%s", err, out)
	}
}

// TestAuditUpgradeAndPassphrase: a log written before the chain was keyed
// (simulated: the keyed events removed, the rest rechained unkeyed, the
// key file gone) is keyed at the next start, and verify reports the
// unkeyed prefix; the new key is encrypted with SCEPD_KEY_PASSPHRASE, and
// without the passphrase the CLI says so instead of verifying.
func TestAuditUpgradeAndPassphrase(t *testing.T) {
	s := startServer(t)
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "before-upgrade"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	s.Stop()
	at := newAttacker(t, s)
	at.sql(`DELETE FROM audit_events WHERE action IN ('audit.chain_keyed', 'audit.checkpoint')`)
	events, err := at.rows(`SELECT seq, at, actor, action, object, outcome, details, prev_hash, hash FROM audit_events ORDER BY seq`)
	if err != nil || len(events) < 2 {
		t.Fatalf("%d events, %v", len(events), err)
	}
	for i, e := range events {
		at.sql(`UPDATE audit_events SET seq = ? WHERE seq = ?`, int64(i+1), e.Seq)
	}
	at.recompute(1)
	os.Remove(filepath.Join(s.DataDir, audit.DefaultKeyFile))
	if out, err := auditCLI(t, s, "verify"); err != nil || !strings.Contains(out, "none keyed (no audit key") {
		t.Fatalf("an old unkeyed log: %v\n%s", err, out)
	}

	const pass = "audit-passphrase-e2e"
	s.Env = append(s.Env, "SCEPD_KEY_PASSPHRASE="+pass)
	s.Restart()
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "after-upgrade"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	s.Stop()
	if b, err := os.ReadFile(filepath.Join(s.DataDir, audit.DefaultKeyFile)); err != nil || !strings.Contains(string(b), "ENCRYPTED PRIVATE KEY") {
		t.Fatalf("audit key file: %v\n%s", err, b)
	}
	if fi, err := os.Stat(filepath.Join(s.DataDir, audit.DefaultKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if out, err := auditCLI(t, s, "verify"); err == nil || !strings.Contains(out, "passphrase") {
		t.Fatalf("verify without the passphrase: %v\n%s", err, out)
	}
	out, err := sceptest.Run(t, time.Minute, []string{"SCEPD_KEY_PASSPHRASE=" + pass}, "", sceptest.Binary(t), "audit", "verify", "--data", s.DataDir)
	want := fmt.Sprintf("events 1 to %d predate the keyed chain", len(events))
	if err != nil || !strings.Contains(out, want) {
		t.Fatalf("the upgraded log: %v\n%s\nwant %q", err, out, want)
	}
	if strings.Contains(s.Log(), pass) {
		t.Error("the passphrase is in the log")
	}
	os.Rename(filepath.Join(s.DataDir, audit.DefaultKeyFile), filepath.Join(s.DataDir, "elsewhere.key"))
	out, err = auditCLI(t, s, "verify")
	if err == nil || strings.Contains(out, "TAMPERED") || !strings.Contains(out, "no audit key to check it") {
		t.Fatalf("verify without the key file: %v\n%s", err, out)
	}
}

// TestAuditKeyRace: two replicas given different audit keys start at the
// same moment on an empty PostgreSQL database: one keys the log, the
// other refuses to start (and removes the key it just made), so the
// chain never mixes two keys.
func TestAuditKeyRace(t *testing.T) {
	db := pgtest.Schema(t)
	data := filepath.Join(t.TempDir(), "shared")
	keysDir := t.TempDir()
	type proc struct {
		key  string
		cmd  *exec.Cmd
		out  *strings.Builder
		done chan error
	}
	var procs []*proc
	for _, name := range []string{"a.key", "b.key"} {
		p := &proc{key: filepath.Join(keysDir, name), out: &strings.Builder{}, done: make(chan error, 1)}
		p.cmd = exec.Command(sceptest.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", data, "--database", db)
		p.cmd.Env = append(os.Environ(), "SCEPD_CHALLENGE="+challenge, "SCEPD_AUDIT_KEY_FILE="+p.key)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- p.cmd.Wait() }()
		t.Cleanup(func() { p.cmd.Process.Kill() })
	}
	var loser, winner *proc
	select {
	case err := <-procs[0].done:
		loser, winner = procs[0], procs[1]
		t.Logf("a exited: %v", err)
	case err := <-procs[1].done:
		loser, winner = procs[1], procs[0]
		t.Logf("b exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("both replicas run with different audit keys:\n%s\n%s", procs[0].out, procs[1].out)
	}
	if !strings.Contains(loser.out.String(), "every replica must use the same audit key") {
		t.Fatalf("the replica that stopped says:\n%s", loser.out)
	}
	if _, err := os.Stat(loser.key); err == nil {
		t.Error("the refused replica left its new audit key behind")
	}
	select {
	case err := <-winner.done:
		t.Fatalf("the other replica stopped too: %v\n%s", err, winner.out)
	case <-time.After(2 * time.Second):
	}
	winner.cmd.Process.Signal(syscall.SIGTERM)
	<-winner.done
	out, err := sceptest.Run(t, time.Minute, []string{"SCEPD_AUDIT_KEY_FILE=" + winner.key}, "", sceptest.Binary(t), "audit", "verify", "--data", data, "--database", db)
	if err != nil || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("the log: %v\n%s", err, out)
	}
}

// TestAuditCutWhileRunning: rows cut from the end while the server runs
// are noticed at its next checkpoint: it logs the break and signs
// nothing over the shortened log.
func TestAuditCutWhileRunning(t *testing.T) {
	s := startServer(t, "SCEPD_AUDIT_CHECKPOINT_INTERVAL=300ms")
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "running"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	// The enrollment's own event, not the newest: a checkpoint covering it
	// may have been signed already, its event the newest, and then no
	// other is signed until something new is appended.
	events, err := s.Store().ListAudit(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(events, func(e store.AuditEvent) bool { return e.Action == "enroll" })
	if i < 0 {
		t.Fatalf("no enroll event in %+v", events)
	}
	head := events[i:]
	// Wait until a checkpoint covers the enrollment (it may cover events
	// appended after it too: a CRL published at start, say).
	signed := regexp.MustCompile(`audit checkpoint signed" seq=(\d+)`)
	waitFor(t, "a checkpoint covering the enrollment", 20*time.Second, func() bool {
		for _, m := range signed.FindAllStringSubmatch(s.Log(), -1) {
			if seq, _ := strconv.ParseInt(m[1], 10, 64); seq >= head[0].Seq {
				return true
			}
		}
		return false
	})
	checkMetrics(t, s, "scepd_audit_chain_broken 0", "scepd_audit_checkpoint_timestamp_seconds ")
	newAttacker(t, s).sql(`DELETE FROM audit_events WHERE seq >= ?`, head[0].Seq-1)
	waitFor(t, "the cut noticed", 20*time.Second, func() bool { return s.LogContains("AUDIT LOG TAMPERED") })
	if !s.LogContains("was removed or changed after it was verified") {
		t.Fatalf("log:\n%s", s.Log())
	}
	checkMetrics(t, s, "scepd_audit_chain_broken 1")
}
