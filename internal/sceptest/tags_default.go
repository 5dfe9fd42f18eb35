//go:build !pkcs11

package sceptest

// buildTags are passed to the scepd build (none: the default, cgo-free binary).
const buildTags = ""
