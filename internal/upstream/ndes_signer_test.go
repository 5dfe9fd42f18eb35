package upstream_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/upstream"
)

// ndesRA is an NDES's pair of RA certificates (one subject): one signs
// (digitalSignature), one decrypts (keyEncipherment).
type ndesRA struct {
	sign, enc       *x509.Certificate
	signKey, encKey *rsa.PrivateKey
}

func newNDESRA(t *testing.T, root *ca.CA) *ndesRA {
	t.Helper()
	ra := func(usage x509.KeyUsage) (*x509.Certificate, *rsa.PrivateKey) {
		key, _ := rsa.GenerateKey(rand.Reader, 2048)
		serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "CORP-MSCEP-RA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: usage}, root.Cert, &key.PublicKey, root.Signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	r := &ndesRA{}
	r.sign, r.signKey = ra(x509.KeyUsageDigitalSignature)
	r.enc, r.encKey = ra(x509.KeyUsageKeyEncipherment)
	return r
}

// fakeNDES answers as an NDES does with the RA pair ra holds now: a
// request it cannot decrypt is an HTTP 500, a CertRep carries its signer
// only when carries is set.
func fakeNDES(t *testing.T, root *ca.CA, ra *atomic.Pointer[ndesRA], carries bool) *httptest.Server {
	printable := func(s string) []byte { b, _ := asn1.MarshalWithParams(s, "printable"); return b }
	octets := func(b []byte) []byte { v, _ := asn1.Marshal(b); return v }
	scepAttr := func(n int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, n} }
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := ra.Load()
		switch r.URL.Query().Get("operation") {
		case "GetCACaps":
			io.WriteString(w, "AES\nPOSTPKIOperation\nSHA-256\n")
		case "GetCACert":
			b, _ := cms.Degenerate([][]byte{now.sign.Raw, now.enc.Raw, root.Cert.Raw})
			w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
			w.Write(b)
		case "PKIOperation":
			body, _ := io.ReadAll(r.Body)
			msg, err := scep.Parse(body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			env, err := msg.OpenEnvelope()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			csrDER, err := env.Decrypt(now.encKey, cms.FromX509(now.enc))
			if err != nil {
				http.Error(w, "not encrypted to the encryption RA: "+err.Error(), http.StatusInternalServerError)
				return
			}
			csr, _ := x509.ParseCertificateRequest(csrDER)
			der, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(77), Subject: csr.Subject,
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, root.Cert, csr.PublicKey, root.Signer)
			inner, _ := cms.Degenerate([][]byte{der})
			content, _ := cms.Encrypt(inner, msg.Signer, cms.AES128, nil)
			nonce := make([]byte, 16)
			rand.Read(nonce)
			signer := cms.Signer{Cert: cms.FromX509(now.sign), Key: now.signKey, Hash: crypto.SHA256}
			if carries {
				signer.Certificates = [][]byte{now.sign.Raw}
			}
			out, err := signer.Sign(content, []cms.Attribute{
				{Type: scepAttr(2), Values: [][]byte{printable("3")}}, // messageType CertRep
				{Type: scepAttr(3), Values: [][]byte{printable("0")}}, // pkiStatus SUCCESS
				{Type: scepAttr(7), Values: [][]byte{printable(msg.TransactionID)}},
				{Type: scepAttr(5), Values: [][]byte{octets(nonce)}},
				{Type: scepAttr(6), Values: [][]byte{octets(msg.SenderNonce)}},
			}, nil)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/x-pki-message")
			w.Write(out)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func ndesUpstream(t *testing.T, url string, root *ca.CA) *upstream.SCEP {
	t.Helper()
	fp := sha256.Sum256(root.Cert.Raw)
	reqKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	reqCert, _ := client.SelfSigned(reqKey, pkix.Name{CommonName: "scepd"})
	u, err := upstream.NewSCEP(upstream.SCEPConfig{URL: url + "/certsrv/mscep/mscep.dll", Fingerprint: fp[:], Timeout: 10 * time.Second,
		Signer: client.Requester{Cert: reqCert, Key: reqKey}})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func ndesRoot(t *testing.T) *ca.CA {
	t.Helper()
	rootKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	root, err := ca.NewRoot(rootKey, pkix.Name{CommonName: "Corp Issuing CA"}, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func issued(t *testing.T, u *upstream.SCEP, cn string) error {
	t.Helper()
	got, err := u.Issue(context.Background(), enroll.IssueRequest{ProfileID: "p", TransactionID: "tx-" + cn, CSR: deviceCSR(t, cn)})
	if err != nil {
		return err
	}
	if cert, err := x509.ParseCertificate(got.Issued.DER); err != nil || cert.Subject.CommonName != cn {
		t.Errorf("%s: certificate %v, %v", cn, cert, err)
	}
	return nil
}

// TestNDESSignsApart: an NDES answers GetCACert with two RA certificates
// of one subject, one to sign (digitalSignature) and one to decrypt
// (keyEncipherment), and may sign its CertRep without carrying either.
// The upstream encrypts to the one and verifies the reply with the other.
func TestNDESSignsApart(t *testing.T) {
	root := ndesRoot(t)
	var ra atomic.Pointer[ndesRA]
	ra.Store(newNDESRA(t, root))
	for _, carries := range []bool{true, false} {
		u := ndesUpstream(t, fakeNDES(t, root, &ra, carries).URL, root)
		if err := issued(t, u, "laptop-1"); err != nil {
			t.Errorf("CertRep carrying its signer %v: %v", carries, err)
		}
	}
}

// TestUpstreamRARenewed: an upstream that renews its RA certificates is
// asked again after a request fails, instead of every request going on
// to the certificate it replaced until scepd restarts.
func TestUpstreamRARenewed(t *testing.T) {
	root := ndesRoot(t)
	var ra atomic.Pointer[ndesRA]
	ra.Store(newNDESRA(t, root))
	u := ndesUpstream(t, fakeNDES(t, root, &ra, false).URL, root)
	if err := issued(t, u, "before"); err != nil {
		t.Fatal(err)
	}
	ra.Store(newNDESRA(t, root)) // renewed
	if err := issued(t, u, "encrypted-to-the-old-ra"); err == nil {
		t.Fatal("a request encrypted to the replaced RA certificate was issued")
	}
	if err := issued(t, u, "after"); err != nil {
		t.Fatalf("the request after: %v (GetCACert was not asked again)", err)
	}
}
