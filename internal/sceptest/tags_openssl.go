//go:build openssl

package sceptest

// opensslTag builds scepd with the OpenSSL engine when the tests have it;
// every server they start then runs with SCEPD_CRYPTO=openssl, so the
// whole end-to-end suite exercises the engine.
const opensslTag = "openssl"
