package scep

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepd/scepd/internal/scep/cms"
)

const captures = "testdata/captures"

func readCapture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(captures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadKey reads the recipient keys the captures ship: PKCS#8, or PKCS#1
// encrypted under an empty passphrase (micromdm's test CA).
func loadKey(t *testing.T, name string) crypto.Decrypter {
	t.Helper()
	block, _ := pem.Decode(readCapture(t, name))
	der := block.Bytes
	if x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck // the fixture uses legacy PEM encryption
		var err error
		if der, err = x509.DecryptPEMBlock(block, []byte("")); err != nil { //nolint:staticcheck
			t.Fatal(err)
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Decrypter)
}

// TestCapturedRequests parses every real client request in the captures:
// BER, 8-byte nonces, non-hex transaction IDs, signer certificates crypto/x509
// refuses, unsorted signedAttrs and MD5 all have to get through parsing and
// signature verification; policy refuses what it must later.
func TestCapturedRequests(t *testing.T) {
	tests := []struct {
		file       string
		txid       string
		nonceLen   int
		digest     crypto.Hash
		cipher     cms.Cipher
		x509Signer bool // whether crypto/x509 can parse the signer certificate
		key        string
		recipient  string
		csr        string
	}{
		{file: "micromdm-scep/PKCSReq.der", txid: "A13090761A30F66664F85D37433D2065E1112BA1", nonceLen: 8, digest: crypto.SHA1, cipher: cms.TripleDES, x509Signer: true,
			key: "micromdm-scep/testca/ca.key", recipient: "micromdm-scep/testca/ca.pem", csr: "micromdm-scep/derived/PKCSReq.csr.der"},
		{file: "Keyfactor-ejbca-ce/MessagesUnitTest__openscep.der", txid: "0C52343672712F734D83C52DA187FA14", nonceLen: 16, digest: crypto.MD5, cipher: cms.DES,
			key: "Keyfactor-ejbca-ce/derived/AdminCA1_privatesignkeyalias.key.pem", csr: "Keyfactor-ejbca-ce/derived/MessagesUnitTest__openscep.csr.der"},
		{file: "Keyfactor-ejbca-ce/MessagesUnitTest__sscep.der", txid: "0C52343672712F734D83C52DA187FA14", nonceLen: 16, digest: crypto.MD5, cipher: cms.DES, x509Signer: true,
			key: "Keyfactor-ejbca-ce/derived/AdminCA1_privatesignkeyalias.key.pem", csr: "Keyfactor-ejbca-ce/derived/MessagesUnitTest__sscep.csr.der"},
		{file: "Keyfactor-ejbca-ce/MessagesUnitTest__scepclient.der", txid: "C993BB20C87BF007CE548EFF2533F9F8", nonceLen: 16, digest: crypto.MD5, cipher: cms.DES,
			key: "Keyfactor-ejbca-ce/derived/AdminCA1_privatesignkeyalias.key.pem", csr: "Keyfactor-ejbca-ce/derived/MessagesUnitTest__scepclient.csr.der"},
		{file: "Keyfactor-ejbca-ce/ProtocolScepHttpTest__openscep.der", txid: "88E2DEE47068BB37F19BA647BF02FD0F", nonceLen: 16, digest: crypto.MD5, cipher: cms.DES},
		{file: "jscep-jscep/scep_req2.der", txid: "7XXEY-ERLPU-2JDR9", nonceLen: 16, digest: crypto.SHA256, cipher: cms.AES128, x509Signer: true},
		{file: "blalabs-blapki/sscep_pkcsreq.der", txid: "2CEA9D1E5DC298DA9198663B976F6D0C", nonceLen: 16, digest: crypto.SHA256, cipher: cms.AES256, x509Signer: true},
		{file: "openxpki-libscep/util_b64_pkcs7.bin", txid: "3AF9F8D181027109E35BE1DA32302CF6", nonceLen: 16, digest: crypto.MD5, cipher: cms.DES, x509Signer: true},
		{file: "onelogin-scep-gem/ejbca/sample-scep-request.pkcs7", nonceLen: 16, digest: crypto.SHA1, cipher: cms.DES, x509Signer: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := Parse(readCapture(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if m.Type != PKCSReq {
				t.Errorf("type = %v, want PKCSReq", m.Type)
			}
			if tt.txid != "" && m.TransactionID != tt.txid {
				t.Errorf("transactionID = %q, want %q", m.TransactionID, tt.txid)
			}
			if len(m.SenderNonce) != tt.nonceLen {
				t.Errorf("senderNonce length = %d, want %d", len(m.SenderNonce), tt.nonceLen)
			}
			if m.Digest != tt.digest {
				t.Errorf("digest = %v, want %v", m.Digest, tt.digest)
			}
			if (m.Signer.X509 != nil) != tt.x509Signer {
				t.Errorf("signer parsed by crypto/x509 = %v, want %v", m.Signer.X509 != nil, tt.x509Signer)
			}
			env, err := m.OpenEnvelope()
			if err != nil {
				t.Fatalf("OpenEnvelope: %v", err)
			}
			if env.Cipher != tt.cipher {
				t.Errorf("cipher = %v, want %v", env.Cipher, tt.cipher)
			}
			if tt.key == "" {
				return
			}
			var recip *cms.Certificate
			if tt.recipient != "" {
				block, _ := pem.Decode(readCapture(t, tt.recipient))
				if recip, err = cms.ParseCertificate(block.Bytes); err != nil {
					t.Fatal(err)
				}
			}
			csr, err := env.Decrypt(loadKey(t, tt.key), recip)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if want := readCapture(t, tt.csr); !bytes.Equal(csr, want) {
				t.Fatalf("decrypted CSR differs from %s", tt.csr)
			}
			if _, err := ParseCSR(csr); err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
		})
	}
}

func TestCapturedReplies(t *testing.T) {
	t.Run("micromdm CertRep", func(t *testing.T) {
		req, err := Parse(readCapture(t, "micromdm-scep/PKCSReq.der"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Parse(readCapture(t, "smallstep-scep/CertRep.der"))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Type != CertRep || rep.Status != StatusSuccess || rep.TransactionID != req.TransactionID ||
			!bytes.Equal(rep.RecipientNonce, req.SenderNonce) {
			t.Fatalf("reply %+v does not answer the request", rep)
		}
	})
	t.Run("NDES CertRep without certificates", func(t *testing.T) {
		raw := readCapture(t, "smallstep-scep/testca2/CertRep_NoCertificatesForSigners.der")
		if _, err := Parse(raw); !errors.Is(err, cms.ErrNoSigner) {
			t.Fatalf("without the RA certificate: err = %v, want ErrNoSigner", err)
		}
		block, _ := pem.Decode(readCapture(t, "smallstep-scep/testca2/ca2.pem"))
		ra, err := cms.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Parse(raw, ra)
		if err != nil {
			t.Fatalf("with the RA certificate: %v", err)
		}
		env, err := rep.OpenEnvelope()
		if err != nil || env.Cipher != cms.AES128 {
			t.Fatalf("envelope: %v, cipher %v", err, env.Cipher)
		}
	})
	t.Run("cryptlib-style CertRep", func(t *testing.T) {
		rep, err := Parse(readCapture(t, "jscep-jscep/scep_resp2.der"))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Status != StatusSuccess || rep.TransactionID != "7XXEY-ERLPU-2JDR9" {
			t.Fatalf("reply = %+v", rep)
		}
		if !bytes.Equal(rep.Envelope, readCapture(t, "jscep-jscep/scep_resp1.der")) {
			t.Fatal("envelope differs from the published plaintext layer")
		}
	})
}
