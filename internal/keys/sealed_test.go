package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

func TestSealUnseal(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pass := []byte("correct horse")
	a, err := Seal("ca/a", ec, pass, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal("ca/b", ec, pass, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Salt) == string(b.Salt) {
		t.Fatal("two keys sealed with the same salt")
	}
	if a.KDF != "pbkdf2-hmac-sha256" || a.Iterations != pbkdf2Iterations || a.Cipher != "aes-256-gcm" {
		t.Fatalf("parameters %s/%d/%s", a.KDF, a.Iterations, a.Cipher)
	}
	got, err := Unseal(a, pass)
	if err != nil || !got.(*ecdsa.PrivateKey).Equal(ec) {
		t.Fatalf("Unseal: %v", err)
	}
	if _, err := Unseal(a, []byte("wrong")); !errors.Is(err, ErrPassphrase) || !strings.Contains(err.Error(), "SCEPD_KEY_PASSPHRASE") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := Unseal(a, nil); !errors.Is(err, ErrNoPassphrase) || !strings.Contains(err.Error(), "SCEPD_KEY_PASSPHRASE") {
		t.Fatalf("no passphrase: %v", err)
	}
	// A sealed blob moved to another row does not open there.
	swapped := b
	swapped.Sealed = a.Sealed
	swapped.Salt = a.Salt
	if _, err := Unseal(swapped, pass); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("blob under another ID opened: %v", err)
	}
	flipped := a
	flipped.Sealed = append([]byte(nil), a.Sealed...)
	flipped.Sealed[len(flipped.Sealed)-1] ^= 1
	if _, err := Unseal(flipped, pass); err == nil {
		t.Fatal("altered blob opened")
	}
	if _, err := Seal("x", ec, nil, time.Now()); !errors.Is(err, ErrNoPassphrase) {
		t.Fatalf("Seal without passphrase: %v", err)
	}
}

// TestSourceInDB: a source with InDB generates, loads and removes keys in
// a real store, and writes no file.
func TestSourceInDB(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := Source{Dir: dir, Passphrase: []byte("pw"), DB: st, InDB: true}
	k, ref, err := s.Generate("ca/x-1.key", Algorithm{Curve: elliptic.P256()})
	if err != nil {
		t.Fatal(err)
	}
	if ref != "db:ca/x-1" {
		t.Fatalf("ref %q", ref)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key directory was written: %v", err)
	}
	ed := ed25519.NewKeyFromSeed(make([]byte, 32))
	if _, err := s.Save("audit-test", ed); err != nil {
		t.Fatal(err)
	}
	// Another replica: same database and passphrase, no key files.
	other := Source{Dir: t.TempDir(), Passphrase: []byte("pw"), DB: st}
	got, err := other.Load(ref)
	if err != nil || !got.(*ecdsa.PrivateKey).Equal(k) {
		t.Fatalf("Load on another source: %v", err)
	}
	if _, err := (Source{DB: st}).Load(ref); !errors.Is(err, ErrNoPassphrase) {
		t.Fatalf("Load without passphrase: %v", err)
	}
	if _, err := (Source{DB: st, Passphrase: []byte("nope")}).Load(ref); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("Load with a wrong passphrase: %v", err)
	}
	s.Remove(ref)
	if _, err := st.GetKey(context.Background(), "ca/x-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after Remove: %v", err)
	}
	if _, err := (Source{Passphrase: []byte("pw")}).Load(ref); err == nil {
		t.Fatal("db: reference loaded without a database")
	}
}
