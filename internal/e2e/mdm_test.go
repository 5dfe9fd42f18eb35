package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/upstream"
)

const (
	ndesPassword  = "ndes-admin-password"
	webhookSecret = "webhook-hmac-secret-e2e"
	intuneSecret  = "intune-client-secret-e2e"
)

// startMDM starts scepd with one profile per challenge mode; the webhook
// and Intune profiles point at servers the test runs on loopback.
func startMDM(t *testing.T, webhookURL, intuneURL string, args ...string) *sceptest.Server {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	os.WriteFile(cfg, []byte(`
default_profile: ndes
cas:
  - id: root
    create: {subject: "CN=MDM Root,O=E2E", key_type: ecdsa-p256}
profiles:
  - id: ndes
    ca: root
    allow_des: true
    challenge:
      mode: dynamic
      max_pending: 3
      ndes: {username: mdmadmin, password_env: E2E_NDES_PASSWORD}
      jamf: true
  - id: ndes8
    ca: root
    challenge: {mode: dynamic, ndes: {encoding: utf-8}}
  - id: short
    ca: root
    challenge: {mode: dynamic, ttl: 2s}
  - id: hook
    ca: root
    challenge:
      mode: webhook
      webhook: {url: "`+webhookURL+`", secret_env: E2E_WEBHOOK_SECRET, timeout: 1s, notify: true}
  - id: hookbadkey
    ca: root
    challenge:
      mode: webhook
      webhook: {url: "`+webhookURL+`", secret_env: E2E_WRONG_SECRET}
  - id: intune
    ca: root
    challenge:
      mode: intune
      intune: {tenant: contoso.example, client_id: app-123, client_secret_env: E2E_INTUNE_SECRET, login_url: "`+intuneURL+`", graph_url: "`+intuneURL+`"}
  - id: entity
    ca: root
    challenge: {mode: entity}
  - id: rotating
    ca: root
    challenge: {password_env: E2E_STATIC}
`), 0o600)
	return sceptest.Start(t, sceptest.Options{
		DataDir: filepath.Join(dir, "data"), Args: append([]string{"--config", cfg}, args...),
		Env: []string{"E2E_NDES_PASSWORD=" + ndesPassword, "E2E_WEBHOOK_SECRET=" + webhookSecret, "E2E_WRONG_SECRET=not-the-receivers-key",
			"E2E_INTUNE_SECRET=" + intuneSecret, "E2E_STATIC=" + challenge},
	})
}

// serve runs an HTTP handler on loopback for the test's duration.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func enrollWith(s *sceptest.Server, profile, cn, pw string) (*x509.Certificate, error) {
	certs, err := client.New(s.URL(profile)).Enroll(context.Background(), client.Enrollment{
		Key: mustKey(), Subject: pkix.Name{CommonName: cn}, Challenge: pw, Cipher: cms.AES128, Digest: crypto.SHA256,
	})
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

var ndesPasswordRE = regexp.MustCompile(`(?i)The enrollment challenge password is: <B> (\S+) </B>`)

// fetchNDES GETs an NDES admin page with Basic auth and decodes it the way
// MDM clients do (UTF-16LE or UTF-8).
func fetchNDES(t *testing.T, url, user, pass string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	page := string(raw)
	if len(raw) >= 2 && raw[1] == 0 { // UTF-16LE: every ASCII character followed by NUL
		u := make([]uint16, len(raw)/2)
		for i := range u {
			u[i] = uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
		}
		page = string(utf16.Decode(u))
	}
	return resp.StatusCode, page, resp.Header
}

// TestNDESAdminPage: what Jamf Pro ("Dynamic-Microsoft CA"), Okta, Workspace
// ONE and Ivanti do: fetch the page with Basic auth, extract the password,
// enroll with it once.
func TestNDESAdminPage(t *testing.T) {
	s := startMDM(t, "http://127.0.0.1:1", "http://127.0.0.1:1")
	page := s.BaseURL() + "/certsrv/mscep_admin/"

	code, body, hdr := fetchNDES(t, page, "", "")
	if code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") || !strings.Contains(body, "You do not have sufficient permission to enroll with SCEP") {
		t.Fatalf("unauthenticated: %d %q %q", code, hdr.Get("WWW-Authenticate"), body)
	}
	if code, _, _ := fetchNDES(t, page, "mdmadmin", "wrong"); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
	code, body, hdr = fetchNDES(t, page, "mdmadmin", ndesPassword)
	m := ndesPasswordRE.FindStringSubmatch(body)
	if code != 200 || m == nil || !strings.Contains(hdr.Get("Content-Type"), "utf-16") || !strings.Contains(body, "can be used only once") {
		t.Fatalf("NDES page: %d %s\n%s", code, hdr.Get("Content-Type"), body)
	}
	root := caCerts(t, s, "ndes")
	thumb := sha1.Sum(root[len(root)-1].Raw)
	// As on a real NDES page, the CA thumbprint is alone in a <B> element
	// before the password's (clients that take the first <B>, or the last,
	// depend on the order); its hex digits may be grouped by spaces.
	var digits []string
	for _, b := range hex.EncodeToString(thumb[:]) {
		digits = append(digits, string(b))
	}
	thumbFirst := regexp.MustCompile(`(?is)<B>\s*` + strings.Join(digits, `\s*`) + `\s*</B>.*?The enrollment challenge password is: <B> ` + regexp.QuoteMeta(m[1]) + ` </B>`)
	if !thumbFirst.MatchString(body) {
		t.Errorf("the page lacks the CA thumbprint %X in a <B> before the password's:\n%s", thumb, body)
	}
	secret := m[1]

	// Redeem it with micromdm's scepclient; a second use is refused.
	bin := sceptest.RequireTool(t, "scepclient", "scep")
	ra, _ := client.Recipient(caCerts(t, s, "ndes"))
	fp := sha256.Sum256(ra.Raw)
	run := func(cn string) error {
		dir := t.TempDir()
		out, err := sceptest.Run(t, time.Minute, nil, dir, bin, "-server-url", s.URL("ndes"), "-private-key", filepath.Join(dir, "k.pem"),
			"-challenge", secret, "-cn", cn, "-ca-fingerprint", hex.EncodeToString(fp[:]))
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := run("ndes-device-1"); err != nil {
		t.Fatalf("scepclient with the NDES challenge: %v", err)
	}
	if err := run("ndes-device-2"); err == nil {
		t.Fatal("an NDES challenge was accepted twice")
	}

	// The cache holds 3: the fourth fetch gets NDES's "cache is full" page.
	for i := 0; i < 3; i++ {
		fetchNDES(t, page, "mdmadmin", ndesPassword)
	}
	if _, body, _ := fetchNDES(t, page, "mdmadmin", ndesPassword); !strings.Contains(body, "The password cache is full.") {
		t.Fatalf("full cache page: %s", body)
	}

	// UTF-8 page, authenticated with an API token as the Basic password.
	tok, err := cli(t, s, nil, "token", "create", "--role", "mdm", "--profile", "ndes8", "--data", s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	code, body, hdr = fetchNDES(t, s.URL("ndes8")[:strings.LastIndex(s.URL("ndes8"), "/")]+"/mscep_admin/", "okta", tok)
	if m := ndesPasswordRE.FindStringSubmatch(body); code != 200 || m == nil || !strings.Contains(hdr.Get("Content-Type"), "utf-8") {
		t.Fatalf("UTF-8 page with a token: %d %s", code, body)
	} else if _, err := enrollWith(s, "ndes8", "okta-device", m[1]); err != nil {
		t.Fatalf("enrolling with the UTF-8 page's challenge: %v", err)
	}
	// The same token may not mint for another profile: NDES's permission page.
	if code, body, _ := fetchNDES(t, page, "okta", tok); code != 403 || !strings.Contains(body, "sufficient permission") {
		t.Fatalf("token scoped to another profile: %d %s", code, body)
	}
}

// TestJamfWebhook: Jamf Pro POSTs its SCEPChallenge webhook and uses the
// plain-text answer as the challenge; certmonger enrolls with it.
func TestJamfWebhook(t *testing.T) {
	s := startMDM(t, "http://127.0.0.1:1", "http://127.0.0.1:1")
	tok, err := cli(t, s, nil, "token", "create", "--role", "mdm", "--profile", "ndes", "--name", "jamf", "--data", s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	hook := `{"webhook": {"id": 7, "name": "scepd", "webhookEvent": "SCEPChallenge", "eventTimestamp": 1700000000000},
	  "event": {"scepServerUrl": "` + s.URL("ndes") + `", "payloadIdentifier": "com.example.scep", "payloadTypes": ["com.apple.security.scep"],
	            "device": {"serialNumber": "C02XJAMF01", "udid": "0000-UDID-1"}}}`
	post := func(auth, body string) (int, string) {
		req, _ := http.NewRequest("POST", s.BaseURL()+"/scep/ndes/jamf-challenge", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post("", hook); code != 401 {
		t.Fatalf("no credentials: %d", code)
	}
	if code, _ := post("Bearer "+tok, `{"webhook": {"webhookEvent": "ComputerAdded"}}`); code != 400 {
		t.Fatalf("another event: %d", code)
	}
	code, secret := post("Basic "+base64.StdEncoding.EncodeToString([]byte("jamf:"+tok)), hook)
	if code != 200 || len(secret) < 30 {
		t.Fatalf("webhook with Basic auth: %d %q", code, secret)
	}
	sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
	cm := sceptest.StartCertmonger(t)
	root := caCerts(t, s, "ndes")
	cm.AddCA(t, "jamf", s.URL("ndes"), root[len(root)-1])
	key, cert := cm.KeyAndCertPaths(t, "jamf")
	if out, err := cm.Getcert("request", "-c", "jamf", "-k", key, "-f", cert, "-N", "CN=C02XJAMF01", "-L", secret, "-w", "-v"); err != nil {
		t.Fatalf("getcert with the Jamf challenge: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(cert)
	checkChain(t, parsePEM(t, b), root[len(root)-1], nil)
	// The device identity was recorded with the challenge.
	if !s.LogContains("certificate issued") {
		t.Fatal("no issuance logged")
	}
	audit, _ := cliAudit(t, s)
	if !strings.Contains(audit, "jamf serial=C02XJAMF01") {
		t.Errorf("the audit log lacks the Jamf device identity")
	}
}

func cliAudit(t *testing.T, s *sceptest.Server) (string, error) {
	t.Helper()
	events, err := s.Store().ListAudit(context.Background(), 1000)
	b, _ := json.Marshal(events)
	return string(b), err
}

// TestDynamicChallenges: subject binding, expiry, and 50 concurrent
// enrollments racing for one challenge.
func TestDynamicChallenges(t *testing.T) {
	s := startMDM(t, "http://127.0.0.1:1", "http://127.0.0.1:1")
	mint := func(profile, bind string) string {
		t.Helper()
		args := []string{"challenge", "create", "--profile", profile, "--data", s.DataDir}
		if bind != "" {
			args = append(args, "--bind", bind)
		}
		out, err := cli(t, s, nil, args...)
		if err != nil {
			t.Fatalf("challenge create: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	bound := mint("ndes", "device-a")
	if _, err := enrollWith(s, "ndes", "device-b", bound); err == nil || !strings.Contains(err.Error(), "issued for another device") {
		t.Fatalf("another device redeeming a bound challenge: %v", err)
	}
	if _, err := enrollWith(s, "ndes", "device-a", bound); err != nil {
		t.Fatalf("the bound device: %v", err)
	}

	short := mint("short", "")
	time.Sleep(2500 * time.Millisecond)
	if _, err := enrollWith(s, "short", "late", short); failInfo(err) != scep.BadRequest {
		t.Fatalf("an expired challenge: %v", err)
	}

	race := mint("ndes8", "")
	ra, _ := client.Recipient(caCerts(t, s, "ndes8"))
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := client.New(s.URL("ndes8")).Enroll(context.Background(), client.Enrollment{Key: sharedKeys[i%len(sharedKeys)], Subject: pkix.Name{CommonName: fmt.Sprint("racer-", i)},
				Challenge: race, Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: fmt.Sprint("race-", i), Recipient: ra})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if failInfo(err) == scep.BadRequest {
				lost++
			} else {
				t.Errorf("racer %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if won != 1 || lost != n-1 {
		t.Fatalf("%d concurrent enrollments with one challenge: %d certificates, %d refusals; want 1 and %d", n, won, lost, n-1)
	}
}

// webhookReceiver is an operator's validation service: it checks the
// HMAC signature, allows CNs starting with "ok-", sleeps for "slow-", and
// records notifications.
type webhookReceiver struct {
	mu     sync.Mutex
	events []map[string]any
}

func (wr *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m := hmac.New(sha256.New, []byte(webhookSecret))
	m.Write(body)
	if !hmac.Equal([]byte(r.Header.Get("X-Scepd-Signature")), []byte("sha256="+hex.EncodeToString(m.Sum(nil)))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req map[string]any
	json.Unmarshal(body, &req)
	wr.mu.Lock()
	wr.events = append(wr.events, req)
	wr.mu.Unlock()
	subject, _ := req["subject"].(string)
	switch {
	case req["event"] != "validate":
		w.WriteHeader(204)
	case strings.HasPrefix(subject, "CN=slow-"):
		time.Sleep(3 * time.Second)
		fmt.Fprint(w, `{"allow": true}`)
	case strings.HasPrefix(subject, "CN=ok-") && req["challenge"] == "device-token" && strings.Contains(req["csr"].(string), "BEGIN CERTIFICATE REQUEST"):
		fmt.Fprint(w, `{"allow": true}`)
	default:
		fmt.Fprint(w, `{"allow": false, "reason": "not on the list"}`)
	}
}

func (wr *webhookReceiver) saw(event string) bool {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	for _, e := range wr.events {
		if e["event"] == event {
			return true
		}
	}
	return false
}

func TestWebhookValidation(t *testing.T) {
	rcv := &webhookReceiver{}
	s := startMDM(t, serve(t, rcv), "http://127.0.0.1:1")
	// The allowed request names its transactionID and SANs of each kind
	// the receiver is told about as "DNS:" and "IP:".
	const hookTx = "HOOK-TX-0123456789ABCDEF"
	wantSANs := []string{"DNS:ok-laptop.example.test", "DNS:laptop.example.test", "IP:192.0.2.7", "IP:2001:db8::7"}
	certs, err := client.New(s.URL("hook")).Enroll(context.Background(), client.Enrollment{
		Key: mustKey(), Subject: pkix.Name{CommonName: "ok-laptop"}, DNSNames: []string{"ok-laptop.example.test", "laptop.example.test"},
		IPs: []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}, Challenge: "device-token", Cipher: cms.AES128, Digest: crypto.SHA256,
		TransactionID: hookTx})
	if err != nil {
		t.Fatalf("allowed request: %v", err)
	}
	if c := certs[0]; c.Subject.CommonName != "ok-laptop" {
		t.Fatal(c.Subject)
	}
	if _, err := enrollWith(s, "hook", "stranger", "device-token"); err == nil || !strings.Contains(err.Error(), "not on the list") {
		t.Fatalf("denied request: %v", err)
	}
	if _, err := enrollWith(s, "hook", "slow-laptop", "device-token"); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("a receiver slower than the timeout must fail closed: %v", err)
	}
	if _, err := enrollWith(s, "hookbadkey", "ok-laptop", "device-token"); err == nil || !strings.Contains(err.Error(), "no clear answer") {
		t.Fatalf("signed with the wrong key, the receiver refuses and scepd fails closed: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !rcv.saw("issued") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !rcv.saw("issued") {
		t.Fatal("no issued notification reached the receiver")
	}
	// Only validate carries the challenge; the issued notification's CSR
	// is the stored one, without its challengePassword.
	rcv.mu.Lock()
	seen := map[any]bool{}
	for _, e := range rcv.events {
		if e["subject"] == "CN=ok-laptop" && e["profile"] == "hook" {
			// The receiver gets the client's transactionID and the CSR's
			// SANs, in validate and in the issued notification alike.
			seen[e["event"]] = true
			if e["transaction_id"] != hookTx {
				t.Errorf("%v event: transaction_id %v, want the client's %q", e["event"], e["transaction_id"], hookTx)
			}
			if got := fmt.Sprint(e["sans"]); got != fmt.Sprint(wantSANs) {
				t.Errorf("%v event: sans %v, want the CSR's %v", e["event"], got, wantSANs)
			}
		}
		csrPEM, _ := e["csr"].(string)
		block, _ := pem.Decode([]byte(csrPEM))
		if block == nil {
			t.Errorf("%v event without a CSR", e["event"])
			continue
		}
		if has := bytes.Contains(block.Bytes, []byte("device-token")); has != (e["event"] == "validate") {
			t.Errorf("%v event: its CSR holds the challengePassword: %v", e["event"], has)
		}
	}
	rcv.mu.Unlock()
	if !seen["validate"] || !seen["issued"] {
		t.Errorf("events about the allowed request: %v, want validate and issued", seen)
	}
	if n := len(s.Certificates()); n != 1 {
		t.Fatalf("%d certificates, want only the allowed one", n)
	}
}

// intuneBlob is a challenge as Intune makes them: opaque to the CA, and
// KB-sized (about 3 KB of base64, padding included).
func intuneBlob() string {
	b := make([]byte, 2249)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// intuneGoodBlob is the one challenge the fake Intune validates.
var intuneGoodBlob = intuneBlob()

// fakeIntune speaks Intune's third-party CA protocol: the Entra ID token
// endpoint, Graph endpoint discovery and the ScepActions calls. It checks
// what scepd sends, keeps each ScepActions body, and decides by the
// challenge blob in the CSR.
type fakeIntune struct {
	t        *testing.T
	base     string
	mu       sync.Mutex
	calls    []string
	actions  []intuneCall
	problems []string
}

// intuneCall is one ScepActions call: its action and the body's request
// or notification object.
type intuneCall struct {
	action string
	body   map[string]any
}

func (f *fakeIntune) problem(format string, args ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// sent waits (5 s at most: notifications are sent after the answer) for
// the action about transaction txid and returns its body.
func (f *fakeIntune) sent(t *testing.T, action, txid string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		for _, c := range f.actions {
			if c.action == action && c.body["transactionId"] == txid {
				f.mu.Unlock()
				return c.body
			}
		}
		calls := strings.Join(f.calls, " ")
		f.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s for transaction %q; calls: %s", action, txid, calls)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// count is how many calls of action name transaction txid.
func (f *fakeIntune) count(action, txid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.actions {
		if c.action == action && c.body["transactionId"] == txid {
			n++
		}
	}
	return n
}

// checkProblems fails the test with what scepd sent wrongly.
func (f *fakeIntune) checkProblems(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.problems) > 0 {
		t.Fatalf("scepd spoke Intune's protocol wrongly: %v", f.problems)
	}
}

func (f *fakeIntune) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/contoso.example/oauth2/v2.0/token":
		r.ParseForm()
		if r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("client_id") != "app-123" || r.Form.Get("client_secret") != intuneSecret {
			f.problem("token request %v", r.Form)
			http.Error(w, "invalid_client", 401)
			return
		}
		scope := r.Form.Get("scope")
		if scope != "https://api.manage.microsoft.com//.default" && scope != "https://graph.microsoft.com/.default" {
			f.problem("scope %q", scope)
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": "tok:" + scope, "expires_in": 3600, "token_type": "Bearer"})
	case r.URL.Path == "/v1.0/servicePrincipals/appId=0000000a-0000-0000-c000-000000000000/endpoints":
		if r.Header.Get("Authorization") != "Bearer tok:https://graph.microsoft.com/.default" {
			f.problem("discovery auth %q", r.Header.Get("Authorization"))
		}
		json.NewEncoder(w).Encode(map[string]any{"value": []map[string]any{
			{"providerName": "SomethingElse", "uri": f.base + "/wrong"},
			{"providerName": "ScepRequestValidationFEService", "uri": f.base + "/scep"},
		}})
	case strings.HasPrefix(r.URL.Path, "/scep/ScepActions/"):
		if r.Header.Get("Authorization") != "Bearer tok:https://api.manage.microsoft.com//.default" || r.Header.Get("api-version") != "2018-02-20" ||
			len(r.Header.Get("client-request-id")) != 36 {
			f.problem("headers %v", r.Header)
		}
		var body map[string]map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		action := strings.TrimPrefix(r.URL.Path, "/scep/ScepActions/")
		inner := body["notification"]
		if action == "validateRequest" {
			inner = body["request"]
		}
		f.mu.Lock()
		f.actions = append(f.actions, intuneCall{action, inner})
		f.mu.Unlock()
		for _, k := range []string{"transactionId", "certificateRequest", "callerInfo"} {
			if v, _ := inner[k].(string); v == "" {
				f.problem("%s lacks %s", action, k)
			}
		}
		switch action {
		case "validateRequest":
			der, _ := base64.StdEncoding.DecodeString(fmt.Sprint(inner["certificateRequest"]))
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				f.problem("validateRequest body %v", inner)
				json.NewEncoder(w).Encode(map[string]any{"code": "BadRequest"})
				return
			}
			blob, _ := scep.ChallengePassword(csr)
			if blob == intuneGoodBlob {
				json.NewEncoder(w).Encode(map[string]any{"code": "Success", "errorDescription": ""})
			} else {
				json.NewEncoder(w).Encode(map[string]any{"code": "ChallengeExpired", "errorDescription": "the challenge expired"})
			}
		case "successNotification":
			for _, k := range []string{"certificateThumbprint", "certificateSerialNumber", "certificateExpirationDateUtc", "issuingCertificateAuthority", "caConfiguration", "certificateAuthority"} {
				if v, _ := inner[k].(string); v == "" {
					f.problem("successNotification lacks %s", k)
				}
			}
			if _, err := time.Parse(time.RFC3339, fmt.Sprint(inner["certificateExpirationDateUtc"])); err != nil {
				f.problem("expiration date %v", inner["certificateExpirationDateUtc"])
			}
			json.NewEncoder(w).Encode(map[string]any{"code": "Success"})
		case "failureNotification":
			if _, ok := inner["hResult"].(float64); !ok {
				f.problem("failureNotification's hResult %v is not a number", inner["hResult"])
			}
			if d, ok := inner["errorDescription"].(string); !ok || d == "" || len(utf16.Encode([]rune(d))) > 255 {
				f.problem("failureNotification's errorDescription %q: want 1 to 255 characters", d)
			}
			json.NewEncoder(w).Encode(map[string]any{"code": "Success"})
		default:
			f.problem("unexpected action %s", action)
			http.NotFound(w, r)
		}
	default:
		f.problem("unexpected %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

// checkIntuneSuccess: Intune heard successNotification for transaction
// txid naming cert, with the request and callerInfo it validated.
func checkIntuneSuccess(t *testing.T, f *fakeIntune, txid string, cert *x509.Certificate) {
	t.Helper()
	v := f.sent(t, "validateRequest", txid)
	n := f.sent(t, "successNotification", txid)
	thumb := sha1.Sum(cert.Raw)
	serial, ok := new(big.Int).SetString(fmt.Sprint(n["certificateSerialNumber"]), 16)
	expiry, err := time.Parse(time.RFC3339, fmt.Sprint(n["certificateExpirationDateUtc"]))
	der, _ := base64.StdEncoding.DecodeString(fmt.Sprint(n["certificateRequest"]))
	csr, cerr := x509.ParseCertificateRequest(der)
	switch {
	case n["certificateRequest"] != v["certificateRequest"]:
		t.Errorf("successNotification's certificateRequest is not the CSR Intune validated")
	case cerr != nil || !bytes.Equal(csr.RawSubjectPublicKeyInfo, cert.RawSubjectPublicKeyInfo):
		t.Errorf("successNotification's certificateRequest is not the issued certificate's request: %v", cerr)
	}
	if got := fmt.Sprint(n["certificateThumbprint"]); !strings.EqualFold(got, hex.EncodeToString(thumb[:])) {
		t.Errorf("certificateThumbprint %s, want the certificate's SHA-1 %X", got, thumb)
	}
	if !ok || serial.Cmp(cert.SerialNumber) != 0 {
		t.Errorf("certificateSerialNumber %v, want %x", n["certificateSerialNumber"], cert.SerialNumber)
	}
	if err != nil || !expiry.Equal(cert.NotAfter) || expiry.Location() != time.UTC {
		t.Errorf("certificateExpirationDateUtc %v, want %s in UTC", n["certificateExpirationDateUtc"], cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if got := fmt.Sprint(n["issuingCertificateAuthority"]); !strings.Contains(got, cert.Issuer.CommonName) {
		t.Errorf("issuingCertificateAuthority %q does not name the issuer %q", got, cert.Issuer.CommonName)
	}
	// In RA mode too: the CA that issued it, not the local issuer of the
	// front's RA certificate.
	if got := fmt.Sprint(n["certificateAuthority"]); got != cert.Issuer.CommonName {
		t.Errorf("certificateAuthority %q, want the issuer %q", got, cert.Issuer.CommonName)
	}
	if n["callerInfo"] != v["callerInfo"] {
		t.Errorf("successNotification's callerInfo %v, validateRequest's %v", n["callerInfo"], v["callerInfo"])
	}
	if c := f.count("failureNotification", txid); c != 0 {
		t.Errorf("%d failureNotifications for an issued request", c)
	}
}

// checkIntuneFailure: Intune heard failureNotification for transaction
// txid, which it validated, with the request and callerInfo it validated,
// a failure hResult and a description (at most 255 characters, however
// counted) containing want; and no successNotification.
func checkIntuneFailure(t *testing.T, f *fakeIntune, txid, want string) (description string) {
	t.Helper()
	v := f.sent(t, "validateRequest", txid)
	n := f.sent(t, "failureNotification", txid)
	if n["certificateRequest"] != v["certificateRequest"] {
		t.Errorf("failureNotification's certificateRequest is not the CSR Intune validated")
	}
	if n["callerInfo"] != v["callerInfo"] {
		t.Errorf("failureNotification's callerInfo %v, validateRequest's %v", n["callerInfo"], v["callerInfo"])
	}
	// An HRESULT reporting a failure has its severity bit set: negative
	// as the 32-bit integer Intune reads.
	if h, ok := n["hResult"].(float64); !ok || h != float64(int32(h)) || h >= 0 {
		t.Errorf("hResult %v, want a failure HRESULT (a negative 32-bit integer)", n["hResult"])
	}
	d, _ := n["errorDescription"].(string)
	if !utf8.ValidString(d) || strings.ContainsRune(d, utf8.RuneError) || len(d) > 255 || !strings.Contains(d, want) {
		t.Errorf("errorDescription %q (%d bytes): want at most 255 characters, whole, containing %q", d, len(d), want)
	}
	if c := f.count("successNotification", txid); c != 0 {
		t.Errorf("%d successNotifications for a request not issued", c)
	}
	if c := f.count("failureNotification", txid); c != 1 {
		t.Errorf("%d failureNotifications, want 1", c)
	}
	return d
}

// TestIntune: a request Intune validates is issued and reported with
// successNotification; one it refuses is refused; one it validated that
// scepd then refuses (its senderNonce is another transaction's, as from a
// client whose nonces repeat: the store refuses it when writing the
// certificate, after validation) is reported with failureNotification.
func TestIntune(t *testing.T) {
	f := &fakeIntune{t: t}
	f.base = serve(t, f)
	s := startMDM(t, "http://127.0.0.1:1", f.base)
	key := mustKey()
	certs, err := client.New(s.URL("intune")).Enroll(context.Background(), client.Enrollment{
		Key: key, Subject: pkix.Name{CommonName: "intune-device"}, Challenge: intuneGoodBlob, Cipher: cms.AES128, Digest: crypto.SHA256,
		TransactionID: "intune-ok"})
	if err != nil {
		t.Fatalf("Intune-approved request: %v", err)
	}
	checkIntuneSuccess(t, f, "intune-ok", certs[0])
	// A renewal signed with the certificate, without a challenge, is
	// authorised by the certificate: Intune is not asked.
	if _, err := client.New(s.URL("intune")).Enroll(context.Background(), client.Enrollment{
		Key: mustKey(), Subject: pkix.Name{CommonName: "intune-device"}, Cipher: cms.AES128, Digest: crypto.SHA256,
		SignWith: certs[0], SignKey: key, Renewal: true, TransactionID: "intune-renewal"}); err != nil {
		t.Fatalf("challenge-less renewal: %v", err)
	}
	if n := f.count("validateRequest", "intune-renewal"); n != 0 {
		t.Errorf("the renewal was sent to Intune's validateRequest %d times", n)
	}
	if _, err := enrollWith(s, "intune", "intune-device-2", intuneBlob()); err == nil || !strings.Contains(err.Error(), "ChallengeExpired") {
		t.Fatalf("Intune-refused request: %v", err)
	}

	// Two requests signed by hand with signPKCSReq's fixed senderNonce.
	ra, err := client.Recipient(caCerts(t, s, "intune"))
	if err != nil {
		t.Fatal(err)
	}
	send := func(txid string) (*scep.Message, []byte) {
		t.Helper()
		key := newKey(t)
		csr := csrFor(t, key, txid, intuneGoodBlob)
		env, err := cms.Encrypt(csr, cms.FromX509(ra), cms.AES128, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(s.URL("intune")+"?operation=PKIOperation", "application/x-pki-message",
			bytes.NewReader(signPKCSReq(t, key, selfSignedCert(t, key, txid), env, txid)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rep, err := scep.Parse(body, cms.FromX509(ra))
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("%s: HTTP %d %v", txid, resp.StatusCode, err)
		}
		return rep, csr
	}
	if rep, _ := send("intune-nonce-first"); rep.Status != scep.StatusSuccess {
		t.Fatalf("first use of the senderNonce: %s %q", rep.Status, rep.FailInfoText)
	}
	f.sent(t, "successNotification", "intune-nonce-first")
	before := len(s.Certificates())
	rep, csr := send("intune-nonce-again")
	if rep.Status != scep.StatusFailure || !strings.Contains(rep.FailInfoText, "senderNonce was already used") {
		t.Fatalf("the senderNonce's second use: %s %q", rep.Status, rep.FailInfoText)
	}
	if after := len(s.Certificates()); after != before {
		t.Fatalf("the refused request left %d certificates", after-before)
	}
	checkIntuneFailure(t, f, "intune-nonce-again", "senderNonce was already used")
	if got := f.sent(t, "failureNotification", "intune-nonce-again")["certificateRequest"]; got != base64.StdEncoding.EncodeToString(csr) {
		t.Error("failureNotification's certificateRequest is not the device's CSR")
	}
	if c := f.count("failureNotification", "intune-nonce-first") + f.count("successNotification", "intune-nonce-first"); c != 1 {
		t.Errorf("the first request was reported %d times, want once", c)
	}

	f.checkProblems(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	discoveries := strings.Count(strings.Join(f.calls, " "), "/endpoints")
	if discoveries != 1 {
		t.Errorf("endpoint discovered %d times, want once (cached)", discoveries)
	}
}

// TestIntuneNoPending: Intune has no pending state, so the binary refuses
// a config whose Intune profile would hold requests (manual approval, or
// its upstream down).
func TestIntuneNoPending(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "scepd.yaml")
	os.WriteFile(cfg, []byte(`
profiles:
  - id: held
    approval: manual
    challenge:
      mode: intune
      intune: {tenant: contoso.example, client_id: app-123, client_secret_env: E2E_INTUNE_SECRET}
  - id: upheld
    upstream:
      scep: {url: "http://127.0.0.1:1/scep", ca_fingerprint: "`+strings.Repeat("ab", 32)+`", when_unavailable: pending}
    challenge:
      mode: intune
      intune: {tenant: contoso.example, client_id: app-123, client_secret_env: E2E_INTUNE_SECRET}
`), 0o600)
	out, err := cli(t, nil, nil, "config", "validate", cfg)
	if err == nil || !strings.Contains(out, "profiles[0].approval: Intune has no pending state") ||
		!strings.Contains(out, "profiles[1].upstream.scep.when_unavailable: Intune has no pending state") {
		t.Fatalf("config validate with Intune profiles that would hold requests: %v\n%s", err, out)
	}
}

// TestIntuneUpstreamRefuses: scepd validates with Intune as an RA in front
// of a corporate CA (another scepd, trusting the front's RA certificate)
// whose policy is stricter than the front's: it refuses wildcard names.
// What the CA issues is reported with successNotification; a request Intune
// validated that the CA then refuses is reported with failureNotification,
// its description (the CA's long refusal) cut to Intune's 255 characters.
func TestIntuneUpstreamRefuses(t *testing.T) {
	f := &fakeIntune{t: t}
	f.base = serve(t, f)
	dir := t.TempDir()
	trustedCA, raCert, raKey := raCredential(t, dir, "intune")
	up, upCA := startCorp(t, dir, "Corp Intune CA", `{mode: ra, trusted_ra: {ca_file: "`+trustedCA+`"}}`, "", "")
	frontCfg := filepath.Join(dir, "front.yaml")
	os.WriteFile(frontCfg, []byte(`
profiles:
  - id: intune
    upstream:
      scep: {url: "`+up.URL("corp")+`", ca_fingerprint: "`+upstream.Fingerprint(upCA.Raw)+`", ra: {cert: "`+raCert+`", key: "`+raKey+`"}}
    policy: {sans: {allow_wildcard: true}}
    challenge:
      mode: intune
      intune: {tenant: contoso.example, client_id: app-123, client_secret_env: E2E_INTUNE_SECRET, login_url: "`+f.base+`", graph_url: "`+f.base+`"}
`), 0o600)
	front := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "front"), Args: []string{"--config", frontCfg},
		Env: []string{"E2E_INTUNE_SECRET=" + intuneSecret}})
	enroll := func(txid, cn, dns string) ([]*x509.Certificate, error) {
		return client.New(front.URL("intune")).Enroll(context.Background(), client.Enrollment{Key: mustKey(), Subject: subjectCN(cn),
			DNSNames: []string{dns}, Challenge: intuneGoodBlob, Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: txid})
	}

	certs, err := enroll("intune-up-ok", "intune-laptop", "laptop.corp.example")
	if err != nil {
		t.Fatalf("through the CA: %v\nfront:\n%s\nupstream:\n%s", err, front.Log(), up.Log())
	}
	if err := certs[0].CheckSignatureFrom(upCA); err != nil {
		t.Fatalf("the certificate is not the CA's: %v", err)
	}
	checkIntuneSuccess(t, f, "intune-up-ok", certs[0])

	wildcard := "*." + strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".corp.example"
	_, err = enroll("intune-up-refused", "intune-wildcard", wildcard)
	var fail *client.Failure
	if !errors.As(err, &fail) || !strings.Contains(fail.Text, "upstream CA did not issue") || !strings.Contains(fail.Text, "wildcard names are not allowed") {
		t.Fatalf("a wildcard the CA refuses: %v, want a SCEP FAILURE with the CA's refusal", err)
	}
	d := checkIntuneFailure(t, f, "intune-up-refused", "upstream CA did not issue")
	if utf8.RuneCountInString(fail.Text) <= 255 {
		t.Fatalf("the refusal has %d characters: too few to test the cut to 255", utf8.RuneCountInString(fail.Text))
	}
	t.Logf("errorDescription (%d characters): %s", len(d), d)
	if n := len(certsOf(up, "corp")); n != 1 {
		t.Errorf("the CA stored %d certificates, want 1", n)
	}
	f.checkProblems(t)
}

func TestEntitiesAndRotation(t *testing.T) {
	s := startMDM(t, "http://127.0.0.1:1", "http://127.0.0.1:1")
	out, err := cli(t, s, []string{"SCEPD_ENTITY_CODE=alice-enrollment-code"}, "entity", "register", "--profile", "entity", "--username", "alice", "--uses", "1", "--data", s.DataDir)
	if err != nil {
		t.Fatalf("entity register: %v\n%s", err, out)
	}
	if _, err := enrollWith(s, "entity", "bob", "alice-enrollment-code"); err == nil {
		t.Fatal("another subject used alice's code")
	}
	if _, err := enrollWith(s, "entity", "alice", "wrong-code-entirely"); err == nil {
		t.Fatal("a wrong code was accepted")
	}
	if _, err := enrollWith(s, "entity", "alice", "alice-enrollment-code"); err != nil {
		t.Fatalf("alice with her code: %v", err)
	}
	if _, err := enrollWith(s, "entity", "alice", "alice-enrollment-code"); err == nil || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("a one-use code used twice: %v", err)
	}

	// Static rotation with overlap through the API (an API-owned profile).
	tok, _ := cli(t, s, nil, "token", "create", "--role", "admin", "--data", s.DataDir)
	tok = strings.TrimSpace(tok)
	if code, body := api(t, s, tok, "POST", "/api/v1/profiles", map[string]any{"id": "api-static", "ca": "root", "challenge": map[string]any{"password": "first-static-secret"}}); code != 200 {
		t.Fatalf("create: %d %v", code, body)
	}
	out, err = cli(t, s, []string{"SCEPD_TOKEN=" + tok, "SCEPD_NEW_CHALLENGE=second-static-secret"}, "challenge", "rotate", "--profile", "api-static", "--overlap", "1h", "--server", s.BaseURL())
	if err != nil {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	for _, pw := range []string{"first-static-secret", "second-static-secret"} {
		if _, err := enrollWith(s, "api-static", "rot-"+pw[:5], pw); err != nil {
			t.Fatalf("during the overlap %q: %v", pw, err)
		}
	}
	if code, _ := api(t, s, tok, "POST", "/api/v1/profiles/api-static/challenge/rotate", map[string]any{"password": "third-static-secret"}); code != 200 {
		t.Fatal("rotate without overlap")
	}
	if _, err := enrollWith(s, "api-static", "rot-old", "second-static-secret"); err == nil {
		t.Fatal("the replaced challenge still works without an overlap")
	}
	if _, err := enrollWith(s, "api-static", "rot-new", "third-static-secret"); err != nil {
		t.Fatal(err)
	}
	if code, _ := api(t, s, tok, "POST", "/api/v1/profiles/rotating/challenge/rotate", map[string]any{}); code != 409 {
		t.Fatal("a config-owned profile's challenge was rotated through the API")
	}
}

func TestFailedAttemptLimit(t *testing.T) {
	s := startMDM(t, "http://127.0.0.1:1", "http://127.0.0.1:1")
	for i := range 10 {
		if _, err := enrollWith(s, "rotating", fmt.Sprint("guess-", i), fmt.Sprintf("guess-%d-wrong", i)); err == nil {
			t.Fatal("a wrong challenge was accepted")
		}
	}
	_, err := enrollWith(s, "rotating", "after-guessing", challenge)
	if err == nil || !strings.Contains(err.Error(), "too many failed attempts") {
		t.Fatalf("after 10 failures the right challenge must be refused unchecked: %v", err)
	}
	checkMetrics(t, s,
		`scepd_limits_total{endpoint="enroll",kind="lockout",profile="rotating"} 1`,
		`scepd_limits_total{endpoint="enroll",kind="blocked",profile="rotating"} 1`,
	)
	// Another profile is not affected.
	tok, _ := cli(t, s, nil, "challenge", "create", "--profile", "ndes8", "--data", s.DataDir)
	if _, err := enrollWith(s, "ndes8", "other-profile", strings.TrimSpace(tok)); err != nil {
		t.Fatalf("another profile from the same address: %v", err)
	}
}

// TestChallengeEndpointLimits: minting is rationed per profile, shared by
// the NDES page and the API; guessing MDM credentials locks the address out
// of that profile's challenge endpoints before any password is checked.
// Both show in /metrics, the lockout in the audit log.
func TestChallengeEndpointLimits(t *testing.T) {
	s := startMDM(t, "http://127.0.0.1:1", "http://127.0.0.1:1", "--challenge-rate", "0.001", "--challenge-burst", "3")
	tok, err := cli(t, s, nil, "token", "create", "--role", "mdm", "--profile", "ndes8", "--data", s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	page8 := s.URL("ndes8")[:strings.LastIndex(s.URL("ndes8"), "/")] + "/mscep_admin/"
	for i := range 2 {
		if code, body, _ := fetchNDES(t, page8, "okta", tok); code != 200 || ndesPasswordRE.FindStringSubmatch(body) == nil {
			t.Fatalf("mint %d of the burst on the NDES page: %d %s", i+1, code, body)
		}
	}
	if code, body := api(t, s, tok, "POST", "/api/v1/profiles/ndes8/challenges", map[string]any{}); code != 200 && code != 201 {
		t.Fatalf("third mint of the burst through the API: %d %v", code, body)
	}
	code, body, hdr := fetchNDES(t, page8, "okta", tok)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || ndesPasswordRE.MatchString(body) {
		t.Fatalf("fourth mint on the page: %d Retry-After %q %s", code, hdr.Get("Retry-After"), body)
	}
	if code, body := api(t, s, tok, "POST", "/api/v1/profiles/ndes8/challenges", map[string]any{}); code != http.StatusTooManyRequests {
		t.Fatalf("fourth mint through the API: %d %v", code, body)
	}
	if pending, used, expired, err := s.Store().ChallengeCounts(context.Background(), "ndes8", time.Now()); err != nil || pending+used+expired != 3 {
		t.Fatalf("%d+%d+%d challenges stored for ndes8 (%v), want the 3 of the burst", pending, used, expired, err)
	}

	// Another profile has its own budget; ten wrong NDES passwords then lock
	// this address out of it, even with the right password.
	page := s.BaseURL() + "/certsrv/mscep_admin/"
	if code, _, _ := fetchNDES(t, page, "mdmadmin", ndesPassword); code != 200 {
		t.Fatalf("another profile's page: %d", code)
	}
	for i := range 10 {
		if code, _, _ := fetchNDES(t, page, "mdmadmin", fmt.Sprintf("guess-%d", i)); code != 401 {
			t.Fatalf("wrong password %d: %d", i+1, code)
		}
	}
	code, body, hdr = fetchNDES(t, page, "mdmadmin", ndesPassword)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || ndesPasswordRE.MatchString(body) {
		t.Fatalf("the right password after the lockout: %d Retry-After %q", code, hdr.Get("Retry-After"))
	}
	checkMetrics(t, s,
		`scepd_limits_total{endpoint="ndes",kind="rate",profile="ndes8"} 1`,
		`scepd_limits_total{endpoint="ndes",kind="lockout",profile="ndes"} 1`,
		`scepd_limits_total{endpoint="ndes",kind="blocked",profile="ndes"} 1`,
	)
	audit, _ := cliAudit(t, s)
	if !strings.Contains(audit, "ndes.lockout") {
		t.Errorf("no ndes.lockout in the audit log:\n%s", audit)
	}
}

// TestNoSecretsInLogsOrDatabase runs the MDM modes and then searches every
// log line and the database file for the secrets used.
func TestNoSecretsInLogsOrDatabase(t *testing.T) {
	rcv := &webhookReceiver{}
	f := &fakeIntune{t: t}
	f.base = serve(t, f)
	s := startMDM(t, serve(t, rcv), f.base)
	code, body, _ := fetchNDES(t, s.BaseURL()+"/certsrv/mscep_admin/", "mdmadmin", ndesPassword)
	m := ndesPasswordRE.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatal("no NDES challenge")
	}
	if _, err := enrollWith(s, "ndes", "dev", m[1]); err != nil {
		t.Fatal(err)
	}
	enrollWith(s, "rotating", "dev2", challenge)
	enrollWith(s, "rotating", "dev3", "a-wrong-static-guess")
	enrollWith(s, "hook", "ok-dev", "device-token")
	if _, err := enrollWith(s, "intune", "idev", intuneGoodBlob); err != nil {
		t.Fatalf("Intune enrollment (its blob must be looked for below): %v", err)
	}
	cli(t, s, []string{"SCEPD_ENTITY_CODE=entity-secret-code"}, "entity", "register", "--profile", "entity", "--username", "ent", "--data", s.DataDir)
	enrollWith(s, "entity", "ent", "entity-secret-code")
	s.Stop()
	var db []byte
	filepath.Walk(s.DataDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.Contains(info.Name(), "scepd.db") {
			b, _ := os.ReadFile(p)
			db = append(db, b...)
		}
		return nil
	})
	for _, secret := range []string{ndesPassword, m[1], challenge, "a-wrong-static-guess", "device-token", webhookSecret, intuneSecret, intuneGoodBlob[:64], "entity-secret-code"} {
		if strings.Contains(s.Log(), secret) {
			t.Errorf("secret %q is in the server log", secret)
		}
		if bytes.Contains(db, []byte(secret)) {
			t.Errorf("secret %q is in the database", secret)
		}
	}
}

var sharedKeys = func() []*rsaKey {
	out := make([]*rsaKey, 4)
	for i := range out {
		out[i] = mustKey()
	}
	return out
}()

func mustKey() *rsaKey {
	k, err := generateRSA()
	if err != nil {
		panic(err)
	}
	return k
}

type rsaKey = rsa.PrivateKey

func generateRSA() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }
