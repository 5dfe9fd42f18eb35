// Package keys loads and stores private keys. A key is named by a
// reference: "file:PATH" for a PEM file (PATH relative to the data
// directory unless absolute), encrypted at rest (PKCS#8 PBES2, AES-256)
// when the operator gives a passphrase; "db:ID" for a key sealed under the
// passphrase in the database (see Seal), so that replicas share keys
// through the database alone; or "pkcs11:object=LABEL" for a key pair in a
// PKCS#11 token (binaries built with -tags pkcs11).
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Source resolves key references relative to a base directory.
type Source struct {
	Dir string
	// Passphrase encrypts keys written by Save and decrypts encrypted keys
	// on Load. Empty: keys are written unencrypted (mode 0600), and an
	// encrypted key cannot be loaded.
	Passphrase []byte
	// Token, when set, is where Generate makes new keys; keys it holds are
	// loaded by reference and never leave it.
	Token *Token
	// Engine, when set, takes over file keys as they are loaded or
	// generated (the OpenSSL engine: the key is handed to libcrypto once
	// and the returned signer works there).
	Engine func(crypto.Signer) (crypto.Signer, error)
	// DB, when set, holds the keys "db:" references name, sealed under
	// Passphrase.
	DB Vault
	// InDB: Save (and so Generate without a token) seals new keys into DB
	// instead of writing files.
	InDB bool
}

// Where says where new keys go, for the log.
func (s Source) Where() string {
	switch {
	case s.Token != nil:
		return "PKCS#11 token"
	case s.InDB:
		return "database (sealed)"
	}
	return "files"
}

// engine hands k to the source's engine, if any.
func (s Source) engine(k crypto.Signer) (crypto.Signer, error) {
	if s.Engine == nil {
		return k, nil
	}
	w, err := s.Engine(k)
	if err != nil {
		return nil, fmt.Errorf("keys: crypto engine: %w", err)
	}
	return w, nil
}

// Generate makes a new key named name: in the token when the source has
// one (the private key never leaves it), else in memory, saved as a file
// by Save. It returns the key and its reference.
func (s Source) Generate(name string, alg Algorithm) (crypto.Signer, string, error) {
	if s.Token != nil {
		k, err := s.Token.generate(name, alg)
		if err != nil {
			return nil, "", err
		}
		return k, tokenRef(name), nil
	}
	k, err := alg.Generate()
	if err != nil {
		return nil, "", err
	}
	ref, err := s.Save(name, k)
	if err != nil {
		return nil, "", err
	}
	if k, err = s.engine(k); err != nil {
		s.Remove(ref)
		return nil, "", err
	}
	return k, ref, nil
}

// Generate makes a key of the algorithm in memory.
func (a Algorithm) Generate() (crypto.Signer, error) {
	switch {
	case a.RSABits > 0:
		return rsa.GenerateKey(rand.Reader, a.RSABits)
	case a.Curve != nil:
		return ecdsa.GenerateKey(a.Curve, rand.Reader)
	}
	return nil, errors.New("keys: no key algorithm given")
}

// Load returns the signer a reference names. A key file readable by group
// or others is refused: a private key must be private.
func (s Source) Load(ref string) (crypto.Signer, error) {
	if label, ok := parseTokenRef(ref); ok {
		if s.Token == nil {
			return nil, fmt.Errorf("keys: %s is in a PKCS#11 token but none is configured (SCEPD_PKCS11_MODULE, SCEPD_PKCS11_TOKEN, SCEPD_PKCS11_PIN)", ref)
		}
		return s.Token.find(label)
	}
	if id, ok := ParseDBRef(ref); ok {
		if s.DB == nil {
			return nil, fmt.Errorf("keys: %s is in the database, which this command does not open", ref)
		}
		sealed, err := s.DB.GetKey(context.Background(), id)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %w", ref, err)
		}
		k, err := Unseal(sealed, s.Passphrase)
		if err != nil {
			return nil, err
		}
		return s.engine(k)
	}
	path, err := s.path(ref)
	if err != nil {
		return nil, err
	}
	b, err := ReadPrivateFile(path)
	if err != nil {
		return nil, err
	}
	k, err := s.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return s.engine(k)
}

// ReadPrivateFile reads a private key file, refusing one readable by
// group or others: a private key must be private (mode 0600 or stricter).
func ReadPrivateFile(path string) ([]byte, error) {
	return readPrivate(path, 0o077, "is readable by others (mode %v); chmod 600 it")
}

// readPrivate reads path unless its mode has a bit of open set; why names
// the problem and its fix, given the mode.
func readPrivate(path string, open os.FileMode, why string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	// The mode of the file read, not of whatever the path named a moment
	// before.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if fi.Mode().Perm()&open != 0 {
		return nil, fmt.Errorf("keys: %s "+why, path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("keys: reading %s: %w", path, err)
	}
	return b, nil
}

// ReadSecretFile reads a file holding a secret (a passphrase, a PIN, a
// password), refusing one other users may read or write. Unlike
// ReadPrivateFile it accepts one its group may read: a systemd credential
// is mode 0400 with an ACL letting the service's user read it, which the
// mode shows as 0440.
func ReadSecretFile(path string) ([]byte, error) {
	return readPrivate(path, 0o007, "holds a secret and is open to other users (mode %v); chmod 600 it, or 640 for the group scepd runs in "+
		"(a Kubernetes secret volume: defaultMode 0440 with the pod's fsGroup; a Docker secret: its uid or gid and mode 0400 or 0440)")
}

// Parse parses a PEM key with the source's passphrase.
func (s Source) Parse(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block != nil && x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck // legacy "Proc-Type: 4,ENCRYPTED" keys exist in the field
		// Legacy OpenSSL encryption (weak, MD5-based key derivation): read
		// only, never written; an empty passphrase is tried when none is set.
		der, err := x509.DecryptPEMBlock(block, s.Passphrase) //nolint:staticcheck
		if err != nil {
			return nil, fmt.Errorf("%w: legacy encrypted PEM: %v", ErrPassphrase, err)
		}
		b = pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
	}
	if block != nil && block.Type == "ENCRYPTED PRIVATE KEY" {
		if len(s.Passphrase) == 0 {
			return nil, fmt.Errorf("%w: the key is encrypted and no passphrase was given (set SCEPD_KEY_PASSPHRASE or SCEPD_KEY_PASSPHRASE_FILE)", ErrPassphrase)
		}
		der, err := decryptPKCS8(block.Bytes, s.Passphrase)
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	return ParsePEM(b)
}

// Save stores key where the source keeps new keys and returns its
// reference: sealed in the database when InDB (the ID is name without a
// ".key" suffix), else as a file (see SaveFile).
func (s Source) Save(name string, key crypto.Signer) (string, error) {
	if !s.InDB {
		return s.SaveFile(name, key)
	}
	id := strings.TrimSuffix(name, ".key")
	sealed, err := Seal(id, key, s.Passphrase, time.Now())
	if err != nil {
		return "", err
	}
	if err := s.DB.PutKey(context.Background(), sealed); err != nil {
		return "", fmt.Errorf("keys: storing %s: %w", DBRef(id), err)
	}
	return DBRef(id), nil
}

// SaveFile writes key as PKCS#8 PEM with mode 0600 (atomically: a crash leaves
// the old file or the new one, never half of one) and returns its reference.
func (s Source) SaveFile(name string, key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("keys: marshal: %w", err)
	}
	block := &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	if len(s.Passphrase) > 0 {
		enc, err := encryptPKCS8(der, s.Passphrase)
		if err != nil {
			return "", fmt.Errorf("keys: encrypting: %w", err)
		}
		block = &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: enc}
	}
	ref := "file:" + name
	path, err := s.path(ref)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("keys: %w", err)
	}
	if err := WriteFile(path, pem.EncodeToMemory(block)); err != nil {
		return "", err
	}
	return ref, nil
}

// WriteFile writes a file only its owner may read (mode 0600) atomically:
// a new file in the same directory, renamed to path once written. A crash
// leaves the old file or the new one, never half of one; an existing
// file's looser mode is not kept. Anything at path but a regular file (a
// symlink, planted or /dev/stdout; a device) is refused: following it
// would write where path does not say, replacing it would remove it.
func WriteFile(path string, b []byte) error {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("keys: %s is not a regular file (%v): not written; remove it or choose another path", path, fi.Mode().Type())
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}

// Path returns the file a "file:" reference names.
func (s Source) Path(ref string) (string, error) { return s.path(ref) }

// Remove deletes the key a reference names (best effort: used to clean up
// a key whose database row was never written).
func (s Source) Remove(ref string) {
	if label, ok := parseTokenRef(ref); ok {
		if s.Token != nil {
			s.Token.remove(label)
		}
		return
	}
	if id, ok := ParseDBRef(ref); ok {
		if s.DB != nil {
			s.DB.DeleteKey(context.Background(), id)
		}
		return
	}
	if path, err := s.path(ref); err == nil {
		os.Remove(path)
	}
}

func (s Source) path(ref string) (string, error) {
	p, ok := strings.CutPrefix(ref, "file:")
	if !ok || p == "" {
		return "", fmt.Errorf("keys: unsupported key reference %q (want file:PATH, db:ID or pkcs11:object=LABEL)", ref)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.Dir, p)
	}
	return p, nil
}

// ParsePEM parses a PEM private key: PKCS#8, PKCS#1 RSA or SEC 1 EC.
func ParsePEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("keys: no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("keys: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: %T is not a signing key", key)
	}
	return signer, nil
}
