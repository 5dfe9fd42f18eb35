package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	s := Source{Dir: t.TempDir()}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ref, err := s.Save("ca/x.key", ec)
	if err != nil {
		t.Fatal(err)
	}
	if ref != "file:ca/x.key" {
		t.Fatalf("ref %q", ref)
	}
	fi, err := os.Stat(filepath.Join(s.Dir, "ca/x.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	got, err := s.Load(ref)
	if err != nil || !got.(*ecdsa.PrivateKey).Equal(ec) {
		t.Fatalf("Load: %v", err)
	}
	for _, bad := range []string{"", "pkcs11:token=x", "file:"} {
		if _, err := s.Load(bad); err == nil {
			t.Errorf("Load(%q) succeeded", bad)
		}
	}
}

func TestParsePEMFormats(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ek)
	p8, _ := x509.MarshalPKCS8PrivateKey(rk)
	for name, b := range map[string]*pem.Block{
		"PKCS#1": {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)},
		"SEC 1":  {Type: "EC PRIVATE KEY", Bytes: ecDER},
		"PKCS#8": {Type: "PRIVATE KEY", Bytes: p8},
	} {
		if _, err := ParsePEM(pem.EncodeToMemory(b)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, bad := range [][]byte{nil, []byte("not pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})} {
		if _, err := ParsePEM(bad); err == nil {
			t.Errorf("ParsePEM(%q) succeeded", bad)
		}
	}
}

func TestEncryptedKeysInteroperateWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	s := Source{Dir: dir, Passphrase: []byte("correct horse battery")}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ref, err := s.Save("k.pem", ec)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "k.pem"))
	if !strings.Contains(string(raw), "ENCRYPTED PRIVATE KEY") {
		t.Fatal("key written unencrypted despite a passphrase")
	}
	// openssl reads ours.
	out, err := exec.Command(openssl, "pkey", "-in", filepath.Join(dir, "k.pem"), "-passin", "pass:correct horse battery", "-noout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl cannot read our encrypted key: %v\n%s", err, out)
	}
	got, err := s.Load(ref)
	if err != nil || !got.(*ecdsa.PrivateKey).Equal(ec) {
		t.Fatalf("Load: %v", err)
	}
	if _, err := (Source{Dir: dir}).Load(ref); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("no passphrase: %v, want ErrPassphrase", err)
	}
	if _, err := (Source{Dir: dir, Passphrase: []byte("wrong")}).Load(ref); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v, want ErrPassphrase", err)
	}
	// We read openssl's (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC).
	theirs := filepath.Join(dir, "theirs.pem")
	if out, err := exec.Command(openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes256", "-pass", "pass:correct horse battery", "-out", theirs).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	os.Chmod(theirs, 0o600)
	if k, err := s.Load("file:" + theirs); err != nil {
		t.Fatalf("loading openssl's encrypted key: %v", err)
	} else if _, ok := k.(*rsa.PrivateKey); !ok {
		t.Fatalf("got %T", k)
	}
	// A world-readable key file is refused.
	os.Chmod(theirs, 0o644)
	if _, err := s.Load("file:" + theirs); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable key: %v", err)
	}
}

// TestReadSecretFile: a secret's file others may read or write is refused;
// its group may read it (a systemd credential with its ACL shows 0440).
func TestReadSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o440, true}, {0o640, true}, {0o644, false}, {0o604, false}, {0o602, false}} {
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		b, err := ReadSecretFile(path)
		if c.ok && (err != nil || string(b) != "s3cret\n") || !c.ok && (err == nil || !strings.Contains(err.Error(), "open to other users")) {
			t.Errorf("mode %v: %q, %v", c.mode, b, err)
		}
	}
}
