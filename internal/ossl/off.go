//go:build !(openssl && cgo)

package ossl

import "crypto"

// Available reports whether this build has the OpenSSL engine.
const Available = false

// Wrap fails: this build has no OpenSSL.
func Wrap(crypto.Signer) (crypto.Signer, error) { return nil, ErrUnavailable }
