package keys

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// Keys in the database ("db:ID" references): the PKCS#8 DER of the key,
// sealed with AES-256-GCM under a key derived from the passphrase by the
// same PBKDF2-HMAC-SHA256 (and iteration count) as encrypted key files,
// with a random salt per key. The ID is the associated data: a sealed key
// copied into another row does not open there.
const (
	sealKDF    = "pbkdf2-hmac-sha256"
	sealCipher = "aes-256-gcm"
)

// Vault is where sealed keys are kept (the store).
type Vault interface {
	PutKey(ctx context.Context, k store.SealedKey) error
	GetKey(ctx context.Context, id string) (store.SealedKey, error)
	DeleteKey(ctx context.Context, id string) error
}

// ErrNoPassphrase is returned when a key in the database is to be sealed
// or opened and no passphrase was given.
var ErrNoPassphrase = errors.New("keys: keys in the database need the passphrase they are sealed under: set SCEPD_KEY_PASSPHRASE or SCEPD_KEY_PASSPHRASE_FILE")

// DBRef is the reference of the sealed key id.
func DBRef(id string) string { return "db:" + id }

// ParseDBRef returns the ID of a "db:" reference.
func ParseDBRef(ref string) (string, bool) {
	id, ok := strings.CutPrefix(ref, "db:")
	return id, ok && id != ""
}

// Seal seals key under passphrase as sealed key id.
func Seal(id string, key crypto.Signer, passphrase []byte, now time.Time) (store.SealedKey, error) {
	if len(passphrase) == 0 {
		return store.SealedKey{}, ErrNoPassphrase
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return store.SealedKey{}, fmt.Errorf("keys: marshal: %w", err)
	}
	k := store.SealedKey{ID: id, KDF: sealKDF, Iterations: pbkdf2Iterations, Salt: make([]byte, 16), Cipher: sealCipher, Created: now}
	if _, err := rand.Read(k.Salt); err != nil {
		return store.SealedKey{}, err
	}
	aead, err := sealAEAD(k, passphrase)
	if err != nil {
		return store.SealedKey{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return store.SealedKey{}, err
	}
	k.Sealed = aead.Seal(nonce, nonce, der, sealAD(id))
	return k, nil
}

// Unseal opens a sealed key with passphrase.
func Unseal(k store.SealedKey, passphrase []byte) (crypto.Signer, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w (key %s)", ErrNoPassphrase, DBRef(k.ID))
	}
	if k.KDF != sealKDF || k.Cipher != sealCipher || k.Iterations < 1 || k.Iterations > 10_000_000 {
		return nil, fmt.Errorf("keys: key %s is sealed with %s/%s (%d iterations), which this scepd does not know", DBRef(k.ID), k.KDF, k.Cipher, k.Iterations)
	}
	aead, err := sealAEAD(k, passphrase)
	if err != nil {
		return nil, err
	}
	if len(k.Sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("keys: key %s: sealed data too short", DBRef(k.ID))
	}
	der, err := aead.Open(nil, k.Sealed[:aead.NonceSize()], k.Sealed[aead.NonceSize():], sealAD(k.ID))
	if err != nil {
		return nil, fmt.Errorf("%w: key %s does not open with SCEPD_KEY_PASSPHRASE (or it was altered)", ErrPassphrase, DBRef(k.ID))
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: key %s: %w", DBRef(k.ID), err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: key %s: %T is not a signing key", DBRef(k.ID), key)
	}
	return s, nil
}

func sealAEAD(k store.SealedKey, passphrase []byte) (cipher.AEAD, error) {
	kek, err := pbkdf2.Key(sha256.New, string(passphrase), k.Salt, k.Iterations, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealAD(id string) []byte { return []byte("scepd sealed key\x00" + id) }
