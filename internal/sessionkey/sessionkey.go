// Package sessionkey gives RSA keys that live outside crypto/rsa (a
// PKCS#11 token, OpenSSL) the session-key mode of PKCS#1 v1.5 decryption
// that crypto/rsa has (RFC 3218 §2.3.2): when unwrapping fails, or yields a
// key of the wrong length, the caller gets a random key of the length it
// asked for and no error, so a bad envelope fails later exactly like a bad
// content padding does and the client cannot tell them apart.
package sessionkey

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"io"
)

// Wrap returns k with session-key decryption when k is an RSA
// crypto.Decrypter; other keys are returned unchanged. k's own Decrypt is
// then only asked for plain PKCS#1 v1.5 (and whatever other options the
// caller passes through, such as OAEP).
func Wrap(k crypto.Signer) crypto.Signer {
	d, ok := k.(crypto.Decrypter)
	if _, isRSA := k.Public().(*rsa.PublicKey); !ok || !isRSA {
		return k
	}
	return key{Signer: k, inner: d}
}

type key struct {
	crypto.Signer
	inner crypto.Decrypter
}

func (k key) Decrypt(random io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o, ok := opts.(*rsa.PKCS1v15DecryptOptions)
	if !ok || o == nil || o.SessionKeyLen == 0 {
		return k.inner.Decrypt(random, ciphertext, opts)
	}
	session := make([]byte, o.SessionKeyLen)
	if _, err := io.ReadFull(rand.Reader, session); err != nil {
		return nil, err
	}
	pt, err := k.inner.Decrypt(random, ciphertext, &rsa.PKCS1v15DecryptOptions{})
	good := 0
	if err == nil {
		good = subtle.ConstantTimeEq(int32(len(pt)), int32(len(session)))
	}
	// Select without branching on the outcome: both slices are the same
	// length whatever the unwrap gave.
	got := make([]byte, len(session))
	copy(got, pt)
	subtle.ConstantTimeCopy(good, session, got)
	clear(got)
	clear(pt)
	return session, nil
}
