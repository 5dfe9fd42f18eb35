// Package ossl runs private-key operations in OpenSSL's libcrypto (3.x):
// RSA PKCS#1 v1.5 signatures and decryption, RSA-OAEP decryption and ECDSA
// signatures, on a key handed to OpenSSL once and never copied back. It is
// the smallest binding scepd needs, behind crypto.Signer and
// crypto.Decrypter, compiled only with -tags openssl (it needs cgo and
// libssl-dev); the default build is pure Go and Wrap then fails.
package ossl

import "errors"

// ErrUnavailable: the binary was built without the OpenSSL engine.
var ErrUnavailable = errors.New("ossl: this scepd was built without the OpenSSL engine (build with -tags openssl; needs cgo and libssl-dev)")
