package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo with PBES2, RFC 8018):
// the format `openssl pkey -aes256` writes and reads, so operators can
// handle scepd's key files with standard tools.
var (
	oidPBES2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1      = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES128CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	pbkdf2Iterations = 600_000 // OWASP 2023 for PBKDF2-HMAC-SHA256
)

// ErrPassphrase is returned when an encrypted key cannot be decrypted with
// the passphrase given (or none was given).
var ErrPassphrase = errors.New("keys: wrong or missing passphrase for an encrypted key")

// encryptPKCS8 wraps a PKCS#8 DER key with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC).
func encryptPKCS8(der, passphrase []byte) ([]byte, error) {
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(sha256.New, string(passphrase), salt, pbkdf2Iterations, 32)
	if err != nil {
		return nil, err
	}
	block, _ := aes.NewCipher(key)
	pad := aes.BlockSize - len(der)%aes.BlockSize
	buf := make([]byte, len(der)+pad)
	copy(buf, der)
	for i := len(der); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidPBES2)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidPBKDF2)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1OctetString(salt)
						b.AddASN1Int64(int64(pbkdf2Iterations))
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidHMACSHA256)
							b.AddASN1NULL()
						})
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidAES256CBC)
					b.AddASN1OctetString(iv)
				})
			})
		})
		b.AddASN1OctetString(buf)
	})
	return b.Bytes()
}

// decryptPKCS8 unwraps an EncryptedPrivateKeyInfo using PBES2 with
// PBKDF2 (HMAC-SHA1 or HMAC-SHA256) and AES-CBC.
func decryptPKCS8(der, passphrase []byte) ([]byte, error) {
	in := cryptobyte.String(der)
	var epki, alg, params, kdf, kdfParams, enc, data cryptobyte.String
	var oid, kdfOID, encOID asn1.ObjectIdentifier
	if !in.ReadASN1(&epki, cbasn1.SEQUENCE) || !epki.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) ||
		!epki.ReadASN1(&data, cbasn1.OCTET_STRING) {
		return nil, errors.New("keys: malformed EncryptedPrivateKeyInfo")
	}
	if !oid.Equal(oidPBES2) {
		return nil, fmt.Errorf("keys: key encryption %s is not supported (want PBES2, e.g. openssl pkey -aes256)", oid)
	}
	if !alg.ReadASN1(&params, cbasn1.SEQUENCE) || !params.ReadASN1(&kdf, cbasn1.SEQUENCE) || !kdf.ReadASN1ObjectIdentifier(&kdfOID) ||
		!kdf.ReadASN1(&kdfParams, cbasn1.SEQUENCE) || !params.ReadASN1(&enc, cbasn1.SEQUENCE) || !enc.ReadASN1ObjectIdentifier(&encOID) {
		return nil, errors.New("keys: malformed PBES2 parameters")
	}
	if !kdfOID.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("keys: key derivation %s is not supported (want PBKDF2)", kdfOID)
	}
	var salt cryptobyte.String
	var iter int64
	if !kdfParams.ReadASN1(&salt, cbasn1.OCTET_STRING) || !kdfParams.ReadASN1Int64WithTag(&iter, cbasn1.INTEGER) || iter < 1 || iter > 10_000_000 {
		return nil, errors.New("keys: malformed PBKDF2 parameters")
	}
	var keyLen int64
	if kdfParams.PeekASN1Tag(cbasn1.INTEGER) && !kdfParams.ReadASN1Int64WithTag(&keyLen, cbasn1.INTEGER) {
		return nil, errors.New("keys: malformed PBKDF2 key length")
	}
	prf := func() hash.Hash { return sha1.New() } // the RFC 8018 default
	if !kdfParams.Empty() {
		var prfAlg cryptobyte.String
		var prfOID asn1.ObjectIdentifier
		if !kdfParams.ReadASN1(&prfAlg, cbasn1.SEQUENCE) || !prfAlg.ReadASN1ObjectIdentifier(&prfOID) {
			return nil, errors.New("keys: malformed PBKDF2 PRF")
		}
		switch {
		case prfOID.Equal(oidHMACSHA256):
			prf = sha256.New
		case prfOID.Equal(oidHMACSHA1):
		default:
			return nil, fmt.Errorf("keys: PBKDF2 PRF %s is not supported", prfOID)
		}
	}
	var size int
	switch {
	case encOID.Equal(oidAES128CBC):
		size = 16
	case encOID.Equal(oidAES192CBC):
		size = 24
	case encOID.Equal(oidAES256CBC):
		size = 32
	default:
		return nil, fmt.Errorf("keys: key cipher %s is not supported (want AES-CBC)", encOID)
	}
	var iv cryptobyte.String
	if !enc.ReadASN1(&iv, cbasn1.OCTET_STRING) || len(iv) != aes.BlockSize {
		return nil, errors.New("keys: malformed AES IV")
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, ErrPassphrase
	}
	key, err := pbkdf2.Key(prf, string(passphrase), salt, int(iter), size)
	if err != nil {
		return nil, err
	}
	block, _ := aes.NewCipher(key)
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	n := int(out[len(out)-1])
	if n < 1 || n > aes.BlockSize {
		return nil, ErrPassphrase
	}
	pad := make([]byte, n)
	for i := range pad {
		pad[i] = byte(n)
	}
	if subtle.ConstantTimeCompare(out[len(out)-n:], pad) != 1 {
		return nil, ErrPassphrase
	}
	return out[:len(out)-n], nil
}
