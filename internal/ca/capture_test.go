package ca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCapturedCSRsRefusedByPolicy: the CSRs real legacy clients sent
// (decrypted from the captures) parse, and the default policy refuses them
// for a stated reason, not with a parse error.
func TestCapturedCSRsRefusedByPolicy(t *testing.T) {
	key, _ := GenerateKey(ECDSAP256)
	root, err := NewRoot(key, pkix.Name{CommonName: "t"}, time.Hour*24*365, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultPolicy()
	for _, tt := range []struct {
		file   string
		want   error
		reason string
	}{
		{"micromdm-scep/derived/PKCSReq.csr.der", ErrPolicy, "RSA key of 1024 bits"},
		{"Keyfactor-ejbca-ce/derived/MessagesUnitTest__sscep.csr.der", ErrAlgorithm, "MD5-RSA"},
		{"Keyfactor-ejbca-ce/derived/MessagesUnitTest__openscep.csr.der", ErrAlgorithm, "MD5-RSA"},
		{"Keyfactor-ejbca-ce/derived/MessagesUnitTest__scepclient.csr.der", ErrAlgorithm, "MD5-RSA"},
	} {
		der, err := os.ReadFile("../scep/testdata/captures/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatalf("%s: parse: %v", tt.file, err)
		}
		_, err = p.Evaluate(csr, root.Cert, "test", time.Now())
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("%s: %v, want %v mentioning %q", tt.file, err, tt.want, tt.reason)
		}
	}
}
