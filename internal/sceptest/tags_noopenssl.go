//go:build !openssl

package sceptest

const opensslTag = ""
