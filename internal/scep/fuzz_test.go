package scep

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func captureSeeds(f *testing.F, patterns ...string) {
	for _, pat := range patterns {
		files, _ := filepath.Glob(filepath.Join(captures, pat))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
}

// FuzzParse covers everything a device sends in a PKIOperation body.
func FuzzParse(f *testing.F) {
	captureSeeds(f, "*/*.der", "*/*/*.pkcs7", "*/*.bin")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if m.TransactionID == "" {
			t.Fatal("parsed a message without transactionID")
		}
		if env, err := m.OpenEnvelope(); err == nil {
			_ = env.Cipher.String()
		}
	})
}

// FuzzCSR covers the decrypted PKCS#10 and its challengePassword.
func FuzzCSR(f *testing.F) {
	captureSeeds(f, "*/derived/*.csr.der", "jscep-jscep/scep_req0.der")
	f.Fuzz(func(t *testing.T, b []byte) {
		RedactChallenge(b)
		csr, err := ParseCSR(b)
		if err != nil {
			return
		}
		ChallengePassword(csr)
	})
}

func FuzzChallengePassword(f *testing.F) {
	captureSeeds(f, "*/derived/*.csr.der")
	f.Fuzz(func(t *testing.T, tbs []byte) {
		ChallengePassword(&x509.CertificateRequest{RawTBSCertificateRequest: tbs})
	})
}

func FuzzIssuerAndSubject(f *testing.F) {
	f.Add([]byte{0x30, 0x04, 0x30, 0x00, 0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) { ParseIssuerAndSubject(b) })
}
