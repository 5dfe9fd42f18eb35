//go:build pkcs11

package keys

import (
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/ThalesGroup/crypto11"

	"github.com/scepd/scepd/internal/sessionkey"
)

// Token is an open PKCS#11 token. Keys generated in it are sensitive and
// not extractable: the private key never leaves the token.
type Token struct {
	ctx *crypto11.Context
}

// OpenToken logs in to the token c names.
func OpenToken(c TokenConfig) (*Token, error) {
	if c.Module == "" || c.Label == "" {
		return nil, errors.New("keys: a PKCS#11 token needs a module path and a token label")
	}
	ctx, err := crypto11.Configure(&crypto11.Config{Path: c.Module, TokenLabel: c.Label, Pin: c.PIN})
	if err != nil {
		return nil, fmt.Errorf("keys: opening PKCS#11 token %q with %s: %w", c.Label, c.Module, err)
	}
	return &Token{ctx: ctx}, nil
}

// Close logs out and releases the module.
func (t *Token) Close() error {
	if t == nil {
		return nil
	}
	return t.ctx.Close()
}

// generate makes a key pair in the token under label. PKCS#11 has no
// session-key mode for PKCS#1 v1.5 decryption: sessionkey adds it.
func (t *Token) generate(label string, alg Algorithm) (crypto.Signer, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	var k crypto.Signer
	var err error
	switch {
	case alg.RSABits > 0:
		k, err = t.ctx.GenerateRSAKeyPairWithLabel(id, []byte(label), alg.RSABits)
	case alg.Curve != nil:
		k, err = t.ctx.GenerateECDSAKeyPairWithLabel(id, []byte(label), alg.Curve)
	default:
		return nil, errors.New("keys: no key algorithm given")
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generating %q in the token: %w", label, err)
	}
	return sessionkey.Wrap(k), nil
}

// find returns the key pair labelled label.
func (t *Token) find(label string) (crypto.Signer, error) {
	k, err := t.ctx.FindKeyPair(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("keys: finding %q in the token: %w", label, err)
	}
	if k == nil {
		return nil, fmt.Errorf("keys: no key pair labelled %q in the token", label)
	}
	return sessionkey.Wrap(k), nil
}

// remove deletes the key pair labelled label (best effort).
func (t *Token) remove(label string) {
	if k, err := t.ctx.FindKeyPair(nil, []byte(label)); err == nil && k != nil {
		if d, ok := k.(interface{ Delete() error }); ok {
			d.Delete()
		}
	}
}
