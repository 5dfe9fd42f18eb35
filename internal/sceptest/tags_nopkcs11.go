//go:build !pkcs11

package sceptest

const pkcs11Tag = ""
