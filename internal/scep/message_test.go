package scep

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/scep/cms"
)

func newIdentity(t testing.TB, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// TestRequestReplyRoundTrip builds a PKCSReq and its CertRep for every
// cipher x digest and checks each field both ways.
func TestRequestReplyRoundTrip(t *testing.T) {
	raKey, raCert := newIdentity(t, "RA")
	devKey, devCert := newIdentity(t, "device")
	ra := Builder{Cert: raCert, Key: raKey}
	dev := Builder{Cert: devCert, Key: devKey}
	csr, err := NewCSR(devKey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}, DNSNames: []string{"d.example"}}, "pässwörd-123")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []cms.Cipher{cms.DES, cms.TripleDES, cms.AES128, cms.AES192, cms.AES256} {
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			t.Run(c.String()+"/"+h.String(), func(t *testing.T) {
				raw, nonce, err := dev.NewRequest(Request{Type: PKCSReq, TransactionID: "tx_1 (not printable-safe)", Body: csr, Recipient: raCert, Cipher: c, Digest: h})
				if err != nil {
					t.Fatal(err)
				}
				req, err := Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				if req.Type != PKCSReq || req.TransactionID != "tx_1 (not printable-safe)" || !bytes.Equal(req.SenderNonce, nonce) || req.Digest != h {
					t.Fatalf("parsed request %+v", req)
				}
				env, err := req.OpenEnvelope()
				if err != nil || env.Cipher != c {
					t.Fatalf("envelope %v, cipher %v", err, env.Cipher)
				}
				body, err := env.Decrypt(raKey, cms.FromX509(raCert))
				if err != nil || !bytes.Equal(body, csr) {
					t.Fatalf("decrypt: %v", err)
				}
				parsed, err := ParseCSR(body)
				if err != nil || parsed.CheckSignature() != nil {
					t.Fatalf("CSR: %v", err)
				}
				if pw, err := ChallengePassword(parsed); err != nil || pw != "pässwörd-123" {
					t.Fatalf("challengePassword = %q, %v", pw, err)
				}

				issued := [][]byte{devCert.Raw, raCert.Raw}
				rep, err := ra.CertRep(req, Reply{Status: StatusSuccess, Certificates: issued, Cipher: c})
				if err != nil {
					t.Fatal(err)
				}
				m, err := Parse(rep)
				if err != nil {
					t.Fatal(err)
				}
				if m.Type != CertRep || m.Status != StatusSuccess || m.TransactionID != req.TransactionID ||
					!bytes.Equal(m.RecipientNonce, nonce) || bytes.Equal(m.SenderNonce, nonce) || len(m.SenderNonce) != 16 || m.Digest != h {
					t.Fatalf("CertRep %+v", m)
				}
				renv, _ := m.OpenEnvelope()
				if renv.Cipher != c {
					t.Fatalf("CertRep encrypted with %v, request used %v", renv.Cipher, c)
				}
				certs, err := m.CertificatesOf(devKey, devCert)
				if err != nil || len(certs) != 2 || !bytes.Equal(certs[0], devCert.Raw) {
					t.Fatalf("certificates: %v", err)
				}
			})
		}
	}
}

func TestFailureAndPendingReplies(t *testing.T) {
	raKey, raCert := newIdentity(t, "RA")
	devKey, devCert := newIdentity(t, "device")
	raw, _, err := Builder{Cert: devCert, Key: devKey}.NewRequest(Request{Type: PKCSReq, TransactionID: "t", Body: []byte("x"), Recipient: raCert, Cipher: cms.AES128, Digest: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := Parse(raw)
	ra := Builder{Cert: raCert, Key: raKey}
	for _, fi := range []FailInfo{BadAlg, BadMessageCheck, BadRequest, BadTime, BadCertID} {
		rep, err := ra.CertRep(req, Reply{Status: StatusFailure, FailInfo: fi, FailText: "why: " + fi.String()})
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(rep)
		if err != nil || m.Status != StatusFailure || m.FailInfo != fi || m.FailInfoText != "why: "+fi.String() {
			t.Fatalf("%v: %+v %v", fi, m, err)
		}
		if len(m.Envelope) != 0 {
			t.Fatal("a FAILURE carries an envelope")
		}
	}
	rep, _ := ra.CertRep(req, Reply{Status: StatusPending})
	if m, err := Parse(rep); err != nil || m.Status != StatusPending {
		t.Fatalf("PENDING: %+v %v", m, err)
	}
}

func TestIssuerAndSubject(t *testing.T) {
	_, c := newIdentity(t, "x")
	body := append([]byte{0x30, byte(len(c.RawIssuer) + len(c.RawSubject))}, append(bytes.Clone(c.RawIssuer), c.RawSubject...)...)
	ias, err := ParseIssuerAndSubject(body)
	if err != nil || !bytes.Equal(ias.Issuer, c.RawIssuer) || !bytes.Equal(ias.Subject, c.RawSubject) {
		t.Fatalf("%v", err)
	}
	if _, err := ParseIssuerAndSubject(body[:len(body)-1]); err == nil {
		t.Fatal("truncated IssuerAndSubject accepted")
	}
}

func TestRedactChallenge(t *testing.T) {
	key, _ := newIdentity(t, "x")
	der, err := NewCSR(key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}, DNSNames: []string{"dev.example"}}, "top-secret-challenge")
	if err != nil {
		t.Fatal(err)
	}
	red, err := RedactChallenge(der)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(red, []byte("top-secret-challenge")) {
		t.Fatal("the challenge survived")
	}
	csr, err := ParseCSR(red)
	if err != nil || csr.Subject.CommonName != "dev" || len(csr.DNSNames) != 1 {
		t.Fatalf("redacted CSR lost its content: %v", err)
	}
	if pw, _ := ChallengePassword(csr); pw != "" {
		t.Fatalf("challengePassword %q after redaction", pw)
	}
	if _, err := RedactChallenge(der[:20]); err == nil {
		t.Fatal("a truncated CSR was redacted")
	}
}
