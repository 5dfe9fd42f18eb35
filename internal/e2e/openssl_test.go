//go:build openssl

package e2e

import (
	"crypto"
	"crypto/x509/pkix"
	"testing"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
)

// TestOpenSSLEngine: built with -tags openssl, every server of this suite
// runs with SCEPD_CRYPTO=openssl (sceptest sets it), so the whole suite
// exercises the engine; this test checks the server says so and enrolls
// under an RSA CA, whose signatures are then OpenSSL's too.
func TestOpenSSLEngine(t *testing.T) {
	s := startServer(t, "SCEPD_CA_KEY_TYPE=rsa-2048")
	if !s.LogContains("crypto_engine=openssl") {
		t.Fatalf("the server does not report the OpenSSL engine:\n%s", s.Log())
	}
	chain := getCACert(t, s)
	cert := enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "ossl-device"}, Cipher: cms.AES256, Digest: crypto.SHA256})
	checkChain(t, cert, chain[len(chain)-1], nil)
}
