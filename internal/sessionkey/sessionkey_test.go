package sessionkey

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// TestWrap: a good unwrap gives the key; a bad one, or one
// of the wrong length, gives a random key of the asked length and no error,
// as crypto/rsa's session-key mode does.
func TestWrap(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	d := Wrap(priv).(crypto.Decrypter)
	cek := bytes.Repeat([]byte{0x42}, 16)
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &priv.PublicKey, cek)
	got, err := d.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
	if err != nil || !bytes.Equal(got, cek) {
		t.Fatalf("good envelope: %x %v", got, err)
	}
	bad := bytes.Clone(ct)
	bad[10] ^= 0xff
	got, err = d.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
	if err != nil || len(got) != 16 || bytes.Equal(got, cek) {
		t.Fatalf("bad envelope: %x %v; want 16 random bytes and no error", got, err)
	}
	got, err = d.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32})
	if err != nil || len(got) != 32 {
		t.Fatalf("wrong key length: %x %v; want 32 random bytes and no error", got, err)
	}
	if _, err := d.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{}); err == nil {
		t.Fatal("without SessionKeyLen a bad envelope must be an error")
	}
}
