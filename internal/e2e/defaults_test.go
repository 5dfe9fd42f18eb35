package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestZeroConfigScepclient: micromdm's scepclient 2.1 against `scepd serve`
// with no config. It encrypts to every certificate GetCACert returns and
// panics on a non-RSA one, so this works only because the created CA is
// RSA: no -ca-fingerprint. It renews (RenewalReq) with the key it holds,
// with and without a challenge in its CSR, and a wrong challenge is
// refused.
func TestZeroConfigScepclient(t *testing.T) {
	bin := sceptest.RequireTool(t, "scepclient", "scep")
	// scepclient speaks single DES only.
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_ALLOW_DES=1"}})
	certs := getCACert(t, s)
	for _, c := range certs {
		if k, ok := c.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
			t.Fatalf("GetCACert: %s has a %T key, want RSA-2048 for every certificate", c.Subject, c.PublicKey)
		}
	}
	caPEM := s.CACertPEM(t, certs)
	dir := t.TempDir()
	run := func(t *testing.T, dir, pw string) (string, error) {
		t.Helper()
		// scepclient reuses csr.pem when it exists; a fresh CSR carries
		// this run's challenge (or none).
		os.Remove(filepath.Join(dir, "csr.pem"))
		args := []string{"-server-url", s.URL("default"), "-private-key", filepath.Join(dir, "key.pem"), "-cn", "mm-zero"}
		if pw != "" {
			args = append(args, "-challenge", pw)
		}
		return sceptest.Run(t, time.Minute, nil, dir, bin, args...)
	}
	read := func(t *testing.T) *x509.Certificate {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "client.pem"))
		if err != nil {
			t.Fatal(err)
		}
		opensslVerify(t, caPEM, filepath.Join(dir, "client.pem"))
		return parsePEM(t, b)
	}
	var first *x509.Certificate
	t.Run("enroll without -ca-fingerprint", func(t *testing.T) {
		if out, err := run(t, dir, s.Challenge); err != nil {
			t.Fatalf("scepclient: %v\n%s\n%s", err, out, s.Log())
		}
		first = read(t)
	})
	if first == nil {
		t.FailNow()
	}
	prev := first
	for _, c := range []struct{ name, pw string }{{"renew with a challenge", s.Challenge}, {"renew without a challenge", ""}} {
		t.Run(c.name, func(t *testing.T) {
			n := strings.Count(s.Log(), "message_type=RenewalReq")
			// The certificate exists: scepclient sends a RenewalReq signed
			// with it, for the same key.
			if out, err := run(t, dir, c.pw); err != nil {
				t.Fatalf("scepclient renewal: %v\n%s\n%s", err, out, s.Log())
			}
			next := read(t)
			if next.SerialNumber.Cmp(prev.SerialNumber) == 0 {
				t.Fatal("renewal returned the same certificate")
			}
			if !bytes.Equal(next.RawSubjectPublicKeyInfo, first.RawSubjectPublicKeyInfo) {
				t.Fatal("scepclient renewed with another key; this test expects it to keep its key")
			}
			if !s.LogCount("message_type=RenewalReq", n+1) {
				t.Error("scepclient did not send a RenewalReq")
			}
			row, err := s.Store().GetCertificate(context.Background(), next.SerialNumber.Text(16))
			if err != nil || row.RenewedSerial != prev.SerialNumber.Text(16) {
				t.Fatalf("renewed certificate row %+v %v: must record the certificate it renewed", row, err)
			}
			prev = next
		})
	}
	t.Run("wrong challenge", func(t *testing.T) {
		before := len(s.Certificates())
		out, err := run(t, t.TempDir(), "not-the-challenge")
		if err == nil || !strings.Contains(out, "badRequest") {
			t.Fatalf("scepclient with a wrong challenge: %v\n%s", err, out)
		}
		if len(s.Certificates()) != before {
			t.Fatal("a certificate was stored for a wrong challenge")
		}
	})
}

// TestZeroConfigCertmongerRenewal: certmonger enrolls on the zero-config
// server, then renews with `getcert resubmit` (the same key, as its
// automatic renewal does) and `getcert rekey` (a new key). Each gives a
// new certificate that openssl verifies against the CA.
func TestZeroConfigCertmongerRenewal(t *testing.T) {
	sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
	s := sceptest.Start(t, sceptest.Options{})
	caPEM := s.CACertPEM(t, getCACert(t, s))
	cm := sceptest.StartCertmonger(t)
	if out, err := cm.Getcert("add-scep-ca", "-c", "zero", "-u", s.URL("default"), "-N", caPEM); err != nil {
		t.Fatalf("getcert add-scep-ca: %v\n%s", err, out)
	}
	key, cert := cm.KeyAndCertPaths(t, "renewing")
	read := func(t *testing.T) *x509.Certificate {
		t.Helper()
		b, err := os.ReadFile(cert)
		if err != nil {
			t.Fatal(err)
		}
		opensslVerify(t, caPEM, cert)
		return parsePEM(t, b)
	}
	if out, err := cm.Getcert("request", "-c", "zero", "-k", key, "-f", cert, "-N", "CN=cm-renew", "-L", s.Challenge, "-I", "renewing", "-w", "-v"); err != nil {
		t.Fatalf("getcert request: %v\n%s\n%s", err, out, s.Log())
	}
	prev := read(t)
	for _, c := range []struct {
		verb    string
		sameKey bool
	}{{"resubmit", true}, {"rekey", false}} {
		t.Run(c.verb, func(t *testing.T) {
			out, err := cm.Getcert(c.verb, "-i", "renewing", "-w", "-v")
			if err != nil {
				t.Fatalf("getcert %s: %v\n%s\n%s", c.verb, err, out, s.Log())
			}
			// -w returns once the request left its working states.
			var next *x509.Certificate
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if b, err := os.ReadFile(cert); err == nil {
					if n := parsePEM(t, b); n.SerialNumber.Cmp(prev.SerialNumber) != 0 {
						next = read(t)
						break
					}
				}
				if time.Now().After(deadline) {
					list, _ := cm.Getcert("list", "-i", "renewing")
					t.Fatalf("getcert %s wrote no new certificate:\n%s\n%s", c.verb, list, s.Log())
				}
			}
			if same := bytes.Equal(next.RawSubjectPublicKeyInfo, prev.RawSubjectPublicKeyInfo); same != c.sameKey {
				t.Errorf("getcert %s: same key %v, want %v", c.verb, same, c.sameKey)
			}
			if next.Subject.CommonName != "cm-renew" {
				t.Errorf("subject %v", next.Subject)
			}
			// A renewal signed with the old certificate, not a second
			// enrollment by challenge.
			row, err := s.Store().GetCertificate(context.Background(), next.SerialNumber.Text(16))
			if err != nil || row.RenewedSerial != prev.SerialNumber.Text(16) {
				t.Fatalf("renewed certificate row %+v %v: must record the certificate it renewed", row, err)
			}
			prev = next
		})
	}
}

const defaultsConfig = `
cas:
  - id: root
    create: {subject: "CN=Defaults Root,O=E2E"}
profiles:
  - id: reuse
    ca: root
    challenge: {password_env: E2E_CHALLENGE}
  - id: fresh
    ca: root
    challenge: {password_env: E2E_CHALLENGE}
    renewal: {allow_key_reuse: false}
`

// TestConfiguredDefaults: a CA a config file creates without key_type is
// RSA-2048, as is one `scepd ca create-root` makes without --key-type; a
// profile renews with the same key unless renewal.allow_key_reuse is false.
func TestConfiguredDefaults(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	os.WriteFile(cfg, []byte(defaultsConfig), 0o600)
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Env: []string{"E2E_CHALLENGE=" + challenge}, Args: []string{"--config", cfg}})
	certs := caCerts(t, s, "reuse")
	if k, ok := certs[len(certs)-1].PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("a CA created from the config without key_type has a %T key, want RSA-2048", certs[len(certs)-1].PublicKey)
	}
	out, err := cli(t, s, nil, "ca", "create-root", "--id", "cli-root", "--subject", "CN=CLI Root", "--data", s.DataDir, "-o", "json")
	if err != nil || !strings.Contains(out, `"key_type": "RSA-2048"`) {
		t.Fatalf("ca create-root without --key-type: %v\n%s", err, out)
	}

	t.Run("same key by default", func(t *testing.T) {
		old := enrollIn(t, s, "reuse", "keeps-key")
		got, err := renew(s, "reuse", old, old.key, old.cert.Subject, true)
		if err != nil {
			t.Fatalf("renewal with the same key: %v", err)
		}
		if got[0].SerialNumber.Cmp(old.cert.SerialNumber) == 0 || !bytes.Equal(got[0].RawSubjectPublicKeyInfo, old.cert.RawSubjectPublicKeyInfo) {
			t.Fatal("want a new certificate for the same key")
		}
	})
	t.Run("allow_key_reuse false", func(t *testing.T) {
		old := enrollIn(t, s, "fresh", "needs-new-key")
		if _, err := renew(s, "fresh", old, old.key, old.cert.Subject, true); failInfo(err) != scep.BadRequest || !strings.Contains(err.Error(), "renewal must use a new key") {
			t.Fatalf("renewal with the same key on a profile that refuses it: %v", err)
		}
		if _, err := renew(s, "fresh", old, newKey(t), old.cert.Subject, true); err != nil {
			t.Fatalf("renewal with a new key: %v", err)
		}
	})
}

// TestCLIWithoutUnrelatedSecrets: the CLI on a data directory approves,
// rejects and revokes although the environment lacks the secrets of
// delegated challenges (a webhook HMAC key, an Intune client secret) that
// the server has: none of these operations calls the webhook or Intune,
// not even approving on the webhook profile.
func TestCLIWithoutUnrelatedSecrets(t *testing.T) {
	rcv := &webhookReceiver{}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	os.WriteFile(cfg, []byte(`
cas:
  - id: root
    create: {subject: "CN=CLI Root,O=E2E"}
profiles:
  - id: manual
    ca: root
    approval: manual
    challenge: {password_env: E2E_CHALLENGE}
  - id: hooked
    ca: root
    approval: manual
    challenge:
      mode: webhook
      webhook: {url: "`+serve(t, rcv)+`", secret_env: E2E_CLI_WEBHOOK_SECRET}
  - id: tenant
    ca: root
    challenge:
      mode: intune
      intune: {tenant: contoso.example, client_id: app-123, client_secret_env: E2E_CLI_INTUNE_SECRET, login_url: "http://127.0.0.1:1", graph_url: "http://127.0.0.1:1"}
`), 0o600)
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", cfg},
		Env: []string{"E2E_CHALLENGE=" + challenge, "E2E_CLI_WEBHOOK_SECRET=" + webhookSecret, "E2E_CLI_INTUNE_SECRET=intune-secret"}})
	for _, v := range []string{"E2E_CLI_WEBHOOK_SECRET", "E2E_CLI_INTUNE_SECRET"} {
		if os.Getenv(v) != "" {
			t.Fatalf("%s is set in the test's environment; the CLI must run without it", v)
		}
	}
	pending := func(profile, txid, cn, pw string) {
		t.Helper()
		_, err := client.New(s.URL(profile)).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: cn},
			Challenge: pw, Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: txid})
		if !errors.Is(err, client.ErrPending) {
			t.Fatalf("enroll %s in %s: %v, want PENDING\n%s", cn, profile, err, s.Log())
		}
	}
	pending("manual", "approve-me", "cli-approve", challenge)
	pending("manual", "reject-me", "cli-reject", challenge)
	pending("hooked", "hooked-tx", "ok-hooked", "device-token")

	var issued []string
	for _, c := range []struct{ profile, txid string }{{"manual", "approve-me"}, {"hooked", "hooked-tx"}} {
		out, err := cli(t, s, nil, "request", "approve", "--profile", c.profile, c.txid, "--data", s.DataDir, "-o", "json")
		if err != nil {
			t.Fatalf("request approve on %s without the webhook and Intune secrets: %v\n%s", c.profile, err, out)
		}
		var v struct{ Serial string }
		json.Unmarshal([]byte(out), &v)
		issued = append(issued, v.Serial)
	}
	if out, err := cli(t, s, nil, "request", "reject", "--profile", "manual", "reject-me", "--reason", "unknown device", "--data", s.DataDir); err != nil {
		t.Fatalf("request reject without the webhook and Intune secrets: %v\n%s", err, out)
	}
	if out, err := cli(t, s, nil, "cert", "revoke", issued[0], "--reason", "keyCompromise", "--data", s.DataDir); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("cert revoke without the webhook and Intune secrets: %v\n%s", err, out)
	}
	for i, serial := range issued {
		row, err := s.Store().GetCertificate(context.Background(), serial)
		if want := []string{"revoked", "valid"}[i]; err != nil || row.Status != want {
			t.Fatalf("certificate %s: %+v %v, want %s", serial, row, err, want)
		}
	}
	tx, err := s.Store().GetTransaction(context.Background(), "manual", "reject-me")
	if err != nil || tx.Status != "rejected" {
		t.Fatalf("rejected request: %+v %v", tx, err)
	}
}

// TestCLINamesWhyRevocationIsUnavailable: when the CLI cannot load the
// keys (encrypted, no passphrase given), revoking says why instead of a
// bare "not available here". (The audit key, needed to record the
// revocation, is the first key the CLI opens.)
func TestCLINamesWhyRevocationIsUnavailable(t *testing.T) {
	s := startServer(t, "SCEPD_KEY_PASSPHRASE=e2e-passphrase")
	c := enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "locked"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	out, err := cli(t, s, nil, "cert", "revoke", c.SerialNumber.Text(16), "--data", s.DataDir)
	if err == nil || !strings.Contains(out, "SCEPD_KEY_PASSPHRASE") {
		t.Fatalf("cert revoke without the key passphrase: %v\n%s", err, out)
	}
	if out, err := cli(t, s, []string{"SCEPD_KEY_PASSPHRASE=e2e-passphrase"}, "cert", "revoke", c.SerialNumber.Text(16), "--data", s.DataDir); err != nil {
		t.Fatalf("cert revoke with the key passphrase: %v\n%s", err, out)
	}
}

// TestNDESShortTTL: with a challenge TTL under a minute the NDES page
// says how many seconds, not "0 minutes".
func TestNDESShortTTL(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	os.WriteFile(cfg, []byte(`
cas:
  - id: root
    create: {subject: "CN=NDES Root,O=E2E"}
profiles:
  - id: quick
    ca: root
    challenge: {mode: dynamic, ttl: 30s, ndes: {username: mdmadmin, password_env: E2E_NDES_PASSWORD, encoding: utf-8}}
  - id: hourly
    ca: root
    challenge: {mode: dynamic, ndes: {username: mdmadmin, password_env: E2E_NDES_PASSWORD}}
`), 0o600)
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", cfg}, Env: []string{"E2E_NDES_PASSWORD=" + ndesPassword}})
	for profile, want := range map[string]*regexp.Regexp{
		"quick":  regexp.MustCompile(`will expire within (29|30) seconds\.`),
		"hourly": regexp.MustCompile(`will expire within (59|60) minutes\.`),
	} {
		code, body, _ := fetchNDES(t, s.BaseURL()+"/scep/"+profile+"/mscep_admin/", "mdmadmin", ndesPassword)
		if code != 200 || ndesPasswordRE.FindStringSubmatch(body) == nil || !want.MatchString(body) {
			t.Errorf("NDES page of %s: %d, want a password and %q:\n%s", profile, code, want, body)
		}
	}
}

// TestConfigValidateCAMode: `scepd config validate` refuses ca_mode on a
// profile whose CA (or next CA) the file creates without allow_ca_mode,
// which `scepd serve` would refuse only later, while applying the file.
func TestConfigValidateCAMode(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(doc), 0o600)
		return p
	}
	bad := write("bad.yaml", `
cas:
  - id: plain
    create: {subject: "CN=Plain"}
  - id: next
    create: {subject: "CN=Next"}
  - id: capable
    create: {subject: "CN=Capable", allow_ca_mode: true}
profiles:
  - id: direct
    ca: plain
    ca_mode: true
    challenge: {password_env: X}
  - id: rolling
    ca: capable
    ca_mode: true
    challenge: {password_env: X}
    rollover: {next_ca: next, at: 2030-01-01T00:00:00Z}
`)
	out, err := cli(t, nil, nil, "config", "validate", bad)
	if err == nil || !strings.Contains(out, `profiles[0].ca_mode: CA "plain" is created without allow_ca_mode`) ||
		!strings.Contains(out, `profiles[1].rollover.next_ca: CA "next" is created without allow_ca_mode`) {
		t.Fatalf("config validate with ca_mode on a CA without allow_ca_mode: %v\n%s", err, out)
	}
	good := write("good.yaml", `
cas:
  - id: capable
    create: {subject: "CN=Capable", allow_ca_mode: true}
profiles:
  - id: direct
    ca: capable
    ca_mode: true
    challenge: {password_env: X}
`)
	if out, err := cli(t, nil, nil, "config", "validate", good); err != nil {
		t.Fatalf("config validate with ca_mode on an allow_ca_mode CA (RSA by default): %v\n%s", err, out)
	}
}

// TestRolesAndPlainChallenge: what the README's role table says an
// operator may do, through the API of the zero-config server (dynamic
// challenges): mint challenges, approve and reject pending requests,
// revoke; not change profiles, rotate challenges, read tokens or the audit
// log. And the OpenAPI document lists the 200 text/plain answer of minting
// a challenge with Accept: text/plain, which the server gives.
func TestRolesAndPlainChallenge(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--challenge-mode", "dynamic"}})
	tokens := map[string]string{}
	for _, role := range []string{"admin", "operator"} {
		out, err := cli(t, s, nil, "token", "create", "--role", role, "--name", role, "--data", s.DataDir)
		if err != nil {
			t.Fatalf("token create: %v\n%s", err, out)
		}
		tokens[role] = strings.TrimSpace(out)
	}
	if code, body := api(t, s, tokens["admin"], "POST", "/api/v1/profiles", map[string]any{
		"id": "manual", "ca": "default", "approval": "manual", "challenge": map[string]any{"mode": "dynamic"},
	}); code != 200 {
		t.Fatalf("create a manual profile: %d %v", code, body)
	}

	mint := func(t *testing.T, profile, accept string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", s.BaseURL()+"/api/v1/profiles/"+profile+"/challenges", nil)
		req.Header.Set("Authorization", "Bearer "+tokens["operator"])
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	t.Run("OpenAPI lists the text/plain challenge", func(t *testing.T) {
		var doc struct {
			Paths map[string]map[string]struct {
				Responses map[string]struct {
					Content map[string]any `json:"content"`
				} `json:"responses"`
			} `json:"paths"`
		}
		resp, err := http.Get(s.BaseURL() + "/api/v1/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		op := doc.Paths["/api/v1/profiles/{id}/challenges"]["post"]
		if _, ok := op.Responses["200"].Content["text/plain"]; !ok {
			t.Errorf("the document lacks the 200 text/plain answer: %+v", op.Responses)
		}
		if _, ok := op.Responses["201"].Content["application/json"]; !ok {
			t.Errorf("the document lacks the 201 JSON answer: %+v", op.Responses)
		}
		if code, ct, body := mint(t, "default", "text/plain"); code != 200 || !strings.HasPrefix(ct, "text/plain") || len(body) < 16 || strings.Contains(body, "{") {
			t.Errorf("minting with Accept: text/plain: %d %s %q", code, ct, body)
		}
		if code, ct, body := mint(t, "default", ""); code != 201 || !strings.HasPrefix(ct, "application/json") || !strings.Contains(body, `"challenge"`) {
			t.Errorf("minting as JSON: %d %s %q", code, ct, body)
		}
	})

	t.Run("operator", func(t *testing.T) {
		pending := func(txid string) {
			t.Helper()
			code, _, pw := mint(t, "manual", "text/plain")
			if code != 200 {
				t.Fatalf("operator mints: %d", code)
			}
			_, err := client.New(s.URL("manual")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: txid},
				Challenge: pw, Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: txid})
			if !errors.Is(err, client.ErrPending) {
				t.Fatalf("enroll: %v, want PENDING", err)
			}
		}
		pending("op-approve")
		pending("op-reject")
		code, body := api(t, s, tokens["operator"], "POST", "/api/v1/requests/manual/op-approve/approve", nil)
		serial, _ := body["serial"].(string)
		if code != 200 || serial == "" {
			t.Fatalf("operator approves: %d %v", code, body)
		}
		if code, body := api(t, s, tokens["operator"], "POST", "/api/v1/requests/manual/op-reject/reject", map[string]any{"reason": "no"}); code != 204 {
			t.Fatalf("operator rejects: %d %v", code, body)
		}
		if code, body := api(t, s, tokens["operator"], "POST", "/api/v1/certificates/"+serial+"/revoke", map[string]any{"reason": "keyCompromise"}); code != 200 {
			t.Fatalf("operator revokes: %d %v", code, body)
		}
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"PUT", "/api/v1/profiles/manual", map[string]any{"ca": "default", "challenge": map[string]any{"mode": "dynamic"}}},
			{"POST", "/api/v1/cas", map[string]any{"id": "x", "create": map[string]any{"subject": "CN=x"}}},
			{"POST", "/api/v1/profiles/default/challenge/rotate", map[string]any{}},
			{"GET", "/api/v1/tokens", nil},
			{"POST", "/api/v1/tokens", map[string]any{"role": "admin"}},
			{"GET", "/api/v1/audit", nil},
		} {
			if code, body := api(t, s, tokens["operator"], c.method, c.path, c.body); code != 403 {
				t.Errorf("operator %s %s: %d %v, want 403", c.method, c.path, code, body)
			}
		}
	})
}

// TestECDSACAOnRequest: --ca-key-type ecdsa-p256 (or SCEPD_CA_KEY_TYPE)
// still makes an ECDSA root for fleets that handle it.
func TestECDSACAOnRequest(t *testing.T) {
	for name, o := range map[string]sceptest.Options{
		"flag": {Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--ca-key-type", "ecdsa-p256"}},
		"env":  {Env: []string{"SCEPD_CHALLENGE=" + challenge, "SCEPD_CA_KEY_TYPE=ecdsa-p256"}},
	} {
		t.Run(name, func(t *testing.T) {
			s := sceptest.Start(t, o)
			certs := getCACert(t, s)
			if k, ok := certs[len(certs)-1].PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Fatalf("CA key %T, want ECDSA P-256", certs[len(certs)-1].PublicKey)
			}
			enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "ecdsa-ca"}, Cipher: cms.AES128, Digest: crypto.SHA256})
		})
	}
}
