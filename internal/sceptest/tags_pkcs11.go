//go:build pkcs11

package sceptest

// buildTags are passed to the scepd build: tests built with -tags pkcs11
// drive a binary that has PKCS#11 support.
const buildTags = "pkcs11"
