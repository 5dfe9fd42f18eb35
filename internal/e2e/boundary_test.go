package e2e

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// boundaryConfig: profiles alpha and beta share CA one; beta hands out
// one-time challenges, approves by hand and adds an EKU. gamma may renew
// alpha's certificates (renewal.from_profiles); delta holds renewals for
// approval too; other issues under a CA of its own.
const boundaryConfig = `
cas:
  - id: one
    create: {subject: "CN=Boundary CA One,O=E2E", key_type: rsa-2048}
  - id: two
    create: {subject: "CN=Boundary CA Two,O=E2E", key_type: rsa-2048}
profiles:
  - id: alpha
    ca: one
    allow_des: true
    challenge: {password_env: E2E_CHALLENGE}
  - id: beta
    ca: one
    allow_des: true
    approval: manual
    challenge: {mode: dynamic}
    policy:
      ext_key_usage: [clientAuth, "1.3.6.1.4.1.99999.7.1"]
  - id: gamma
    ca: one
    allow_des: true
    challenge: {password_env: E2E_GAMMA_CHALLENGE}
    renewal: {from_profiles: [alpha], allow_key_reuse: true}
  - id: delta
    ca: one
    approval: manual
    challenge: {password_env: E2E_CHALLENGE}
    renewal: {approval: manual}
  - id: other
    ca: two
    challenge: {password_env: E2E_CHALLENGE}
`

// startBoundary serves boundaryConfig on SQLite, or on the PostgreSQL
// database db.
func startBoundary(t *testing.T, db string) *sceptest.Server {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	if err := os.WriteFile(cfg, []byte(boundaryConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg}
	if db != "" {
		args = append(args, "--database", db)
	}
	return sceptest.Start(t, sceptest.Options{
		DataDir: filepath.Join(dir, "data"),
		Env:     []string{"E2E_CHALLENGE=" + challenge, "E2E_GAMMA_CHALLENGE=gamma-only-challenge"},
		Args:    args,
	})
}

// boundaryTests run on SQLite (each its own Test) and on PostgreSQL
// (TestProfileBoundaryOnPostgres).
var boundaryTests = []struct {
	name string
	fn   func(t *testing.T, s *sceptest.Server)
}{
	{"RenewalStaysInItsProfile", renewalStaysInItsProfile},
	{"RenewalApproval", renewalApproval},
	{"CertPollOnlyForTheRequester", certPollOnlyForTheRequester},
	{"GetCertBoundary", getCertBoundary},
	{"ChangedCSRUnderOneTransactionID", changedCSRUnderOneTransactionID},
	{"TransactionIDWithAt", transactionIDWithAt},
	{"CertPollOnABusyTransactionID", certPollOnABusyTransactionID},
}

func TestRenewalStaysInItsProfile(t *testing.T) {
	renewalStaysInItsProfile(t, startBoundary(t, ""))
}

func TestRenewalApproval(t *testing.T) {
	renewalApproval(t, startBoundary(t, ""))
}

func TestCertPollOnlyForTheRequester(t *testing.T) {
	certPollOnlyForTheRequester(t, startBoundary(t, ""))
}

func TestGetCertBoundary(t *testing.T) {
	getCertBoundary(t, startBoundary(t, ""))
}

func TestChangedCSRUnderOneTransactionID(t *testing.T) {
	changedCSRUnderOneTransactionID(t, startBoundary(t, ""))
}

func TestTransactionIDWithAt(t *testing.T) {
	transactionIDWithAt(t, startBoundary(t, ""))
}

func TestCertPollOnABusyTransactionID(t *testing.T) {
	certPollOnABusyTransactionID(t, startBoundary(t, ""))
}

// TestProfileBoundaryOnPostgres: the same through replicas' backend (the
// transaction columns of migration 0006, the client-ID lookup).
func TestProfileBoundaryOnPostgres(t *testing.T) {
	for _, tt := range boundaryTests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, startBoundary(t, pgtest.Schema(t))) })
	}
}

// dbArgs points a CLI command at the server's database.
func dbArgs(s *sceptest.Server) []string {
	if db := s.Database(); db != "" {
		return []string{"--data", s.DataDir, "--database", db}
	}
	return []string{"--data", s.DataDir}
}

// certsOf returns the stored certificates of a profile.
func certsOf(s *sceptest.Server, profile string) []store.Certificate {
	var out []store.Certificate
	for _, c := range s.Certificates() {
		if c.ProfileID == profile {
			out = append(out, c)
		}
	}
	return out
}

// mintChallenge hands out a one-time challenge of a dynamic profile (CLI).
func mintChallenge(t *testing.T, s *sceptest.Server, profile string) string {
	t.Helper()
	out, err := cli(t, s, nil, append([]string{"challenge", "create", "--profile", profile}, dbArgs(s)...)...)
	if err != nil {
		t.Fatalf("challenge create: %v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

func approve(t *testing.T, s *sceptest.Server, profile, txid string) {
	t.Helper()
	if out, err := cli(t, s, nil, append([]string{"request", "approve", "--profile", profile, txid}, dbArgs(s)...)...); err != nil {
		t.Fatalf("request approve %s/%s: %v\n%s", profile, txid, err, out)
	}
}

var oidBetaEKU = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7, 1}

// renewalStaysInItsProfile: a certificate renews only in the profile
// that issued it. Another profile refuses a RenewalReq signed with it and
// takes a PKCSReq signed with it as a first enrollment (challenge, manual
// approval and that profile's policy apply); renewal.from_profiles opens
// the boundary for the profiles it names, one way.
func renewalStaysInItsProfile(t *testing.T, s *sceptest.Server) {
	ctx := context.Background()
	one := caCerts(t, s, "beta")
	root := one[len(one)-1]
	betaRA, _ := client.Recipient(one)

	t.Run("RenewalReq signed with an alpha certificate is refused by beta", func(t *testing.T) {
		a := enrollIn(t, s, "alpha", "alpha-dev")
		_, err := renew(s, "beta", a, newKey(t), pkix.Name{CommonName: "alpha-dev"}, true)
		if failInfo(err) != scep.BadRequest || !strings.Contains(err.Error(), "issued by profile alpha") ||
			!strings.Contains(err.Error(), "renews only its own certificates") {
			t.Fatalf("beta renewing an alpha certificate: %v, want FAILURE badRequest naming profile alpha", err)
		}
		if n := len(certsOf(s, "beta")); n != 0 {
			t.Fatalf("beta issued %d certificates", n)
		}
		if list, _ := s.Store().ListTransactions(ctx, store.TransactionFilter{ProfileID: "beta"}); len(list) != 0 {
			t.Fatalf("beta stored %d requests for a refused renewal", len(list))
		}
	})

	t.Run("PKCSReq signed with an alpha certificate is a first enrollment in beta", func(t *testing.T) {
		a := enrollIn(t, s, "alpha", "sscep-dev")
		// Without beta's challenge: refused, as any first enrollment.
		if _, err := renew(s, "beta", a, newKey(t), pkix.Name{CommonName: "sscep-dev"}, false); failInfo(err) != scep.BadRequest ||
			!strings.Contains(err.Error(), "challenge password") {
			t.Fatalf("sscep-style renewal of an alpha certificate in beta: %v, want a challenge refusal", err)
		}
		// With beta's one-time challenge: PENDING (beta approves by hand),
		// then beta's certificate with beta's EKU; not a renewal.
		key := newKey(t)
		subject := pkix.Name{CommonName: "sscep-dev"}
		_, err := client.New(s.URL("beta")).Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Challenge: mintChallenge(t, s, "beta"),
			Cipher: cms.AES128, Digest: crypto.SHA256, SignWith: a.cert, SignKey: a.key, TransactionID: "beta-first", Recipient: betaRA})
		if !errors.Is(err, client.ErrPending) {
			t.Fatalf("signed PKCSReq with beta's challenge: %v, want PENDING (manual approval)", err)
		}
		approve(t, s, "beta", "beta-first")
		// sscep polls signed as it sent the request: with the alpha certificate.
		got, err := client.New(s.URL("beta")).Poll(ctx, client.Requester{Cert: a.cert, Key: a.key}, root, subject, "beta-first", betaRA, cms.AES128)
		if err != nil {
			t.Fatalf("poll after approval: %v", err)
		}
		c := got[0]
		if !slices.ContainsFunc(c.UnknownExtKeyUsage, oidBetaEKU.Equal) {
			t.Fatalf("beta's certificate lacks beta's EKU: %v", c.UnknownExtKeyUsage)
		}
		row, err := s.Store().GetCertificate(ctx, c.SerialNumber.Text(16))
		if err != nil || row.ProfileID != "beta" || row.RenewedSerial != "" {
			t.Fatalf("stored %+v %v: want a beta first enrollment, not a renewal", row, err)
		}
		// beta's own certificate renews in beta at once: renewal.approval
		// defaults to auto (the device was approved once).
		renewed, err := renew(s, "beta", identity{key, c}, newKey(t), subject, true)
		if err != nil {
			t.Fatalf("beta renewing its own certificate: %v", err)
		}
		if row, _ := s.Store().GetCertificate(ctx, renewed[0].SerialNumber.Text(16)); row.RenewedSerial != c.SerialNumber.Text(16) {
			t.Fatalf("renewal row renews %q", row.RenewedSerial)
		}
	})

	t.Run("from_profiles: gamma renews alpha certificates, alpha does not renew gamma's", func(t *testing.T) {
		a := enrollIn(t, s, "alpha", "moving-dev")
		gkey := newKey(t)
		got, err := renew(s, "gamma", a, gkey, pkix.Name{CommonName: "moving-dev"}, true)
		if err != nil {
			t.Fatalf("gamma renewing an alpha certificate: %v", err)
		}
		row, _ := s.Store().GetCertificate(ctx, got[0].SerialNumber.Text(16))
		if row.ProfileID != "gamma" || row.RenewedSerial != a.cert.SerialNumber.Text(16) {
			t.Fatalf("renewed row %+v", row)
		}
		a2 := enrollIn(t, s, "alpha", "moving-sscep")
		if _, err := renew(s, "gamma", a2, newKey(t), pkix.Name{CommonName: "moving-sscep"}, false); err != nil {
			t.Fatalf("gamma renewing an alpha certificate by signed PKCSReq: %v", err)
		}
		g := identity{gkey, got[0]}
		if _, err := renew(s, "alpha", g, newKey(t), pkix.Name{CommonName: "moving-dev"}, true); failInfo(err) != scep.BadRequest ||
			!strings.Contains(err.Error(), "issued by profile gamma") {
			t.Fatalf("alpha renewing a gamma certificate: %v, want FAILURE", err)
		}
	})

	t.Run("micromdm scepclient", func(t *testing.T) {
		bin := sceptest.RequireTool(t, "scepclient", "scep")
		dir := t.TempDir()
		run := func(profile string) (string, error) {
			ra, _ := client.Recipient(caCerts(t, s, profile))
			fp := sha256.Sum256(ra.Raw)
			return sceptest.Run(t, time.Minute, nil, dir, bin, "-server-url", s.URL(profile), "-private-key", filepath.Join(dir, "key.pem"),
				"-challenge", challenge, "-cn", "mm-boundary", "-ca-fingerprint", hex.EncodeToString(fp[:]))
		}
		if out, err := run("alpha"); err != nil {
			t.Fatalf("scepclient enroll in alpha: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "client.pem"))
		first := parsePEM(t, b)
		// client.pem exists: scepclient sends a RenewalReq signed with it.
		before := len(certsOf(s, "beta"))
		if out, err := run("beta"); err == nil {
			t.Fatalf("scepclient renewed an alpha certificate in beta:\n%s", out)
		}
		if len(certsOf(s, "beta")) != before || !s.LogContains("the signing certificate was issued by profile alpha") {
			t.Fatal("beta's refusal of scepclient's RenewalReq is not in the log, or beta issued")
		}
		if out, err := run("gamma"); err != nil {
			t.Fatalf("scepclient renewing in gamma (from_profiles: [alpha]): %v\n%s", err, out)
		}
		b, _ = os.ReadFile(filepath.Join(dir, "client.pem"))
		second := parsePEM(t, b)
		row, _ := s.Store().GetCertificate(ctx, second.SerialNumber.Text(16))
		if row.ProfileID != "gamma" || row.RenewedSerial != first.SerialNumber.Text(16) {
			t.Fatalf("scepclient's renewal in gamma: %+v", row)
		}
	})
}

// renewalApproval: renewal.approval manual holds renewals PENDING on a
// manual-approval profile; approval issues them as renewals of the old
// certificate; the device polls with the transactionID it sent.
func renewalApproval(t *testing.T, s *sceptest.Server) {
	ctx := context.Background()
	certs := caCerts(t, s, "delta")
	ra, _ := client.Recipient(certs)
	root := certs[len(certs)-1]
	c := client.New(s.URL("delta"))
	key := newKey(t)
	subject := pkix.Name{CommonName: "delta-dev"}
	if _, err := c.Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256,
		TransactionID: "delta-first", Recipient: ra}); !errors.Is(err, client.ErrPending) {
		t.Fatalf("first enrollment: %v, want PENDING", err)
	}
	approve(t, s, "delta", "delta-first")
	self, _ := client.SelfSigned(key, subject)
	got, err := c.Poll(ctx, client.Requester{Cert: self, Key: key}, root, subject, "delta-first", ra, cms.AES128)
	if err != nil {
		t.Fatal(err)
	}
	old := identity{key, got[0]}

	next := newKey(t)
	_, err = c.Enroll(ctx, client.Enrollment{Key: next, Subject: subject, Cipher: cms.AES128, Digest: crypto.SHA256,
		SignWith: old.cert, SignKey: old.key, Renewal: true, TransactionID: "delta-renew", Recipient: ra})
	if !errors.Is(err, client.ErrPending) {
		t.Fatalf("renewal on a profile with renewal.approval manual: %v, want PENDING", err)
	}
	if n := len(certsOf(s, "delta")); n != 1 {
		t.Fatalf("delta has %d certificates while the renewal waits, want 1", n)
	}
	// The client polls with the transactionID it sent, signed as it sent
	// the renewal (with the old certificate).
	renewer := client.Requester{Cert: old.cert, Key: old.key}
	if _, err := c.Poll(ctx, renewer, root, subject, "delta-renew", ra, cms.AES128); !errors.Is(err, client.ErrPending) {
		t.Fatalf("poll before approval: %v, want PENDING", err)
	}
	pending, err := s.Store().ListTransactions(ctx, store.TransactionFilter{ProfileID: "delta", Status: store.StatusPending})
	if err != nil || len(pending) != 1 || pending[0].RenewsSerial != old.cert.SerialNumber.Text(16) {
		t.Fatalf("pending renewal rows %+v %v", pending, err)
	}
	approve(t, s, "delta", pending[0].TransactionID)
	got, err = c.Poll(ctx, renewer, root, subject, "delta-renew", ra, cms.AES128)
	if err != nil {
		t.Fatalf("poll after approval: %v", err)
	}
	if !got[0].PublicKey.(*rsa.PublicKey).Equal(&next.PublicKey) {
		t.Fatal("the approved renewal is not for the renewal's key")
	}
	row, _ := s.Store().GetCertificate(ctx, got[0].SerialNumber.Text(16))
	if row.RenewedSerial != old.cert.SerialNumber.Text(16) {
		t.Fatalf("the approved renewal renews %q, want %s", row.RenewedSerial, old.cert.SerialNumber.Text(16))
	}
}

// certPollOnlyForTheRequester: CertPoll is answered only to the key
// that sent the request; anyone else hears what an unknown transaction
// gets.
func certPollOnlyForTheRequester(t *testing.T, s *sceptest.Server) {
	ctx := context.Background()
	certs := caCerts(t, s, "delta")
	ra, _ := client.Recipient(certs)
	root := certs[len(certs)-1]
	c := client.New(s.URL("delta"))
	key := newKey(t)
	subject := pkix.Name{CommonName: "polled"}
	if _, err := c.Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256,
		TransactionID: "poll-me", Recipient: ra}); !errors.Is(err, client.ErrPending) {
		t.Fatalf("enroll: %v, want PENDING", err)
	}
	stranger := newKey(t)
	strangerSelf, _ := client.SelfSigned(stranger, subject)
	poll := func(who client.Requester, txid string) error {
		_, err := c.Poll(ctx, who, root, subject, txid, ra, cms.AES128)
		return err
	}
	unknown := poll(client.Requester{Cert: strangerSelf, Key: stranger}, "never-sent")
	if failInfo(unknown) != scep.BadCertID {
		t.Fatalf("poll of an unknown transaction: %v", unknown)
	}
	answer := func(err error, txid string) string { return strings.ReplaceAll(err.Error(), txid, "TXID") }
	for _, when := range []string{"pending", "issued"} {
		err := poll(client.Requester{Cert: strangerSelf, Key: stranger}, "poll-me")
		if err == nil || errors.Is(err, client.ErrPending) || answer(err, "poll-me") != answer(unknown, "never-sent") {
			t.Fatalf("a stranger polling a %s request: %v; want the unknown-transaction answer %q", when, err, unknown)
		}
		self, _ := client.SelfSigned(key, subject)
		err = poll(client.Requester{Cert: self, Key: key}, "poll-me")
		if when == "pending" {
			if !errors.Is(err, client.ErrPending) {
				t.Fatalf("the requester polling: %v, want PENDING", err)
			}
			approve(t, s, "delta", "poll-me")
		} else if err != nil {
			t.Fatalf("the requester polling after approval: %v", err)
		}
	}
}

// getCertBoundary: GetCert answers only certificates of the profile's
// CA, and sscep's way of naming the issuer (the RA's subject, after
// `sscep getca` handed it the RA as -c) names the profile's CA.
func getCertBoundary(t *testing.T, s *sceptest.Server) {
	ctx := context.Background()
	alphaCerts := caCerts(t, s, "alpha")
	alphaRA, _ := client.Recipient(alphaCerts)
	caOne := alphaCerts[len(alphaCerts)-1]
	otherCerts := caCerts(t, s, "other")
	otherRA, _ := client.Recipient(otherCerts)
	caTwo := otherCerts[len(otherCerts)-1]
	betaRA, _ := client.Recipient(caCerts(t, s, "beta"))
	a := enrollIn(t, s, "alpha", "getcert-a")
	a2 := enrollIn(t, s, "alpha", "getcert-a2")
	o := enrollIn(t, s, "other", "getcert-o")
	alpha, other := client.New(s.URL("alpha")), client.New(s.URL("other"))
	me := client.Requester{Cert: a.cert, Key: a.key}

	t.Run("across CAs refused", func(t *testing.T) {
		if _, err := alpha.GetCert(ctx, me, caOne, o.cert.SerialNumber, alphaRA); failInfo(err) != scep.BadCertID {
			t.Fatalf("alpha (CA one) handing out a CA two certificate: %v, want badCertId", err)
		}
		if _, err := other.GetCert(ctx, client.Requester{Cert: o.cert, Key: o.key}, caTwo, a.cert.SerialNumber, otherRA); failInfo(err) != scep.BadCertID {
			t.Fatalf("other (CA two) handing out a CA one certificate: %v, want badCertId", err)
		}
		got, err := alpha.GetCert(ctx, me, caOne, a2.cert.SerialNumber, alphaRA)
		if err != nil || !got[0].Equal(a2.cert) {
			t.Fatalf("GetCert within CA one: %v", err)
		}
	})

	t.Run("sscep names the RA as issuer", func(t *testing.T) {
		// sscep getcert -c ca.crt-0 (the RA) -l local.crt -k local.key -s SERIAL:
		// IssuerAndSerialNumber carries the RA's subject, signed with local.crt.
		got, err := alpha.GetCert(ctx, me, alphaRA, a2.cert.SerialNumber, alphaRA)
		if err != nil || !got[0].Equal(a2.cert) {
			t.Fatalf("GetCert naming alpha's RA: %v", err)
		}
		// Only the profile's own RA names its CA.
		if _, err := alpha.GetCert(ctx, me, betaRA, a2.cert.SerialNumber, alphaRA); failInfo(err) != scep.BadCertID {
			t.Fatalf("GetCert on alpha naming beta's RA: %v, want badCertId", err)
		}
	})
}

// changedCSRUnderOneTransactionID: a request reusing a transactionID
// with the same key but a new CSR (certmonger adding a SAN; sscep derives
// the transactionID from the key) is a new request with its own
// certificate; a retransmission of either CSR gets its own answer again;
// CertPoll finds the newest.
func changedCSRUnderOneTransactionID(t *testing.T, s *sceptest.Server) {
	ctx := context.Background()
	certs := caCerts(t, s, "alpha")
	ra, _ := client.Recipient(certs)
	root := certs[len(certs)-1]
	c := client.New(s.URL("alpha"))
	key := newKey(t)
	subject := pkix.Name{CommonName: "san-dev"}
	send := func(pw string, dns ...string) (*x509.Certificate, error) {
		got, err := c.Enroll(ctx, client.Enrollment{Key: key, Subject: subject, DNSNames: dns, Challenge: pw, Cipher: cms.AES128,
			Digest: crypto.SHA256, TransactionID: "same-txid", Recipient: ra})
		if err != nil {
			return nil, err
		}
		return got[0], nil
	}
	first, err := send(challenge, "a.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := send("wrong-challenge-123", "a.example", "b.example"); failInfo(err) != scep.BadRequest {
		t.Fatalf("a changed CSR without the challenge: %v, want FAILURE (authorised on its own)", err)
	}
	second, err := send(challenge, "a.example", "b.example")
	if err != nil {
		t.Fatalf("a changed CSR under a used transactionID: %v", err)
	}
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || !slices.Contains(second.DNSNames, "b.example") {
		t.Fatalf("the changed CSR got %v (SANs %v); want a new certificate with b.example", second.SerialNumber, second.DNSNames)
	}
	for _, tt := range []struct {
		name string
		dns  []string
		want *x509.Certificate
	}{{"second", []string{"a.example", "b.example"}, second}, {"first", []string{"a.example"}, first}} {
		again, err := send(challenge, tt.dns...)
		if err != nil || again.SerialNumber.Cmp(tt.want.SerialNumber) != 0 {
			t.Fatalf("identical retransmission of the %s CSR: %v, serial %v; want the same certificate %v", tt.name, err, again, tt.want.SerialNumber)
		}
	}
	if n := len(certsOf(s, "alpha")); n != 2 {
		t.Fatalf("alpha has %d certificates, want 2", n)
	}
	self, _ := client.SelfSigned(key, subject)
	got, err := c.Poll(ctx, client.Requester{Cert: self, Key: key}, root, subject, "same-txid", ra, cms.AES128)
	if err != nil || got[0].SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("CertPoll after two requests under one transactionID: %v; want the newest certificate", err)
	}
	report, err := s.Store().CheckIntegrity(ctx)
	if err != nil || len(report.Problems) != 0 {
		t.Fatalf("integrity: %v %v", report.Problems, err)
	}

	t.Run("certmonger adds a SAN while its request is pending", func(t *testing.T) {
		sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
		cm := sceptest.StartCertmonger(t)
		cm.AddCA(t, "delta", s.URL("delta"), root)
		key, cert := cm.KeyAndCertPaths(t, "san")
		if out, err := cm.Getcert("request", "-c", "delta", "-k", key, "-f", cert, "-N", "CN=cm-san", "-D", "a.example", "-L", challenge, "-I", "cmsan"); err != nil {
			t.Fatalf("getcert request: %v\n%s", err, out)
		}
		// pendingOf waits for n pending requests of CN=cm-san, oldest first.
		pendingOf := func(n int) []store.Transaction {
			t.Helper()
			var mine []store.Transaction
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				list, _ := s.Store().ListTransactions(ctx, store.TransactionFilter{ProfileID: "delta", Status: store.StatusPending})
				mine = mine[:0]
				for _, tx := range list {
					if c, err := x509.ParseCertificateRequest(tx.CSRDER); err == nil && c.Subject.CommonName == "cm-san" {
						mine = append(mine, tx)
					}
				}
				if len(mine) >= n {
					return mine
				}
			}
			t.Fatalf("%d pending requests of certmonger, want %d", len(mine), n)
			return nil
		}
		first := pendingOf(1)[0]
		// The operator asks for another name: certmonger sends a new CSR
		// under the same transactionID (it derives it from the key).
		if out, err := cm.Getcert("resubmit", "-i", "cmsan", "-D", "a.example", "-D", "b.example"); err != nil {
			t.Fatalf("getcert resubmit -D: %v\n%s", err, out)
		}
		both := pendingOf(2)
		newer := both[1]
		csr, _ := x509.ParseCertificateRequest(newer.CSRDER)
		if newer.ClientID() != first.TransactionID || !slices.Contains(csr.DNSNames, "b.example") {
			t.Fatalf("the changed CSR is stored as %q (client %q) with %v; want a new request under %q with b.example",
				newer.TransactionID, newer.ClientID(), csr.DNSNames, first.TransactionID)
		}
		approve(t, s, "delta", newer.TransactionID)
		// certmonger asks again with the same request and collects it.
		if out, err := cm.Getcert("resubmit", "-i", "cmsan", "-w"); err != nil {
			t.Fatalf("getcert resubmit -w: %v\n%s", err, out)
		}
		b, err := os.ReadFile(cert)
		if err != nil {
			out, _ := cm.Getcert("list", "-i", "cmsan")
			t.Fatalf("no certificate after approval: %v\n%s", err, out)
		}
		got := parsePEM(t, b)
		if !slices.Contains(got.DNSNames, "b.example") {
			t.Fatalf("certmonger's certificate has %v, want b.example", got.DNSNames)
		}
	})
}

// transactionIDWithAt: a device that may enroll in gamma cannot block
// another device's renewal there by enrolling first under the ID that
// renewal is stored under (its transactionID, '@', the serial it renews;
// the transactionID is the client's digest of a key it keeps, the serial
// is public). A transactionID with '@' is refused, and nothing is stored.
func transactionIDWithAt(t *testing.T, s *sceptest.Server) {
	ctx := context.Background()
	gammaRA, _ := client.Recipient(caCerts(t, s, "gamma"))
	victim := enrollIn(t, s, "alpha", "victim-dev")
	spki := sha256.Sum256(victim.cert.RawSubjectPublicKeyInfo)
	txid := strings.ToUpper(hex.EncodeToString(spki[:])) // what the client sent and will send again
	squat := txid + "@" + victim.cert.SerialNumber.Text(16)
	_, err := client.New(s.URL("gamma")).Enroll(ctx, client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "squatter"},
		Challenge: "gamma-only-challenge", Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: squat, Recipient: gammaRA})
	if failInfo(err) != scep.BadRequest || !strings.Contains(err.Error(), "contains '@'") {
		t.Fatalf("enrolling in gamma under %q: %v, want FAILURE badRequest (no '@' in a transactionID)", squat, err)
	}
	if _, err := s.Store().GetTransaction(ctx, "gamma", squat); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused request was stored under %q: %v", squat, err)
	}
	// The victim renews in gamma (from_profiles: [alpha], key reuse
	// allowed), keeping its key and so its transactionID.
	got, err := renew(s, "gamma", victim, victim.key, pkix.Name{CommonName: "victim-dev"}, true)
	if err != nil {
		t.Fatalf("the victim's renewal in gamma: %v", err)
	}
	row, _ := s.Store().GetCertificate(ctx, got[0].SerialNumber.Text(16))
	if row.RenewedSerial != victim.cert.SerialNumber.Text(16) || row.TransactionID != squat {
		t.Fatalf("renewal row %+v, want it stored under %q renewing %s", row, squat, victim.cert.SerialNumber.Text(16))
	}
}

// certPollOnABusyTransactionID: a transactionID with more earlier
// requests of the key than one listing holds (1000, here still pending
// from an hour ago) still has its newest request answered by CertPoll.
func certPollOnABusyTransactionID(t *testing.T, s *sceptest.Server) {
	ctx := context.Background()
	certs := caCerts(t, s, "alpha")
	ra, _ := client.Recipient(certs)
	root := certs[len(certs)-1]
	key := newKey(t)
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keyHash := sha256.Sum256(spki)
	old := time.Now().Add(-time.Hour)
	for i := range 1000 {
		tx := store.Transaction{ProfileID: "alpha", TransactionID: fmt.Sprintf("busy-txid@csr-%04d", i), ClientTransactionID: "busy-txid",
			Status: store.StatusPending, PublicKeySHA256: keyHash[:], CSRDER: []byte{0x30, 0}, Expires: time.Now().Add(time.Hour), Created: old, Updated: old}
		if err := s.Store().RecordPending(ctx, tx, "", store.AuditEvent{Time: old, Actor: "e2e", Action: "enroll", Object: "transaction:" + tx.TransactionID, Outcome: "pending"}); err != nil {
			t.Fatal(err)
		}
	}
	subject := pkix.Name{CommonName: "busy-dev"}
	c := client.New(s.URL("alpha"))
	got, err := c.Enroll(ctx, client.Enrollment{Key: key, Subject: subject, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256,
		TransactionID: "busy-txid", Recipient: ra})
	if err != nil {
		t.Fatalf("the newest request: %v", err)
	}
	self, _ := client.SelfSigned(key, subject)
	polled, err := c.Poll(ctx, client.Requester{Cert: self, Key: key}, root, subject, "busy-txid", ra, cms.AES128)
	if err != nil || polled[0].SerialNumber.Cmp(got[0].SerialNumber) != 0 {
		t.Fatalf("CertPoll of a transactionID with 1001 requests: %v; want the newest request's certificate", err)
	}
}
