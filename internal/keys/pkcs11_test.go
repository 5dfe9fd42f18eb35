//go:build pkcs11

package keys_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestToken generates RSA and ECDSA keys in a SoftHSM2 token, uses them,
// finds them again after reopening the token, and deletes them.
func TestToken(t *testing.T) {
	h := sceptest.NewSoftHSM(t)
	t.Setenv("SOFTHSM2_CONF", h.Conf)
	open := func() keys.Source {
		tok, err := keys.OpenToken(keys.TokenConfig{Module: h.Module, Label: h.Label, PIN: h.PIN})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tok.Close() })
		return keys.Source{Dir: t.TempDir(), Token: tok}
	}
	if _, err := keys.OpenToken(keys.TokenConfig{Module: h.Module, Label: h.Label, PIN: "wrong"}); err == nil {
		t.Fatal("a wrong PIN opened the token")
	}
	ks := open()
	rsaKey, rsaRef, err := ks.Generate("profiles/default/ra-1", keys.Algorithm{RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	ecKey, ecRef, err := ks.Generate("ca/default-1", keys.Algorithm{Curve: elliptic.P256()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rsaRef, "pkcs11:object=") || !strings.HasPrefix(ecRef, "pkcs11:object=") {
		t.Fatalf("refs %q %q", rsaRef, ecRef)
	}
	if files, _ := filepath.Glob(filepath.Join(ks.Dir, "*", "*")); len(files) != 0 {
		t.Fatalf("token keys were written to files: %v", files)
	}
	digest := sha256.Sum256([]byte("to be signed"))
	sig, err := ecKey.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(ecKey.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatalf("ECDSA signature: %v", err)
	}
	sig, err = rsaKey.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil || rsa.VerifyPKCS1v15(rsaKey.Public().(*rsa.PublicKey), crypto.SHA256, digest[:], sig) != nil {
		t.Fatalf("RSA signature: %v", err)
	}
	dec, ok := rsaKey.(crypto.Decrypter)
	if !ok {
		t.Fatal("the token's RSA key is not a crypto.Decrypter")
	}
	cek := bytes.Repeat([]byte{9}, 32)
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, rsaKey.Public().(*rsa.PublicKey), cek)
	if got, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil || !bytes.Equal(got, cek) {
		t.Fatalf("key unwrap in the token: %x %v", got, err)
	}
	ct[20] ^= 1
	if got, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil || len(got) != 32 || bytes.Equal(got, cek) {
		t.Fatalf("a bad envelope must give a random key and no error: %x %v", got, err)
	}

	// A new session finds both by reference, with the same public keys.
	again := open()
	for ref, want := range map[string]crypto.PublicKey{rsaRef: rsaKey.Public(), ecRef: ecKey.Public()} {
		k, err := again.Load(ref)
		if err != nil {
			t.Fatal(err)
		}
		if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(want) {
			t.Fatalf("%s loaded another key", ref)
		}
	}
	again.Remove(ecRef)
	if _, err := again.Load(ecRef); err == nil {
		t.Fatal("a removed key still loads")
	}
	if _, err := (keys.Source{}).Load(rsaRef); err == nil || !strings.Contains(err.Error(), "SCEPD_PKCS11_MODULE") {
		t.Fatalf("a token reference without a token: %v", err)
	}
}
