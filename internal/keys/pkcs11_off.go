//go:build !pkcs11

package keys

import "crypto"

// Token is an open PKCS#11 token; this build has none (it needs cgo).
type Token struct{}

// OpenToken fails: this build has no PKCS#11 support.
func OpenToken(TokenConfig) (*Token, error) { return nil, ErrNoPKCS11 }

// Close does nothing.
func (t *Token) Close() error { return nil }

func (t *Token) generate(string, Algorithm) (crypto.Signer, error) { return nil, ErrNoPKCS11 }

func (t *Token) find(string) (crypto.Signer, error) { return nil, ErrNoPKCS11 }

func (t *Token) remove(string) {}
