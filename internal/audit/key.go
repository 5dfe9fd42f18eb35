// Package audit keeps the audit log honest: the key that chains it (an
// HMAC, so that nobody with only database access can rewrite an event
// and recompute the hashes after it), the marker from which an older,
// unkeyed log is keyed, and signed checkpoints (count and head hash)
// that let a copy kept elsewhere show events cut from the end.
//
// The hash computation itself lives in store (LinkAudit, ChainVerifier):
// one place, called by every backend.
package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/store"
)

// DefaultKeyFile is the audit key's file name in the data directory.
const DefaultKeyFile = "audit.key"

// Key is the audit key: an Ed25519 private key that signs checkpoints,
// from whose seed the HMAC key of the chain is derived (HKDF-SHA256), so
// that one file, kept like the CA keys, is all a replica needs.
type Key struct {
	signer ed25519.PrivateKey
	chain  []byte
	// Path is the key file; empty for a key in the database.
	Path string
}

// Where says where the key is: its file, or "db:audit".
func (k *Key) Where() string {
	if k.Path == "" {
		return keys.DBRef(SealedKeyID)
	}
	return k.Path
}

// SealedKeyID is the audit key's ID among the keys sealed in the database.
const SealedKeyID = "audit"

// LoadSealedKey reads the audit key from the database, opening it with
// passphrase. None there is an error satisfying errors.Is(err,
// store.ErrNotFound).
func LoadSealedKey(ctx context.Context, v keys.Vault, passphrase []byte) (*Key, error) {
	sealed, err := v.GetKey(ctx, SealedKeyID)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	k, err := keys.Unseal(sealed, passphrase)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit key %s: a %T, want an Ed25519 key", keys.DBRef(SealedKeyID), k)
	}
	return newKey(priv, "")
}

// LoadOrCreateSealedKey loads the audit key from the database, sealing a
// new one there first when there is none. Replicas starting together end
// up with the same key: the insert of all but the first fails, and they
// read the first one's.
func LoadOrCreateSealedKey(ctx context.Context, v keys.Vault, passphrase []byte) (k *Key, created bool, err error) {
	k, err = LoadSealedKey(ctx, v, passphrase)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return k, false, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	sealed, err := keys.Seal(SealedKeyID, priv, passphrase, time.Now())
	if err != nil {
		return nil, false, fmt.Errorf("audit key: %w", err)
	}
	switch err := v.PutKey(ctx, sealed); {
	case err == nil:
		created = true
	case !errors.Is(err, store.ErrConflict):
		return nil, false, fmt.Errorf("audit key: %w", err)
	}
	k, err = LoadSealedKey(ctx, v, passphrase)
	return k, created, err
}

func newKey(priv ed25519.PrivateKey, path string) (*Key, error) {
	chain, err := hkdf.Key(sha256.New, priv.Seed(), nil, "scepd audit chain hmac-sha256", 32)
	if err != nil {
		return nil, err
	}
	return &Key{signer: priv, chain: chain, Path: path}, nil
}

// Chain returns the HMAC key of the audit chain.
func (k *Key) Chain() []byte { return k.chain }

// Public returns the public key that checks checkpoints.
func (k *Key) Public() ed25519.PublicKey { return k.signer.Public().(ed25519.PublicKey) }

// ID names the key: the first 8 bytes of the SHA-256 of its public key, in hex.
func (k *Key) ID() string { return KeyID(k.Public()) }

// KeyID names a public key the way Key.ID does.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// LoadKey reads the audit key at path (relative to dir unless absolute),
// decrypting it with passphrase when it is encrypted. A missing file is
// an error satisfying errors.Is(err, fs.ErrNotExist).
func LoadKey(dir, path string, passphrase []byte) (*Key, error) {
	path = abs(dir, path)
	k, err := source(passphrase).Load("file:" + path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit key %s: a %T, want an Ed25519 key", path, k)
	}
	return newKey(priv, path)
}

// LoadOrCreateKey loads the audit key at path, generating it first when
// there is none (encrypted with passphrase when one is given, mode 0600).
// Replicas starting together on a shared directory end up with the same
// key: the file is created by a hard link, which fails when another
// process created it first, and every process then reads what is there.
func LoadOrCreateKey(dir, path string, passphrase []byte) (k *Key, created bool, err error) {
	k, err = LoadKey(dir, path, passphrase)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	path = abs(dir, path)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	var nonce [6]byte
	rand.Read(nonce[:])
	tmp := path + ".new-" + hex.EncodeToString(nonce[:])
	if _, err := source(passphrase).Save(tmp, priv); err != nil {
		return nil, false, fmt.Errorf("audit key: %w", err)
	}
	defer os.Remove(tmp)
	switch err := os.Link(tmp, path); {
	case err == nil:
		created = true
	case errors.Is(err, fs.ErrExist):
	default:
		// A filesystem without hard links: create the file exclusively
		// and copy (a crash mid-copy leaves a file that does not parse,
		// which the next start reports).
		switch err := copyExclusive(tmp, path); {
		case err == nil:
			created = true
		case !errors.Is(err, fs.ErrExist):
			return nil, false, fmt.Errorf("audit key: %w", err)
		}
	}
	k, err = LoadKey(dir, path, passphrase)
	return k, created, err
}

// copyExclusive copies from to a new file to, mode 0600; fs.ErrExist
// when to exists.
func copyExclusive(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func source(passphrase []byte) keys.Source {
	// No engine, no token: the seed is needed to derive the chain key.
	return keys.Source{Passphrase: passphrase}
}

func abs(dir, path string) string {
	if path == "" {
		path = DefaultKeyFile
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	// Absolute, so that a path made here can be handed back (LoadKey after
	// creating) without being joined to a relative dir a second time.
	if a, err := filepath.Abs(path); err == nil {
		path = a
	}
	return path
}
