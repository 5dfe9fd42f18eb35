package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

const lifecycleConfig = `
public_url: PUBLIC
cas:
  - id: root
    create: {subject: "CN=Lifecycle Root,O=E2E", key_type: rsa-2048}
profiles:
  - id: renew
    ca: root
    allow_des: true
    challenge: {password_env: E2E_CHALLENGE}
    renewal: {allow_key_reuse: true, revoke_old: true}
  - id: strict
    ca: root
    challenge: {password_env: E2E_CHALLENGE}
    renewal: {window: 0.5}
  - id: approve
    ca: root
    allow_des: true
    approval: manual
    pending_ttl: 1h
    challenge: {password_env: E2E_CHALLENGE}
`

func startLifecycle(t *testing.T) *sceptest.Server {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	// public_url must name the server's own address for the CDP to be
	// fetchable, so the address is picked first.
	addr := sceptest.FreeAddr(t)
	os.WriteFile(cfg, []byte(strings.Replace(lifecycleConfig, "PUBLIC", "http://"+addr, 1)), 0o600)
	return sceptest.Start(t, sceptest.Options{
		DataDir: filepath.Join(dir, "data"), Env: []string{"E2E_CHALLENGE=" + challenge},
		Args: []string{"--config", cfg}, Addr: addr,
	})
}

type identity struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func enrollIn(t *testing.T, s *sceptest.Server, profile, cn string) identity {
	t.Helper()
	key := newKey(t)
	certs, err := client.New(s.URL(profile)).Enroll(context.Background(), client.Enrollment{
		Key: key, Subject: pkix.Name{CommonName: cn}, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256,
	})
	if err != nil {
		t.Fatalf("enroll %s in %s: %v", cn, profile, err)
	}
	return identity{key, certs[0]}
}

func renew(s *sceptest.Server, profile string, old identity, key *rsa.PrivateKey, subject pkix.Name, renewalReq bool) ([]*x509.Certificate, error) {
	return client.New(s.URL(profile)).Enroll(context.Background(), client.Enrollment{
		Key: key, Subject: subject, Cipher: cms.AES256, Digest: crypto.SHA256,
		SignWith: old.cert, SignKey: old.key, Renewal: renewalReq,
	})
}

func failInfo(err error) scep.FailInfo {
	var f *client.Failure
	if errors.As(err, &f) {
		return f.FailInfo
	}
	return "none"
}

// TestRenewal: renewal signed with an issued certificate, as RenewalReq
// (micromdm's scepclient, the Go client) and as a PKCSReq (sscep style,
// with a new key or, as Cisco IOS and sscep do, the same key and so the
// same transactionID), and every refusal the policy asks for.
func TestRenewal(t *testing.T) {
	s := startLifecycle(t)
	ra, err := client.Recipient(caCerts(t, s, "renew"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("micromdm scepclient RenewalReq", func(t *testing.T) {
		bin := sceptest.RequireTool(t, "scepclient", "scep")
		fp := sha256.Sum256(ra.Raw)
		dir := t.TempDir()
		run := func() {
			t.Helper()
			if out, err := sceptest.Run(t, time.Minute, nil, dir, bin, "-server-url", s.URL("renew"), "-private-key", filepath.Join(dir, "key.pem"),
				"-challenge", challenge, "-cn", "mm-renew", "-ca-fingerprint", hex.EncodeToString(fp[:])); err != nil {
				t.Fatalf("scepclient: %v\n%s", err, out)
			}
		}
		run()
		b, _ := os.ReadFile(filepath.Join(dir, "client.pem"))
		first := parsePEM(t, b)
		run() // the certificate exists now: scepclient sends RenewalReq signed with it
		b, _ = os.ReadFile(filepath.Join(dir, "client.pem"))
		second := parsePEM(t, b)
		if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Fatal("renewal returned the same certificate")
		}
		if !s.LogContains("message_type=RenewalReq") {
			t.Error("scepclient did not send a RenewalReq")
		}
		row, err := s.Store().GetCertificate(context.Background(), second.SerialNumber.Text(16))
		if err != nil || row.RenewedSerial != first.SerialNumber.Text(16) {
			t.Fatalf("renewed certificate row %+v %v: must record the certificate it renewed", row, err)
		}
		old, _ := s.Store().GetCertificate(context.Background(), first.SerialNumber.Text(16))
		if old.Status != "revoked" || old.RevocationReason != 4 {
			t.Fatalf("revoke_old: the renewed certificate is %s (reason %d), want revoked/superseded", old.Status, old.RevocationReason)
		}
	})

	t.Run("PKCSReq signed with the issued certificate (sscep style)", func(t *testing.T) {
		old := enrollIn(t, s, "renew", "sscep-style")
		certs, err := renew(s, "renew", old, newKey(t), pkix.Name{CommonName: "sscep-style"}, false)
		if err != nil {
			t.Fatalf("renewal without a challenge: %v", err)
		}
		if certs[0].Subject.CommonName != "sscep-style" {
			t.Fatalf("subject %v", certs[0].Subject)
		}
		// The old one was revoked (superseded): renewing with it again fails.
		if _, err := renew(s, "renew", old, newKey(t), pkix.Name{CommonName: "sscep-style"}, false); failInfo(err) != scep.BadRequest {
			t.Fatalf("renewing with a revoked certificate: %v", err)
		}
	})

	t.Run("PKCSReq with the same key and transactionID (Cisco IOS auto-enroll, sscep)", func(t *testing.T) {
		// Cisco IOS renews with its key pair unless `regenerate` is set, by
		// GET; sscep signs a PKCSReq with the issued certificate. Both
		// derive the transactionID from the public key, so the renewal
		// repeats the first enrollment's.
		ctx := context.Background()
		key := newKey(t)
		spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		sum := sha256.Sum256(spki)
		tx := strings.ToUpper(hex.EncodeToString(sum[:]))
		subject := pkix.Name{CommonName: "cisco-same-key"}
		c := client.New(s.URL("renew"))
		first, err := c.Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256,
			GET: true, TransactionID: tx, Recipient: ra})
		if err != nil {
			t.Fatalf("first enrollment: %v", err)
		}
		old := first[0]
		renewal := func() *x509.Certificate {
			t.Helper()
			certs, err := c.Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Cipher: cms.AES128, Digest: crypto.SHA256,
				GET: true, TransactionID: tx, Recipient: ra, SignWith: old, SignKey: key})
			if err != nil {
				t.Fatalf("PKCSReq renewal with the same key and transactionID: %v", err)
			}
			return certs[0]
		}
		renewed := renewal()
		if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 {
			t.Fatal("the renewal was answered with the first enrollment's certificate")
		}
		if !bytes.Equal(renewed.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo) || renewed.Subject.CommonName != subject.CommonName {
			t.Fatalf("renewed certificate %s: want the same key and subject", renewed.Subject)
		}
		roots := caCerts(t, s, "renew")
		checkChain(t, renewed, roots[len(roots)-1], nil)
		row, err := s.Store().GetCertificate(ctx, renewed.SerialNumber.Text(16))
		if err != nil || row.RenewedSerial != old.SerialNumber.Text(16) {
			t.Fatalf("renewed certificate row %+v %v: must record the certificate it renewed", row, err)
		}
		// revoke_old: the renewed certificate is superseded.
		if prev, err := s.Store().GetCertificate(ctx, old.SerialNumber.Text(16)); err != nil || prev.Status != "revoked" || prev.RevocationReason != 4 {
			t.Fatalf("revoke_old: the renewed certificate is %s (reason %d, %v), want revoked/superseded", prev.Status, prev.RevocationReason, err)
		}
		// A retransmission of the renewal (signed with the now revoked
		// certificate) gets the same new certificate, and issues nothing.
		if again := renewal(); !again.Equal(renewed) {
			t.Fatalf("retransmitted renewal answered serial %s, want %s", again.SerialNumber.Text(16), renewed.SerialNumber.Text(16))
		}
		n := 0
		for _, row := range s.Certificates() {
			if row.Subject == "CN="+subject.CommonName {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("%d certificates for %s, want the first and its renewal", n, subject.CommonName)
		}

		// On a profile whose renewal window is not open yet, the same
		// renewal is refused: neither the first certificate answered nor a
		// new enrollment made.
		strict := client.New(s.URL("strict"))
		sra, _ := client.Recipient(caCerts(t, s, "strict"))
		sfirst, err := strict.Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256,
			GET: true, TransactionID: tx, Recipient: sra})
		if err != nil {
			t.Fatalf("first enrollment in strict: %v", err)
		}
		_, err = strict.Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Cipher: cms.AES128, Digest: crypto.SHA256,
			GET: true, TransactionID: tx, Recipient: sra, SignWith: sfirst[0], SignKey: key})
		if failInfo(err) != scep.BadRequest || !strings.Contains(err.Error(), "renewal is allowed from") {
			t.Fatalf("early same-key PKCSReq renewal: %v, want FAILURE badRequest naming the window", err)
		}
		if prev, _ := s.Store().GetCertificate(ctx, sfirst[0].SerialNumber.Text(16)); prev.Status != "valid" {
			t.Fatalf("a refused renewal left the certificate %s", prev.Status)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		old := enrollIn(t, s, "strict", "strict-dev")
		// Window 0.5: too early right after issuance.
		_, err := renew(s, "strict", old, newKey(t), pkix.Name{CommonName: "strict-dev"}, true)
		if failInfo(err) != scep.BadRequest || !strings.Contains(err.Error(), "renewal is allowed from") {
			t.Fatalf("early renewal: %v", err)
		}
		// A certificate naming this CA as its issuer (and its serial's
		// predecessor's key) but signed by another key is not ours.
		fake := sceptest.Forged(t, old.key, old.cert.RawIssuer, old.cert.Subject)
		if _, err := renew(s, "strict", identity{old.key, fake}, newKey(t), pkix.Name{CommonName: "strict-dev"}, true); failInfo(err) != scep.BadRequest ||
			!strings.Contains(err.Error(), "must be signed with a valid certificate") {
			t.Fatalf("RenewalReq with a foreign certificate: %v", err)
		}
		// A new subject is refused (on a profile without a window).
		old2 := enrollIn(t, s, "renew", "keep-subject")
		if _, err := renew(s, "renew", old2, newKey(t), pkix.Name{CommonName: "another-name"}, true); failInfo(err) != scep.BadRequest ||
			!strings.Contains(err.Error(), "must keep the subject") {
			t.Fatalf("subject change: %v", err)
		}
	})
}

// TestApprovalAndPolling: a manual-approval profile answers PENDING, the
// client polls, an operator approves (CLI) or rejects; micromdm's
// scepclient waits through its own polling loop.
func TestApprovalAndPolling(t *testing.T) {
	s := startLifecycle(t)
	certs := caCerts(t, s, "approve")
	ra, _ := client.Recipient(certs)
	root := certs[len(certs)-1]
	c := client.New(s.URL("approve"))
	key := newKey(t)
	subject := pkix.Name{CommonName: "needs-approval"}
	_, err := c.Enroll(context.Background(), client.Enrollment{Key: key, Subject: subject, Challenge: challenge, Cipher: cms.TripleDES, Digest: crypto.SHA256,
		TransactionID: "approve-me", Recipient: ra})
	if !errors.Is(err, client.ErrPending) {
		t.Fatalf("manual approval: %v, want PENDING", err)
	}
	self, _ := client.SelfSigned(key, subject)
	who := client.Requester{Cert: self, Key: key}
	if _, err := c.Poll(context.Background(), who, root, subject, "approve-me", ra, cms.AES128); !errors.Is(err, client.ErrPending) {
		t.Fatalf("poll before a decision: %v, want PENDING", err)
	}
	if len(s.Certificates()) != 0 {
		t.Fatal("a pending request has a certificate")
	}
	out, err := cli(t, s, nil, "request", "list", "--data", s.DataDir)
	if err != nil || !strings.Contains(out, "approve-me") || !strings.Contains(out, "CN=needs-approval") {
		t.Fatalf("request list: %v\n%s", err, out)
	}
	if out, err := cli(t, s, nil, "request", "approve", "--profile", "approve", "approve-me", "--data", s.DataDir); err != nil {
		t.Fatalf("request approve: %v\n%s", err, out)
	}
	got, err := c.Poll(context.Background(), who, root, subject, "approve-me", ra, cms.AES128)
	if err != nil || got[0].Subject.CommonName != "needs-approval" {
		t.Fatalf("poll after approval: %v", err)
	}
	checkChain(t, got[0], root, nil)

	// Rejection.
	key2 := newKey(t)
	_, err = c.Enroll(context.Background(), client.Enrollment{Key: key2, Subject: pkix.Name{CommonName: "reject-me"}, Challenge: challenge,
		Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: "reject-me", Recipient: ra})
	if !errors.Is(err, client.ErrPending) {
		t.Fatal(err)
	}
	if out, err := cli(t, s, nil, "request", "reject", "--profile", "approve", "reject-me", "--reason", "unknown device", "--data", s.DataDir); err != nil {
		t.Fatalf("request reject: %v\n%s", err, out)
	}
	self2, _ := client.SelfSigned(key2, pkix.Name{CommonName: "reject-me"})
	_, err = c.Poll(context.Background(), client.Requester{Cert: self2, Key: key2}, root, pkix.Name{CommonName: "reject-me"}, "reject-me", ra, cms.AES128)
	if failInfo(err) != scep.BadRequest || !strings.Contains(err.Error(), "unknown device") {
		t.Fatalf("poll after rejection: %v", err)
	}
	if _, err := c.Poll(context.Background(), client.Requester{Cert: self2, Key: key2}, root, pkix.Name{CommonName: "x"}, "never-sent", ra, cms.AES128); failInfo(err) != scep.BadCertID {
		t.Fatalf("poll for an unknown transaction: %v, want badCertId", err)
	}

	t.Run("certmonger waits, then collects the approved certificate", func(t *testing.T) {
		sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
		cm := sceptest.StartCertmonger(t)
		cm.AddCA(t, "appr", s.URL("approve"), root)
		key, cert := cm.KeyAndCertPaths(t, "pending")
		if out, err := cm.Getcert("request", "-c", "appr", "-k", key, "-f", cert, "-N", "CN=cm-pending", "-L", challenge, "-I", "cmwait"); err != nil {
			t.Fatalf("getcert request: %v\n%s", err, out)
		}
		// certmonger shows the PENDING answer as a waiting state.
		var txid string
		for deadline := time.Now().Add(30 * time.Second); txid == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			list, _ := cli(t, s, nil, "request", "list", "--profile", "approve", "--data", s.DataDir, "-o", "json")
			if i := strings.Index(list, `"subject": "CN=cm-pending"`); i >= 0 {
				j := strings.LastIndex(list[:i], `"transaction_id": "`)
				rest := list[j+len(`"transaction_id": "`):]
				txid = rest[:strings.Index(rest, `"`)]
			}
		}
		if txid == "" {
			t.Fatal("certmonger's request never became pending")
		}
		out, _ := cm.Getcert("list", "-i", "cmwait")
		if !strings.Contains(out, "status: CA_WORKING") && !strings.Contains(out, "SUBMITTING") {
			t.Fatalf("while pending certmonger shows:\n%s", out)
		}
		if out, err := cli(t, s, nil, "request", "approve", "--profile", "approve", txid, "--data", s.DataDir); err != nil {
			t.Fatalf("approve: %v\n%s", err, out)
		}
		// certmonger asks again (here at once) and gets the issued certificate.
		if out, err := cm.Getcert("resubmit", "-i", "cmwait", "-w"); err != nil {
			t.Fatalf("getcert resubmit: %v\n%s", err, out)
		}
		b, err := os.ReadFile(cert)
		if err != nil {
			out, _ := cm.Getcert("list", "-i", "cmwait")
			t.Fatalf("no certificate after approval: %v\n%s", err, out)
		}
		checkChain(t, parsePEM(t, b), root, nil)
	})

	t.Run("micromdm scepclient waits for approval", func(t *testing.T) {
		bin := sceptest.RequireTool(t, "scepclient", "scep")
		fp := sha256.Sum256(ra.Raw)
		dir := t.TempDir()
		done := make(chan error, 1)
		var out string
		go func() {
			var err error
			out, err = sceptest.Run(t, 2*time.Minute, nil, dir, bin, "-server-url", s.URL("approve"), "-private-key", filepath.Join(dir, "key.pem"),
				"-challenge", challenge, "-cn", "mm-waiting", "-ca-fingerprint", hex.EncodeToString(fp[:]))
			done <- err
		}()
		// Approve once it is pending.
		deadline := time.Now().Add(time.Minute)
		var txid string
		for txid == "" && time.Now().Before(deadline) {
			list, _ := cli(t, s, nil, "request", "list", "--profile", "approve", "--data", s.DataDir, "-o", "json")
			if i := strings.Index(list, `"transaction_id": "`); i >= 0 && strings.Contains(list, "mm-waiting") {
				rest := list[i+len(`"transaction_id": "`):]
				txid = rest[:strings.Index(rest, `"`)]
			}
			time.Sleep(200 * time.Millisecond)
		}
		if txid == "" {
			t.Fatal("scepclient's request never became pending")
		}
		if out, err := cli(t, s, nil, "request", "approve", "--profile", "approve", txid, "--data", s.DataDir); err != nil {
			t.Fatalf("approve: %v\n%s", err, out)
		}
		if err := <-done; err != nil {
			t.Fatalf("scepclient after approval: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "client.pem"))
		checkChain(t, parsePEM(t, b), root, nil)
	})
}

// TestRevocationCRLAndOCSP: revoke through the CLI, then openssl sees it
// in the CRL (fetched from the CDP URL in the certificate and by SCEP
// GetCRL) and from the OCSP responder; GetCert returns certificates.
func TestRevocationCRLAndOCSP(t *testing.T) {
	openssl := sceptest.RequireTool(t, "openssl", "openssl")
	s := startLifecycle(t)
	certs := caCerts(t, s, "renew")
	ra, _ := client.Recipient(certs)
	root := certs[len(certs)-1]
	good := enrollIn(t, s, "renew", "stays-good")
	bad := enrollIn(t, s, "renew", "gets-revoked")
	if len(bad.cert.CRLDistributionPoints) != 1 || !strings.HasSuffix(bad.cert.CRLDistributionPoints[0], "/crl/root.crl") {
		t.Fatalf("CDP %v", bad.cert.CRLDistributionPoints)
	}
	if out, err := cli(t, s, nil, "cert", "revoke", bad.cert.SerialNumber.Text(16), "--reason", "keyCompromise", "--data", s.DataDir); err != nil {
		t.Fatalf("cert revoke: %v\n%s", err, out)
	}
	dir := t.TempDir()
	write := func(name string, der []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pemOf(der), 0o644)
		return p
	}
	rootPEM, goodPEM, badPEM := write("root.pem", root.Raw), write("good.pem", good.cert.Raw), write("bad.pem", bad.cert.Raw)

	// The CRL from its distribution point.
	crlDER := httpGet(t, bad.cert.CRLDistributionPoints[0])
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(bad.cert.SerialNumber) != 0 ||
		crl.RevokedCertificateEntries[0].ReasonCode != 1 || crl.Number.Sign() <= 0 {
		t.Fatalf("CRL entries %+v number %v", crl.RevokedCertificateEntries, crl.Number)
	}
	// A cache revalidating the CRL it holds (curl as the cache) hears 304
	// Not Modified, without the CRL.
	curl := sceptest.RequireTool(t, "curl", "curl")
	crlURL := bad.cert.CRLDistributionPoints[0]
	head, err := sceptest.Run(t, time.Minute, nil, "", curl, "-sS", "-D", "-", "-o", "/dev/null", crlURL)
	etag := ""
	for _, line := range strings.Split(head, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Etag: "); ok {
			etag = v
		}
	}
	if err != nil || etag == "" {
		t.Fatalf("curl %s: %v, no ETag in\n%s", crlURL, err, head)
	}
	if code, err := sceptest.Run(t, time.Minute, nil, "", curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: "+etag, crlURL); err != nil || code != "304" {
		t.Fatalf("curl -H 'If-None-Match: %s' %s: %v %q, want 304", etag, crlURL, err, code)
	}
	crlFile := filepath.Join(dir, "root.crl")
	os.WriteFile(crlFile, crlDER, 0o644)
	if out, err := sceptest.Run(t, time.Minute, nil, "", openssl, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", rootPEM, "-noout", "-verify"); err != nil ||
		!strings.Contains(out, "verify OK") {
		t.Fatalf("openssl crl -verify: %v\n%s", err, out)
	}
	crlPEM := filepath.Join(dir, "root-crl.pem")
	sceptest.Run(t, time.Minute, nil, "", openssl, "crl", "-inform", "DER", "-in", crlFile, "-out", crlPEM)
	if out, err := sceptest.Run(t, time.Minute, nil, "", openssl, "verify", "-crl_check", "-CAfile", rootPEM, "-CRLfile", crlPEM, badPEM); err == nil ||
		!strings.Contains(out, "certificate revoked") {
		t.Fatalf("openssl verify -crl_check of the revoked certificate: %v\n%s", err, out)
	}
	if out, err := sceptest.Run(t, time.Minute, nil, "", openssl, "verify", "-crl_check", "-CAfile", rootPEM, "-CRLfile", crlPEM, goodPEM); err != nil {
		t.Fatalf("openssl verify -crl_check of the good certificate: %v\n%s", err, out)
	}

	// The same CRL through SCEP GetCRL.
	got, err := client.New(s.URL("renew")).GetCRL(context.Background(), client.Requester{Cert: good.cert, Key: good.key}, good.cert, ra)
	if err != nil || got.Number.Cmp(crl.Number) < 0 || len(got.RevokedCertificateEntries) != 1 {
		t.Fatalf("GetCRL: %v", err)
	}

	// OCSP.
	for _, tt := range []struct{ cert, want string }{{goodPEM, ": good"}, {badPEM, ": revoked"}} {
		out, err := sceptest.Run(t, time.Minute, nil, "", openssl, "ocsp", "-issuer", rootPEM, "-cert", tt.cert, "-url", s.BaseURL()+"/ocsp/root",
			"-CAfile", rootPEM, "-resp_text")
		if err != nil || !strings.Contains(out, tt.want) || !strings.Contains(out, "Response verify OK") {
			t.Fatalf("openssl ocsp for %s: %v\n%s", tt.cert, err, out)
		}
	}

	// GetCert: by a holder of one of our certificates; unknown serial is badCertId.
	c := client.New(s.URL("renew"))
	fetched, err := c.GetCert(context.Background(), client.Requester{Cert: good.cert, Key: good.key}, root, bad.cert.SerialNumber, ra)
	if err != nil || !fetched[0].Equal(bad.cert) {
		t.Fatalf("GetCert: %v", err)
	}
	if _, err := c.GetCert(context.Background(), client.Requester{Cert: good.cert, Key: good.key}, root, big.NewInt(12345), ra); failInfo(err) != scep.BadCertID {
		t.Fatalf("GetCert of an unknown serial: %v, want badCertId", err)
	}
	stranger := newKey(t)
	strangerCert := selfSignedCert(t, stranger, "stranger")
	if _, err := c.GetCert(context.Background(), client.Requester{Cert: strangerCert, Key: stranger}, root, good.cert.SerialNumber, ra); failInfo(err) != scep.BadRequest {
		t.Fatalf("GetCert by a stranger: %v, want badRequest", err)
	}
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	out, err := sceptest.HTTPGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRollover: GetNextCACert hands out the next CA before the switch;
// after it, issuance is under the next CA while certificates of the old
// one still renew and still appear on the old CA's CRL.
func TestRollover(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "scepd.yaml")
	write := func(at time.Time) {
		os.WriteFile(cfgPath, []byte(`
cas:
  - id: old
    create: {subject: "CN=Old Root,O=E2E", key_type: ecdsa-p256}
  - id: new
    create: {subject: "CN=New Root,O=E2E", key_type: ecdsa-p384}
profiles:
  - id: roll
    ca: old
    challenge: {password_env: E2E_CHALLENGE}
    rollover: {next_ca: new, at: "`+at.UTC().Format(time.RFC3339)+`"}
`), 0o600)
	}
	write(time.Now().Add(30 * 24 * time.Hour))
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Env: []string{"E2E_CHALLENGE=" + challenge}, Args: []string{"--config", cfgPath}})
	caps, _ := client.New(s.URL("roll")).GetCACaps(context.Background())
	if !strings.Contains(strings.Join(caps, " "), "GetNextCACert") {
		t.Fatalf("caps %v lack GetNextCACert while a rollover is scheduled", caps)
	}
	before := caCerts(t, s, "roll")
	ra := before[0]
	body := httpGet(t, s.URL("roll")+"?operation=GetNextCACert")
	sd, err := cms.ParseSignedData(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sd.Verify(cms.FromX509(ra)); err != nil {
		t.Fatalf("GetNextCACert is not signed by the current RA: %v", err)
	}
	next, err := scep.DegenerateCertificates(sd.Content)
	if err != nil || len(next) != 2 {
		t.Fatalf("GetNextCACert content: %v (%d certificates)", err, len(next))
	}
	nextRA, _ := x509.ParseCertificate(next[0])
	nextRoot, _ := x509.ParseCertificate(next[1])
	if nextRoot.Subject.CommonName != "New Root" || nextRA.CheckSignatureFrom(nextRoot) != nil {
		t.Fatalf("next CA %q, next RA issued by it: %v", nextRoot.Subject, nextRA.CheckSignatureFrom(nextRoot))
	}
	oldCert := enrollIn(t, s, "roll", "before-switch")
	if oldCert.cert.Issuer.CommonName != "Old Root" {
		t.Fatalf("before the switch issued by %q", oldCert.cert.Issuer)
	}
	// A replica that switched a few seconds earlier hands out the next RA:
	// a request encrypted to it is answered here too, signed by it.
	if _, err := client.New(s.URL("roll")).GetCRL(context.Background(), client.Requester{Cert: oldCert.cert, Key: oldCert.key}, oldCert.cert, nextRA); err != nil {
		t.Fatalf("GetCRL encrypted to the next RA before the switch: %v", err)
	}

	// The switch time passes (restart with it in the past).
	s.Stop()
	write(time.Now().Add(-time.Minute))
	s = sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Env: []string{"E2E_CHALLENGE=" + challenge}, Args: []string{"--config", cfgPath}})
	after := caCerts(t, s, "roll")
	if !after[0].Equal(nextRA) || after[len(after)-1].Subject.CommonName != "New Root" {
		t.Fatalf("after the switch GetCACert serves %q", after[len(after)-1].Subject)
	}
	if caps, _ := client.New(s.URL("roll")).GetCACaps(context.Background()); strings.Contains(strings.Join(caps, " "), "GetNextCACert") {
		t.Fatal("GetNextCACert still advertised after the switch")
	}
	fresh := enrollIn(t, s, "roll", "after-switch")
	checkChain(t, fresh.cert, nextRoot, nil)
	// A certificate of the old CA still renews (into the new CA).
	renewed, err := renew(s, "roll", oldCert, newKey(t), pkix.Name{CommonName: "before-switch"}, true)
	if err != nil {
		t.Fatalf("renewing an old-CA certificate after the switch: %v", err)
	}
	checkChain(t, renewed[0], nextRoot, nil)
	// And its revocation lands on the old CA's CRL.
	if out, err := cli(t, s, nil, "cert", "revoke", oldCert.cert.SerialNumber.Text(16), "--reason", "superseded", "--data", s.DataDir); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	crl, err := x509.ParseRevocationList(httpGet(t, s.BaseURL()+"/crl/old.crl"))
	if err != nil || crl.CheckSignatureFrom(before[len(before)-1]) != nil || len(crl.RevokedCertificateEntries) != 1 ||
		crl.RevokedCertificateEntries[0].SerialNumber.Cmp(oldCert.cert.SerialNumber) != 0 {
		t.Fatalf("old CA's CRL: %v", err)
	}
	// SCEP GetCRL answers the CRL of the certificate's issuer: the old CA's
	// for the old certificate (listing it), the new CA's for the new one.
	afterRA, _ := client.Recipient(after)
	c := client.New(s.URL("roll"))
	got, err := c.GetCRL(context.Background(), client.Requester{Cert: fresh.cert, Key: fresh.key}, oldCert.cert, afterRA)
	if err != nil || got.CheckSignatureFrom(before[len(before)-1]) != nil || len(got.RevokedCertificateEntries) != 1 ||
		got.RevokedCertificateEntries[0].SerialNumber.Cmp(oldCert.cert.SerialNumber) != 0 {
		t.Fatalf("GetCRL for the old CA's certificate after the switch: %v; want the old CA's CRL listing it", err)
	}
	if got, err = c.GetCRL(context.Background(), client.Requester{Cert: fresh.cert, Key: fresh.key}, fresh.cert, afterRA); err != nil ||
		got.CheckSignatureFrom(nextRoot) != nil || len(got.RevokedCertificateEntries) != 0 {
		t.Fatalf("GetCRL for the new CA's certificate: %v; want the new CA's CRL, empty", err)
	}
	// A client that fetched GetCACert before the switch (a request pending
	// across it polls so) encrypts to the old RA: it still answers, and
	// signs the answer, until the rollover is finished.
	beforeRA, _ := client.Recipient(before)
	if got, err = c.GetCRL(context.Background(), client.Requester{Cert: fresh.cert, Key: fresh.key}, fresh.cert, beforeRA); err != nil ||
		got.CheckSignatureFrom(nextRoot) != nil {
		t.Fatalf("GetCRL encrypted to the RA before the switch: %v; want the new CA's CRL", err)
	}
	// Refusals too reach such a client (which RA signs them, the one it
	// encrypted to, pkiop's TestAlternateRA checks: this client does not pin
	// the RA).
	var f *client.Failure
	_, err = c.Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "des"}, Challenge: challenge,
		Cipher: cms.DES, Digest: crypto.SHA256, Recipient: beforeRA})
	if !errors.As(err, &f) || f.FailInfo != scep.BadAlg {
		t.Fatalf("a single-DES request encrypted to the RA before the switch: %v; want FAILURE badAlg", err)
	}
}
