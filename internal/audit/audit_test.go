package audit

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKeyFile: the audit key is generated once, mode 0600, encrypted
// with the passphrase when there is one, and replicas creating it at the
// same moment end up with the same key.
func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	ids := make([]string, 8)
	created := make([]bool, 8)
	for i := range ids {
		wg.Go(func() {
			k, c, err := LoadOrCreateKey(dir, "", []byte("correct horse"))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], created[i] = k.ID(), c
		})
	}
	wg.Wait()
	n := 0
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("racing creators got keys %v", ids)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d creators say they created the key; want 1", n)
	}
	path := filepath.Join(dir, DefaultKeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v; want mode 0600", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "ENCRYPTED PRIVATE KEY") {
		t.Fatalf("key file is not encrypted with the passphrase:\n%s", b)
	}
	if _, err := LoadKey(dir, "", nil); err == nil {
		t.Fatal("an encrypted audit key loaded without a passphrase")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadKey(dir, "", []byte("correct horse")); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key readable by others: %v; want refused", err)
	}
}

// TestCheckpointSignature: a checkpoint verifies with its key only, and
// not once anything it states is changed; the copy a sink received (an
// event's details) parses back to the same checkpoint.
func TestCheckpointSignature(t *testing.T) {
	k, _, err := LoadOrCreateKey(t.TempDir(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := LoadOrCreateKey(t.TempDir(), "", nil)
	cp := k.Sign(42, []byte{1, 2, 3}, time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC))
	if err := cp.Verify(k.Public()); err != nil {
		t.Fatal(err)
	}
	if err := cp.Verify(other.Public()); err == nil || !strings.Contains(err.Error(), "signed by audit key "+k.ID()) {
		t.Fatalf("verified with another key: %v", err)
	}
	forged := cp
	forged.Seq = 41
	if err := forged.Verify(k.Public()); err == nil {
		t.Fatal("a checkpoint with its count changed verified")
	}
	b, _ := json.Marshal(cp)
	if got, err := ParseCheckpoint(b); err != nil || got != cp {
		t.Fatalf("checkpoint file: %+v %v", got, err)
	}
	event, _ := json.Marshal(map[string]any{"id": "evt-7", "type": "audit.checkpoint", "details": cp.Details()})
	got, err := ParseCheckpoint(event)
	if err != nil || !got.Time.Equal(cp.Time) {
		t.Fatalf("checkpoint from an event: %+v %v", got, err)
	}
	got.Time = cp.Time
	if got != cp || got.Verify(k.Public()) != nil {
		t.Fatalf("checkpoint from an event: %+v, want %+v", got, cp)
	}
	if _, err := ParseCheckpoint([]byte(`{"seq": 3}`)); err == nil {
		t.Fatal("an unsigned checkpoint parsed")
	}
}

// TestCopyExclusive: the fallback for filesystems without hard links
// creates the key mode 0600 and never replaces an existing one.
func TestCopyExclusive(t *testing.T) {
	dir := t.TempDir()
	from, to := filepath.Join(dir, "from"), filepath.Join(dir, "to")
	os.WriteFile(from, []byte("first"), 0o600)
	if err := copyExclusive(from, to); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(to); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	os.WriteFile(from, []byte("second"), 0o600)
	if err := copyExclusive(from, to); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("copy onto an existing key: %v; want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(to); string(b) != "first" {
		t.Fatalf("the existing key was replaced: %q", b)
	}
}

// TestKeyFileRelativeDir: a relative data directory (the default is
// ./scepd-data) works on the first start as on later ones; the key was
// once written to d/audit.key and then read from d/d/audit.key.
func TestKeyFileRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("d", 0o700); err != nil {
		t.Fatal(err)
	}
	k, created, err := LoadOrCreateKey("d", "", nil)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	again, created, err := LoadOrCreateKey("d", "", nil)
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if string(again.Chain()) != string(k.Chain()) {
		t.Fatal("the second start read another key")
	}
	if _, err := os.Stat(filepath.Join("d", DefaultKeyFile)); err != nil {
		t.Fatal(err)
	}
}
