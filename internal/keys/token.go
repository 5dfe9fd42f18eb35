package keys

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"io"
	"net/url"
	"strings"
)

// TokenConfig names a PKCS#11 token (an HSM, or SoftHSM2 for tests).
type TokenConfig struct {
	// Module is the path of the vendor's PKCS#11 library.
	Module string
	// Label is the token's label.
	Label string
	// PIN is the user PIN (from the environment or a file, never a flag).
	PIN string
}

// ErrNoPKCS11 is returned when a token is configured or referenced but this
// binary was built without PKCS#11 support (it needs cgo: go build -tags pkcs11).
var ErrNoPKCS11 = errors.New("keys: this scepd was built without PKCS#11 support (build with -tags pkcs11)")

// Algorithm describes a key to generate: RSA of RSABits, or ECDSA on Curve.
type Algorithm struct {
	RSABits int
	Curve   elliptic.Curve
}

// tokenRef is the key reference of a token object: an RFC 7512 style URI
// naming the object by label ("pkcs11:object=ca%2Fdefault-1a2b").
func tokenRef(label string) string { return "pkcs11:object=" + url.PathEscape(label) }

// parseTokenRef returns the object label of a "pkcs11:" reference.
func parseTokenRef(ref string) (string, bool) {
	rest, ok := strings.CutPrefix(ref, "pkcs11:")
	if !ok {
		return "", false
	}
	for attr := range strings.SplitSeq(rest, ";") {
		if v, ok := strings.CutPrefix(attr, "object="); ok {
			label, err := url.PathUnescape(v)
			return label, err == nil && label != ""
		}
	}
	return "", false
}

// sessionKeyDecrypter gives a token's RSA key the session-key mode of
// PKCS#1 v1.5 decryption that crypto/rsa offers (RFC 3218 §2.3.2): when
// unwrapping fails, or yields a key of the wrong length, the caller gets a
// random key of the expected length and no error, so a bad envelope fails
// later exactly like a bad content padding does. PKCS#11 libraries do not
// implement this themselves.
type sessionKeyDecrypter struct {
	crypto.Decrypter
}

func (d sessionKeyDecrypter) Decrypt(random io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o, ok := opts.(*rsa.PKCS1v15DecryptOptions)
	if !ok || o.SessionKeyLen == 0 {
		return d.Decrypter.Decrypt(random, ciphertext, opts)
	}
	key := make([]byte, o.SessionKeyLen)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, err
	}
	pt, err := d.Decrypter.Decrypt(random, ciphertext, &rsa.PKCS1v15DecryptOptions{})
	good := 0
	if err == nil {
		good = subtle.ConstantTimeEq(int32(len(pt)), int32(len(key)))
	}
	if good == 1 {
		subtle.ConstantTimeCopy(1, key, pt)
	}
	return key, nil
}

// tokenSigner is a token key: a crypto.Signer, and for RSA a
// crypto.Decrypter in session-key mode.
type tokenSigner struct {
	crypto.Signer
	dec sessionKeyDecrypter
}

func (t tokenSigner) Decrypt(random io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if t.dec.Decrypter == nil {
		return nil, errors.New("keys: this token key cannot decrypt")
	}
	return t.dec.Decrypt(random, ciphertext, opts)
}

// wrapTokenKey adapts a token key to what scepd needs from a key.
func wrapTokenKey(s crypto.Signer) crypto.Signer {
	t := tokenSigner{Signer: s}
	if d, ok := s.(crypto.Decrypter); ok {
		if _, isRSA := s.Public().(*rsa.PublicKey); isRSA {
			t.dec = sessionKeyDecrypter{d}
			return t
		}
	}
	return s
}
