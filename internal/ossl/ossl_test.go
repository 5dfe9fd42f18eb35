//go:build openssl && cgo

package ossl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"sync"
	"testing"
)

// TestRSA: signatures verify with crypto/rsa for every hash scepd uses;
// PKCS#1 v1.5 and OAEP decryption give the plaintext; in session-key mode
// a bad envelope gives a random key of the asked length and no error, like
// crypto/rsa; all of it concurrently (run with -race).
func TestRSA(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := Wrap(priv)
	if err != nil {
		t.Fatal(err)
	}
	dec, ok := k.(crypto.Decrypter)
	if !ok {
		t.Fatal("an RSA key must decrypt")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				d := h.New()
				d.Write([]byte("CertRep"))
				digest := d.Sum(nil)
				sig, err := k.Sign(rand.Reader, digest, h)
				if err != nil || rsa.VerifyPKCS1v15(&priv.PublicKey, h, digest, sig) != nil {
					t.Errorf("%v signature: %v", h, err)
				}
			}
			cek := make([]byte, 32)
			rand.Read(cek)
			ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &priv.PublicKey, cek)
			if got, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil || !bytes.Equal(got, cek) {
				t.Errorf("session-key decryption: %x %v", got, err)
			}
			if got, err := dec.Decrypt(rand.Reader, ct, nil); err != nil || !bytes.Equal(got, cek) {
				t.Errorf("plain PKCS#1 v1.5 decryption: %x %v", got, err)
			}
			bad := bytes.Clone(ct)
			bad[len(bad)/2] ^= 0x40
			if got, err := dec.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil || len(got) != 32 || bytes.Equal(got, cek) {
				t.Errorf("a bad envelope must give 32 random bytes and no error: %x %v", got, err)
			}
			if got, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}); err != nil || len(got) != 16 {
				t.Errorf("a key of the wrong length must give 16 random bytes and no error: %x %v", got, err)
			}
			if _, err := dec.Decrypt(rand.Reader, bad, nil); err == nil {
				t.Error("a bad envelope without session-key mode must fail")
			}
			oaep, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, &priv.PublicKey, cek, nil)
			if got, err := dec.Decrypt(rand.Reader, oaep, &rsa.OAEPOptions{Hash: crypto.SHA1}); err != nil || !bytes.Equal(got, cek) {
				t.Errorf("OAEP decryption: %x %v", got, err)
			}
		}()
	}
	wg.Wait()
	if _, err := k.Sign(rand.Reader, make([]byte, 20), crypto.SHA256); err == nil {
		t.Error("a digest of the wrong length was signed")
	}
	if _, err := k.Sign(rand.Reader, make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256}); err == nil {
		t.Error("PSS was accepted although it is not implemented")
	}
}

func TestECDSA(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		priv, _ := ecdsa.GenerateKey(c, rand.Reader)
		k, err := Wrap(priv)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := k.(crypto.Decrypter); ok {
			t.Error("an EC key claims to decrypt")
		}
		d256 := sha256.Sum256([]byte("certificate"))
		d384 := sha512.Sum384([]byte("certificate"))
		for h, digest := range map[crypto.Hash][]byte{crypto.SHA256: d256[:], crypto.SHA384: d384[:]} {
			sig, err := k.Sign(rand.Reader, digest, h)
			if err != nil || !ecdsa.VerifyASN1(&priv.PublicKey, digest, sig) {
				t.Errorf("%s %v: %v", c.Params().Name, h, err)
			}
		}
	}
}

// BenchmarkFloor compares the private-key operations of one enrollment
// (an RSA-2048 unwrap and two RSA-2048 signatures) in Go and in OpenSSL.
func BenchmarkFloor(b *testing.B) {
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrapped, _ := Wrap(priv)
	digest := sha256.Sum256([]byte("x"))
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &priv.PublicKey, make([]byte, 32))
	for name, k := range map[string]crypto.Signer{"go": priv, "openssl": wrapped} {
		b.Run(name, func(b *testing.B) {
			dec := k.(crypto.Decrypter)
			for b.Loop() {
				dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32})
				k.Sign(rand.Reader, digest[:], crypto.SHA256)
				k.Sign(rand.Reader, digest[:], crypto.SHA256)
			}
		})
	}
}
