//go:build pkcs11

package sceptest

// pkcs11Tag builds scepd with PKCS#11 support when the tests have it.
const pkcs11Tag = "pkcs11"
