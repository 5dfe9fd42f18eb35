//go:build openssl && cgo

package ossl

/*
#cgo LDFLAGS: -lcrypto
#include <stdlib.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/err.h>
#include <openssl/x509.h>

static EVP_PKEY *scepd_load(const unsigned char *der, long len) {
	const unsigned char *p = der;
	EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, len);
	ERR_clear_error();
	return k;
}

static const EVP_MD *scepd_md(int bits) {
	switch (bits) {
	case 1: return EVP_sha1();
	case 224: return EVP_sha224();
	case 256: return EVP_sha256();
	case 384: return EVP_sha384();
	case 512: return EVP_sha512();
	}
	return NULL;
}

// scepd_sign signs a digest: PKCS#1 v1.5 for RSA (rsa != 0), ECDSA
// otherwise. Returns the signature length, or -1.
static int scepd_sign(EVP_PKEY *k, int rsa, int mdbits, const unsigned char *dgst, size_t dlen, unsigned char *sig, size_t siglen) {
	int ret = -1;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
	if (ctx == NULL) goto out;
	if (EVP_PKEY_sign_init(ctx) <= 0) goto out;
	if (rsa && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0) goto out;
	if (mdbits != 0) {
		const EVP_MD *md = scepd_md(mdbits);
		if (md == NULL || EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0) goto out;
	}
	if (EVP_PKEY_sign(ctx, sig, &siglen, dgst, dlen) <= 0) goto out;
	ret = (int)siglen;
out:
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}

// scepd_decrypt decrypts with PKCS#1 v1.5 (oaep == 0) or OAEP with SHA-1.
// Returns the plaintext length, or -1. The error queue is cleared on
// every path so failures leave nothing behind.
static int scepd_decrypt(EVP_PKEY *k, int oaep, const unsigned char *in, size_t inlen, unsigned char *out, size_t outlen) {
	int ret = -1;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
	if (ctx == NULL) goto done;
	if (EVP_PKEY_decrypt_init(ctx) <= 0) goto done;
	if (EVP_PKEY_CTX_set_rsa_padding(ctx, oaep ? RSA_PKCS1_OAEP_PADDING : RSA_PKCS1_PADDING) <= 0) goto done;
	if (oaep && (EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha1()) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha1()) <= 0)) goto done;
	if (EVP_PKEY_decrypt(ctx, out, &outlen, in, inlen) <= 0) goto done;
	ret = (int)outlen;
done:
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}
*/
import "C"

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"

	"github.com/scepd/scepd/internal/sessionkey"
)

// Available reports whether this build has the OpenSSL engine.
const Available = true

// key is a private key held by OpenSSL.
type key struct {
	pkey *C.EVP_PKEY
	pub  crypto.PublicKey
	rsa  bool
	size int // EVP_PKEY_get_size: signature bound / RSA modulus bytes
}

// Wrap hands k to OpenSSL and returns a signer (for RSA also a decrypter)
// backed by it. k itself is not kept: drop it after Wrap. RSA and ECDSA
// keys are supported; others are returned unchanged.
func Wrap(k crypto.Signer) (crypto.Signer, error) {
	var isRSA bool
	switch k.Public().(type) {
	case *rsa.PublicKey:
		isRSA = true
	case *ecdsa.PublicKey:
	default:
		return k, nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("ossl: %w", err)
	}
	cder := C.CBytes(der)
	clear(der)
	pkey := C.scepd_load((*C.uchar)(cder), C.long(len(der)))
	C.OPENSSL_cleanse(cder, C.size_t(len(der)))
	C.free(cder)
	if pkey == nil {
		return nil, errors.New("ossl: OpenSSL could not load the key")
	}
	// OpenSSL's own bound on a signature or plaintext of this key.
	size := int(C.EVP_PKEY_get_size(pkey))
	if size <= 0 {
		C.EVP_PKEY_free(pkey)
		return nil, errors.New("ossl: OpenSSL reports no size for the key")
	}
	w := &key{pkey: pkey, pub: k.Public(), rsa: isRSA, size: size}
	runtime.AddCleanup(w, func(p *C.EVP_PKEY) { C.EVP_PKEY_free(p) }, pkey)
	if isRSA {
		// OpenSSL 3.0 has no implicit rejection: session-key mode is added
		// around the plain decryption, as for every key outside crypto/rsa.
		return sessionkey.Wrap(rsaKey{w}), nil
	}
	return w, nil
}

func (k *key) Public() crypto.PublicKey { return k.pub }

// Sign signs a digest: PKCS#1 v1.5 for RSA, ASN.1 ECDSA for EC keys.
func (k *key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, errors.New("ossl: RSA-PSS is not supported")
	}
	h := opts.HashFunc()
	bits := 0
	switch h {
	case crypto.SHA1:
		bits = 1
	case crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		bits = h.Size() * 8
	case 0:
	default:
		return nil, fmt.Errorf("ossl: hash %v is not supported", h)
	}
	if h != 0 && len(digest) != h.Size() {
		return nil, errors.New("ossl: digest length does not match the hash")
	}
	if !k.rsa {
		bits = 0 // ECDSA signs the digest as given
	}
	sig := make([]byte, k.size)
	n := C.scepd_sign(k.pkey, boolInt(k.rsa), C.int(bits), cbytes(digest), C.size_t(len(digest)), cbytes(sig), C.size_t(len(sig)))
	runtime.KeepAlive(k)
	if n < 0 {
		return nil, errors.New("ossl: signing failed")
	}
	return sig[:n], nil
}

// rsaKey adds decryption to an RSA key.
type rsaKey struct{ *key }

// Decrypt decrypts plain PKCS#1 v1.5 or RSA-OAEP with SHA-1. Session-key
// mode is sessionkey's (Wrap returns the key wrapped in it).
func (k rsaKey) Decrypt(_ io.Reader, ct []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	oaep := 0
	switch o := opts.(type) {
	case *rsa.OAEPOptions:
		if o.Hash != crypto.SHA1 || len(o.Label) > 0 {
			return nil, errors.New("ossl: only RSA-OAEP with SHA-1 and no label is supported")
		}
		oaep = 1
	case *rsa.PKCS1v15DecryptOptions:
		if o != nil && o.SessionKeyLen != 0 {
			return nil, errors.New("ossl: session-key mode is sessionkey.Wrap's")
		}
	case nil:
	default:
		return nil, fmt.Errorf("ossl: decryption options %T are not supported", opts)
	}
	out := make([]byte, k.size)
	n := C.scepd_decrypt(k.pkey, C.int(oaep), cbytes(ct), C.size_t(len(ct)), cbytes(out), C.size_t(len(out)))
	runtime.KeepAlive(k.key)
	if n < 0 {
		return nil, rsa.ErrDecryption
	}
	return out[:n], nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// cbytes points C at a Go slice for the duration of a call (cgo rules
// allow passing Go memory without Go pointers inside).
func cbytes(b []byte) *C.uchar {
	if len(b) == 0 {
		return nil
	}
	return (*C.uchar)(unsafe.Pointer(&b[0]))
}
