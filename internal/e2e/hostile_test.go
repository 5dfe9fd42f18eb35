package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

func postRaw(t *testing.T, s *sceptest.Server, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(s.URL("default")+"?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// request builds a PKIOperation from raw parts with the library (as a
// misbehaving client would), signed by a self-signed certificate of key.
func request(t *testing.T, key *rsa.PrivateKey, csr []byte, recipient *x509.Certificate, c cms.Cipher, h crypto.Hash) []byte {
	t.Helper()
	self := selfSignedCert(t, key, "hostile")
	msg, _, err := scep.Builder{Cert: self, Key: key}.NewRequest(scep.Request{
		Type: scep.PKCSReq, TransactionID: "tx-" + self.SerialNumber.Text(16), Body: csr, Recipient: recipient, Cipher: c, Digest: h,
	})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func selfSignedCert(t *testing.T, key *rsa.PrivateKey, cn string) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func csrFor(t *testing.T, key crypto.Signer, cn, pw string) []byte {
	t.Helper()
	der, err := scep.NewCSR(key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, pw)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestHostileInput sends what broken or hostile clients send to the real
// binary: each gets a clear refusal, nothing is stored, and the server
// keeps serving.
func TestHostileInput(t *testing.T) {
	s := startServer(t)
	certs := getCACert(t, s)
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}
	raCMS := cms.FromX509(ra)
	key := newKey(t)
	good := request(t, key, csrFor(t, key, "ok", challenge), ra, cms.AES128, crypto.SHA256)

	t.Run("not CMS", func(t *testing.T) {
		if code, body := postRaw(t, s, []byte("hello, I am not a PKIMessage")); code != 400 || !strings.Contains(string(body), "malformed SCEP message") {
			t.Fatalf("got %d %q", code, body)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		if code, body := postRaw(t, s, good[:len(good)/2]); code != 400 {
			t.Fatalf("got %d %q", code, body)
		}
	})
	t.Run("empty body", func(t *testing.T) {
		if code, _ := postRaw(t, s, nil); code != 400 {
			t.Fatalf("got %d", code)
		}
	})
	t.Run("too large", func(t *testing.T) {
		if code, _ := postRaw(t, s, make([]byte, 1<<20+1)); code != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d, want 413", code)
		}
	})
	t.Run("bad signature on the PKIMessage", func(t *testing.T) {
		bad := bytes.Clone(good)
		bad[len(bad)-10] ^= 0xff // inside the RSA signature, the last element
		if code, body := postRaw(t, s, bad); code != 400 || !strings.Contains(string(body), "verification") {
			t.Fatalf("got %d %q", code, body)
		}
	})

	failure := func(t *testing.T, msg []byte, want scep.FailInfo, text string) {
		t.Helper()
		code, body := postRaw(t, s, msg)
		if code != 200 {
			t.Fatalf("got HTTP %d %q, want a CertRep", code, body)
		}
		rep, err := scep.Parse(body, raCMS)
		if err != nil {
			t.Fatalf("reply does not verify against the RA: %v", err)
		}
		if rep.Status != scep.StatusFailure || rep.FailInfo != want || !strings.Contains(rep.FailInfoText, text) {
			t.Fatalf("reply %s/%s %q, want FAILURE %s containing %q", rep.Status, rep.FailInfo, rep.FailInfoText, want, text)
		}
	}
	t.Run("encrypted to another recipient", func(t *testing.T) {
		other := selfSignedCert(t, newKey(t), "not the RA")
		failure(t, request(t, key, csrFor(t, key, "x", challenge), other, cms.AES256, crypto.SHA256), scep.BadMessageCheck, "not encrypted to this profile")
	})
	t.Run("RSA-1024 CSR", func(t *testing.T) {
		small, _ := rsa.GenerateKey(rand.Reader, 1024)
		failure(t, request(t, key, csrFor(t, small, "small", challenge), ra, cms.AES256, crypto.SHA256), scep.BadRequest, "RSA key of 1024 bits")
	})
	t.Run("CSR signature does not verify", func(t *testing.T) {
		csr := csrFor(t, key, "forged", challenge)
		csr[len(csr)-5] ^= 0x55
		failure(t, request(t, key, csr, ra, cms.AES256, crypto.SHA256), scep.BadMessageCheck, "CSR signature")
	})
	t.Run("no decryption oracle", func(t *testing.T) {
		// A failed key unwrap, bad content padding and content that is not a
		// CSR all get the same answer.
		notCSR := request(t, key, []byte("garbage that decrypts fine"), ra, cms.TripleDES, crypto.SHA1)
		badKey := tamperEnvelope(t, key, ra, func(e []byte, keyAt, contentAt int) { e[keyAt] ^= 0xff })
		// Flipping the last byte of the next-to-last ciphertext block flips
		// the last plaintext byte (the pad length) deterministically; flipping
		// the last block itself would randomise it and leave valid padding
		// one time in 256.
		badPad := tamperEnvelope(t, key, ra, func(e []byte, keyAt, contentAt int) { e[len(e)-1-aes.BlockSize] ^= 0xff })
		var texts []string
		for _, msg := range [][]byte{notCSR, badKey, badPad} {
			code, body := postRaw(t, s, msg)
			rep, err := scep.Parse(body, raCMS)
			if code != 200 || err != nil || rep.Status != scep.StatusFailure {
				t.Fatalf("got %d %v", code, err)
			}
			texts = append(texts, string(rep.FailInfo)+"|"+rep.FailInfoText)
		}
		if texts[0] != texts[1] || texts[1] != texts[2] {
			t.Fatalf("distinguishable answers: %q", texts)
		}
	})
	t.Run("missing challenge", func(t *testing.T) {
		failure(t, request(t, key, csrFor(t, key, "nopw", ""), ra, cms.AES128, crypto.SHA256), scep.BadRequest, "challenge password")
	})
	t.Run("captured sscep request with MD5", func(t *testing.T) {
		raw, err := os.ReadFile("../scep/testdata/captures/Keyfactor-ejbca-ce/MessagesUnitTest__sscep.der")
		if err != nil {
			t.Fatal(err)
		}
		failure(t, raw, scep.BadAlg, "MD5")
	})
	t.Run("same transactionID with another key", func(t *testing.T) {
		self := selfSignedCert(t, key, "tx-owner")
		b := scep.Builder{Cert: self, Key: key}
		first, _, _ := b.NewRequest(scep.Request{Type: scep.PKCSReq, TransactionID: "shared-tx", Body: csrFor(t, key, "tx-owner", challenge), Recipient: ra, Cipher: cms.AES128, Digest: crypto.SHA256})
		code, body := postRaw(t, s, first)
		rep, err := scep.Parse(body, raCMS)
		if code != 200 || err != nil || rep.Status != scep.StatusSuccess {
			t.Fatalf("first enrollment: %d %v", code, err)
		}
		// A retransmission gets the same certificate, not a second one.
		code, body = postRaw(t, s, first)
		again, err := scep.Parse(body, raCMS)
		if code != 200 || err != nil || again.Status != scep.StatusSuccess {
			t.Fatalf("retransmission: %d %v", code, err)
		}
		c1, _ := rep.CertificatesOf(key, self)
		c2, _ := again.CertificatesOf(key, self)
		if len(c1) == 0 || !bytes.Equal(c1[0], c2[0]) {
			t.Fatal("a retransmission got a different certificate")
		}
		thief := newKey(t)
		tb := scep.Builder{Cert: selfSignedCert(t, thief, "thief"), Key: thief}
		stolen, _, _ := tb.NewRequest(scep.Request{Type: scep.PKCSReq, TransactionID: "shared-tx", Body: csrFor(t, thief, "thief", challenge), Recipient: ra, Cipher: cms.AES128, Digest: crypto.SHA256})
		failure(t, stolen, scep.BadRequest, "different key")
	})
	t.Run("senderNonce reused by another transaction", func(t *testing.T) {
		// Messages signed by hand with signPKCSReq carry a fixed senderNonce.
		self := selfSignedCert(t, key, "nonce-owner")
		signed := func(txid string) []byte {
			env, err := cms.Encrypt(csrFor(t, key, txid, challenge), cms.FromX509(ra), cms.AES128, nil)
			if err != nil {
				t.Fatal(err)
			}
			return signPKCSReq(t, key, self, env, txid)
		}
		first := signed("nonce-first")
		for range 2 { // the second time is a retransmission: same answer
			code, body := postRaw(t, s, first)
			if rep, err := scep.Parse(body, raCMS); code != 200 || err != nil || rep.Status != scep.StatusSuccess {
				t.Fatalf("first use of the nonce: %d %v", code, err)
			}
		}
		before := len(s.Certificates())
		failure(t, signed("nonce-second"), scep.BadRequest, "senderNonce was already used")
		if after := len(s.Certificates()); after != before {
			t.Fatalf("the replay left %d certificates behind", after-before)
		}
	})
	t.Run("GET with unescaped + and / (Apple)", func(t *testing.T) {
		k := newKey(t)
		msg := request(t, k, csrFor(t, k, "apple-style", challenge), ra, cms.TripleDES, crypto.SHA1)
		b64 := base64.StdEncoding.EncodeToString(msg)
		if !strings.ContainsAny(b64, "+/") {
			t.Skip("this message's base64 happens to have neither + nor /")
		}
		resp, err := http.Get(s.URL("default") + "?operation=PKIOperation&message=" + b64)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rep, err := scep.Parse(body, raCMS)
		if err != nil || rep.Status != scep.StatusSuccess {
			t.Fatalf("GET with raw base64: %d %v %+v", resp.StatusCode, err, rep)
		}
	})

	t.Run("8-byte senderNonce by GET with raw + and / (Apple)", func(t *testing.T) {
		// Apple's SCEP client sends 8-byte senderNonces (RFC 8894 says 16)
		// and a GET whose message is unescaped base64; the CertRep's
		// recipientNonce must echo the 8 bytes as they came.
		k := newKey(t)
		self := selfSignedCert(t, k, "apple-nonce")
		txid := "apple-nonce-" + self.SerialNumber.Text(16)
		env, err := cms.Encrypt(csrFor(t, k, "apple-nonce", challenge), raCMS, cms.AES128, nil)
		if err != nil {
			t.Fatal(err)
		}
		var nonce []byte
		var b64 string
		for range 20 { // a fresh nonce changes the signature, hence the base64
			nonce = make([]byte, 8)
			rand.Read(nonce)
			b64 = base64.StdEncoding.EncodeToString(signPKCSReqNonce(t, k, self, env, txid, nonce))
			if strings.Contains(b64, "+") && strings.Contains(b64, "/") {
				break
			}
		}
		if !strings.Contains(b64, "+") || !strings.Contains(b64, "/") {
			t.Fatal("20 messages without both + and / in their base64")
		}
		resp, err := http.Get(s.URL("default") + "?operation=PKIOperation&message=" + b64)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rep, err := scep.Parse(body, raCMS)
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("GET with an 8-byte senderNonce: HTTP %d %v %q", resp.StatusCode, err, truncate(body))
		}
		if rep.Type != scep.CertRep || rep.Status != scep.StatusSuccess || rep.TransactionID != txid {
			t.Fatalf("reply %v %s (%s %q) for %q, want a CertRep SUCCESS for %q", rep.Type, rep.Status, rep.FailInfo, rep.FailInfoText, rep.TransactionID, txid)
		}
		if !bytes.Equal(rep.RecipientNonce, nonce) {
			t.Fatalf("recipientNonce %x, want the 8-byte senderNonce %x echoed", rep.RecipientNonce, nonce)
		}
		if bytes.Equal(rep.SenderNonce, nonce) || len(rep.SenderNonce) == 0 {
			t.Fatalf("the CertRep's senderNonce %x is not its own", rep.SenderNonce)
		}
		if ders, err := rep.CertificatesOf(k, self); err != nil || len(ders) == 0 {
			t.Fatalf("decrypting the CertRep: %v", err)
		}
	})

	// Only the four legitimate enrollments above are stored; the server still works.
	if n := len(s.Certificates()); n != 4 {
		t.Errorf("%d certificates stored, want 4 (the tx owner, the first nonce user and the two Apple-style GETs)", n)
	}
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "still-serving"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	if strings.Contains(s.Log(), challenge) {
		t.Error("the challenge appears in the log")
	}
}

// TestOverload: beyond --max-concurrent, PKIOperation answers 503 with
// Retry-After at once; whatever was answered SUCCESS is stored.
func TestOverload(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--max-concurrent", "1", "--queue-wait", "1ms"}})
	l := newLoad(t, []*sceptest.Server{s}, "flood")
	issued, failed := l.run(context.Background(), 40, 12, challenge)
	busy := 0
	for _, err := range failed {
		if !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "busy") {
			t.Fatalf("unexpected failure under overload: %v", err)
		}
		busy++
	}
	if busy == 0 || len(issued) == 0 {
		t.Fatalf("%d issued, %d refused: want both under 12 clients and one slot", len(issued), busy)
	}
	checkStored(t, s, issued)
	if n := len(s.Certificates()); n != len(issued) {
		t.Fatalf("%d stored, %d reported issued", n, len(issued))
	}
	t.Logf("under 12 clients with 1 slot: %d issued, %d answered 503", len(issued), busy)
}

// TestQueue: a closed population of clients larger than the slots is
// served without refusals while it fits --max-queue; with a queue shorter
// than the population the excess is refused with 503 at once.
func TestQueue(t *testing.T) {
	for _, c := range []struct {
		queue    string
		wantBusy bool
	}{{"16", false}, {"2", true}} {
		s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge},
			Args: []string{"--max-concurrent", "1", "--max-queue", c.queue, "--queue-wait", "20s"}})
		l := newLoad(t, []*sceptest.Server{s}, "queue-"+c.queue)
		issued, failed := l.run(context.Background(), 36, 12, challenge)
		for _, err := range failed {
			if !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "busy") {
				t.Fatalf("queue %s: unexpected failure: %v", c.queue, err)
			}
		}
		if (len(failed) > 0) != c.wantBusy || len(issued) == 0 {
			t.Fatalf("12 clients, 1 slot, queue %s: %d issued, %d refused", c.queue, len(issued), len(failed))
		}
		checkStored(t, s, issued)
		t.Logf("12 clients, 1 slot, queue %s: %d issued, %d answered 503", c.queue, len(issued), len(failed))
	}
}

// tamperEnvelope builds a valid request and corrupts its EnvelopedData
// (then re-signs the message, so only the envelope is wrong).
func tamperEnvelope(t *testing.T, key *rsa.PrivateKey, ra *x509.Certificate, mutate func(env []byte, keyAt, contentAt int)) []byte {
	t.Helper()
	csr := csrFor(t, key, "tamper", challenge)
	env, err := cms.Encrypt(csr, cms.FromX509(ra), cms.AES128, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The encrypted key is the 256-byte OCTET STRING; flip a byte in its middle.
	keyAt := bytes.Index(env, []byte{0x04, 0x82, 0x01, 0x00}) + 4 + 128
	mutate(env, keyAt, 0)
	self := selfSignedCert(t, key, "tamper")
	return signPKCSReq(t, key, self, env, "tamper-"+self.SerialNumber.Text(16))
}

// signPKCSReq signs an envelope as a PKCSReq by hand, with a fixed
// senderNonce.
func signPKCSReq(t *testing.T, key *rsa.PrivateKey, self *x509.Certificate, env []byte, txid string) []byte {
	t.Helper()
	return signPKCSReqNonce(t, key, self, env, txid, bytes.Repeat([]byte{7}, 16))
}

// signPKCSReqNonce signs an envelope as a PKCSReq by hand, with the given
// senderNonce (of any length: Apple's are 8 bytes).
func signPKCSReqNonce(t *testing.T, key *rsa.PrivateKey, self *x509.Certificate, env []byte, txid string, nonce []byte) []byte {
	t.Helper()
	signer := cms.Signer{Cert: cms.FromX509(self), Key: key, Hash: crypto.SHA256, Certificates: [][]byte{self.Raw}}
	msg, err := signer.Sign(env, scepAttrs(t, txid, nonce), nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// scepAttrs are the signed attributes of a PKCSReq with senderNonce n.
func scepAttrs(t *testing.T, txid string, n []byte) []cms.Attribute {
	t.Helper()
	str := func(s string) []byte { b, _ := asn1.MarshalWithParams(s, "printable"); return b }
	nonce, _ := asn1.Marshal(n)
	return []cms.Attribute{
		{Type: asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}, Values: [][]byte{str("19")}},
		{Type: asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}, Values: [][]byte{str(txid)}},
		{Type: asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}, Values: [][]byte{nonce}},
	}
}

// TestHTTP10: Cisco IOS may speak HTTP/1.0, and sends PKIOperation by
// GET (base64 in the query string): GetCACaps and a PKIOperation, by GET
// and by POST, are answered as HTTP/1.0 expects (the connection closed
// after the answer), the PKIOperation with a CertRep that issues.
func TestHTTP10(t *testing.T) {
	s := startServer(t)
	// http10 sends one HTTP/1.0 request (no Host, as HTTP/1.0 allows) and
	// reads until the server closes the connection.
	http10 := func(request string) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(conn, request); err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("HTTP/1.0: the connection is not closed after the answer: %v\n%s", err, truncate(raw))
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			t.Fatalf("HTTP/1.0 answer: %v\n%s", err, truncate(raw))
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if resp.Proto != "HTTP/1.0" || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %d, want HTTP/1.0 200\n%s", resp.Proto, resp.StatusCode, truncate(body))
		}
		return resp
	}
	resp := http10("GET /scep/default/pkiclient.exe?operation=GetCACaps HTTP/1.0\r\n\r\n")
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "SCEPStandard") {
		t.Fatalf("HTTP/1.0 GetCACaps: %s", b)
	}

	ra, err := client.Recipient(getCACert(t, s))
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			key := newKey(t)
			self := selfSignedCert(t, key, "ios-router")
			tx := "http10-" + method
			msg, _, err := scep.Builder{Cert: self, Key: key}.NewRequest(scep.Request{Type: scep.PKCSReq, TransactionID: tx,
				Body: csrFor(t, key, "ios-router", challenge), Recipient: ra, Cipher: cms.TripleDES, Digest: crypto.SHA1})
			if err != nil {
				t.Fatal(err)
			}
			path := "/scep/default/pkiclient.exe?operation=PKIOperation"
			var req string
			if method == http.MethodGet {
				req = "GET " + path + "&message=" + url.QueryEscape(base64.StdEncoding.EncodeToString(msg)) + " HTTP/1.0\r\n\r\n"
			} else {
				req = fmt.Sprintf("POST %s HTTP/1.0\r\nContent-Type: application/x-pki-message\r\nContent-Length: %d\r\n\r\n%s", path, len(msg), msg)
			}
			resp := http10(req)
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-pki-message" {
				t.Errorf("Content-Type %q, want application/x-pki-message", ct)
			}
			body, _ := io.ReadAll(resp.Body)
			rep, err := scep.Parse(body, cms.FromX509(ra))
			if err != nil {
				t.Fatalf("HTTP/1.0 %s PKIOperation: the answer is no CertRep: %v", method, err)
			}
			if rep.Type != scep.CertRep || rep.TransactionID != tx || rep.Status != scep.StatusSuccess {
				t.Fatalf("HTTP/1.0 %s PKIOperation: %v %q %s (%s %q), want a CertRep SUCCESS for %s", method, rep.Type, rep.TransactionID, rep.Status, rep.FailInfo, rep.FailInfoText, tx)
			}
			ders, err := rep.CertificatesOf(key, self)
			if err != nil || len(ders) == 0 {
				t.Fatalf("decrypting the CertRep: %v", err)
			}
			cert, err := x509.ParseCertificate(ders[0])
			if err != nil || cert.Subject.CommonName != "ios-router" || !key.PublicKey.Equal(cert.PublicKey) {
				t.Fatalf("issued %v (%v), want a certificate for the router's key", cert.Subject, err)
			}
		})
	}
}

// TestFlood floods the real binary from scepd bench with far more clients
// than it has slots (SCEPD_FLOOD_SECONDS, 10 by default; 30 for the full
// check), then checks memory stayed bounded, nothing is corrupt, and it
// still enrolls.
func TestFlood(t *testing.T) {
	secs := 10
	if v := os.Getenv("SCEPD_FLOOD_SECONDS"); v != "" {
		fmt.Sscan(v, &secs)
	}
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--max-concurrent", "2", "--queue-wait", "10ms"}})
	pid := s.PID()
	out, err := sceptest.Run(t, time.Duration(secs+60)*time.Second, []string{"SCEPD_CHALLENGE=" + challenge}, "", sceptest.Binary(t),
		"bench", "-url", s.URL("default"), "-n", "40", "-c", "64", "-keys", "4", "-duration", fmt.Sprintf("%ds", secs), "-pid", fmt.Sprint(pid), "-o", "json")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var res struct {
		Sent    int            `json:"sent"`
		Answers map[string]int `json:"answers_by_status"`
		PeakRSS int64          `json:"server_peak_rss_bytes"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("bench output: %v\n%s", err, out)
	}
	t.Logf("flood of %d s: %d requests, answers %v, server peak RSS %.1f MB", secs, res.Sent, res.Answers, float64(res.PeakRSS)/(1<<20))
	for status := range res.Answers {
		if status != "200" && status != "503" {
			t.Errorf("answers with status %s under flood", status)
		}
	}
	if res.Answers["503"] == 0 {
		t.Error("64 clients against 2 slots never saw a 503")
	}
	const bound = 150 << 20 // stated in docs/security.md
	if res.PeakRSS == 0 || res.PeakRSS > bound {
		t.Errorf("peak RSS %d bytes, bound %d", res.PeakRSS, bound)
	}
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "after-flood"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	r, err := s.Store().CheckIntegrity(context.Background())
	if err != nil || len(r.Problems) > 0 {
		t.Fatalf("integrity after the flood: %+v %v", r, err)
	}
}
