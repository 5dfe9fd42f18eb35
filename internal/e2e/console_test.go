package e2e

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
)

// artifactsDir keeps the console screenshots: $SCEPD_ARTIFACTS/console,
// or artifacts/console at the repository root.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("SCEPD_ARTIFACTS")
	if dir == "" {
		out, err := sceptest.Run(t, 10*time.Second, nil, "", "go", "env", "GOMOD")
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(filepath.Dir(strings.TrimSpace(out)), "artifacts")
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium (Debian package chromium) driven over
// the DevTools protocol.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	bin := sceptest.RequireTool(t, "chromium", "chromium")
	// Chromium's profile lives outside t.TempDir: its helper processes may
	// still be writing there for a moment after the browser is closed,
	// which would fail TempDir's strict cleanup.
	profile, err := os.MkdirTemp("", "scepd-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 900), chromedp.UserDataDir(profile))
	opts = append(opts, extra...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelC()
		cancelB()
		cancelA()
		os.RemoveAll(profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// submit clicks something that loads another page (a form's button, a
// link) and waits until that page, redirects followed, has loaded. Queried
// while the old document is being replaced, a page fails with "No node
// with given id found".
func submit(t *testing.T, ctx context.Context, what string, click chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, click); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// shoot saves a full-page screenshot and checks the page rendered: no
// template or server error text, and its main table has data rows.
func shoot(t *testing.T, ctx context.Context, dir, name, table string) {
	t.Helper()
	var png []byte
	var body string
	run(t, ctx, "screenshot "+name, chromedp.FullScreenshot(&png, 100), chromedp.Text("body", &body, chromedp.ByQuery))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"template:", "internal error", "<no value>", "%!"} {
		if strings.Contains(body, bad) {
			t.Errorf("page %s shows %q:\n%s", name, bad, body)
		}
	}
	if table != "" {
		var rows int
		run(t, ctx, "rows of "+name, chromedp.Evaluate(`document.querySelectorAll('`+table+` tbody tr td:not([colspan])').length`, &rows))
		if rows == 0 {
			t.Errorf("page %s: table %s is empty", name, table)
		}
	}
}

func consoleConfig(t *testing.T) string {
	cfg := filepath.Join(t.TempDir(), "scepd.yaml")
	os.WriteFile(cfg, []byte(`
default_profile: devices
cas:
  - id: root
    create: {subject: "CN=Console Root,O=E2E", key_type: ecdsa-p256}
profiles:
  - id: devices
    ca: root
    allow_des: true
    challenge: {password_env: E2E_STATIC}
    policy:
      ext_key_usage: [clientAuth, "1.3.6.1.4.1.99999.1.1"]
  - id: approvals
    ca: root
    approval: manual
    challenge: {password_env: E2E_STATIC}
  - id: mdm
    ca: root
    challenge: {mode: dynamic}
`), 0o600)
	return cfg
}

// TestConsole drives the web console in headless Chromium: sign in,
// find a certificate scepclient enrolled, revoke it and find it in the
// CRL, approve a pending request the client then collects, create a
// one-time challenge, refuse forged forms, and sign out.
func TestConsole(t *testing.T) {
	scepclient := sceptest.RequireTool(t, "scepclient", "scep")
	dir := t.TempDir()
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", consoleConfig(t)},
		Env: []string{"E2E_STATIC=" + challenge}})
	shots := artifactsDir(t)
	base := s.BaseURL() + "/console"

	out, err := cli(t, s, nil, "token", "create", "--name", "console-op", "--role", "operator", "--data", s.DataDir)
	token := regexp.MustCompile(`scepd_[0-9a-f]{16}_[A-Za-z0-9_-]+`).FindString(out)
	if err != nil || token == "" {
		t.Fatalf("token create: %v\n%s", err, out)
	}

	// A real client enrolls the certificate the operator will look for.
	caCertsOf := func(profile string) ([]*x509.Certificate, *x509.Certificate) {
		certs, err := client.New(s.URL(profile)).GetCACert(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ra, err := client.Recipient(certs)
		if err != nil {
			t.Fatal(err)
		}
		return certs, ra
	}
	certs, ra := caCertsOf("devices")
	root := certs[len(certs)-1]
	fp := sha256.Sum256(ra.Raw)
	if out, err := sceptest.Run(t, time.Minute, nil, dir, scepclient, "-server-url", s.URL("devices"), "-private-key", filepath.Join(dir, "key.pem"),
		"-challenge", challenge, "-cn", "console-laptop", "-ca-fingerprint", hex.EncodeToString(fp[:])); err != nil {
		t.Fatalf("scepclient: %v\n%s", err, out)
	}
	serial := s.Certificates()[0].Serial

	ctx := browser(t)
	// Unauthenticated: the console sends the browser to sign in.
	var loc string
	run(t, ctx, "open the console", chromedp.Navigate(base+"/certificates"), chromedp.WaitVisible("#token", chromedp.ByID), chromedp.Location(&loc))
	if !strings.Contains(loc, "/console/login") {
		t.Fatalf("unauthenticated console at %s, want the sign-in page", loc)
	}
	shoot(t, ctx, shots, "login", "")
	// A wrong token is refused.
	var alert string
	run(t, ctx, "wrong token", chromedp.SendKeys("#token", "scepd_0123456789abcdef_wrong", chromedp.ByID), chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible(`[role="alert"]`, chromedp.ByQuery), chromedp.Text(`[role="alert"]`, &alert, chromedp.ByQuery))
	if !strings.Contains(alert, "not valid") {
		t.Fatalf("wrong token: %q\n%s", alert, s.Log())
	}
	run(t, ctx, "sign in", chromedp.SendKeys("#token", token, chromedp.ByID), chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible("#certificates", chromedp.ByID), chromedp.Location(&loc))
	if !strings.HasSuffix(loc, "/console/certificates") {
		t.Errorf("after sign-in at %s, want back at the page first asked for", loc)
	}
	// The session cookie is HttpOnly and SameSite=Lax (forms carry the
	// CSRF token).
	var cookies []*network.Cookie
	run(t, ctx, "cookies", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().Do(ctx)
		return err
	}))
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "scepd_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteLax {
		t.Fatalf("session cookie %+v", session)
	}

	run(t, ctx, "dashboard", chromedp.Navigate(base+"/dashboard"), chromedp.WaitVisible("svg.chart", chromedp.ByQuery))
	shoot(t, ctx, shots, "dashboard", "#profile-stats")

	// Find the certificate by subject and open it.
	run(t, ctx, "search", chromedp.Navigate(base+"/certificates"), chromedp.SendKeys("#subject", "console-laptop", chromedp.ByID),
		chromedp.Submit("#subject", chromedp.ByID),
		// The results page echoes the query as the input's attribute; the
		// form page before it had only typed text.
		chromedp.WaitVisible(`input#subject[value="console-laptop"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`a[href="/console/certificates/`+serial+`"]`, chromedp.ByQuery))
	shoot(t, ctx, shots, "certificates", "#certificates")
	var decoded string
	submit(t, ctx, "certificate detail", chromedp.Click(`a[href="/console/certificates/`+serial+`"]`, chromedp.ByQuery))
	run(t, ctx, "certificate detail", chromedp.WaitVisible("#decoded", chromedp.ByID), chromedp.Text("main", &decoded, chromedp.ByQuery))
	for _, want := range []string{"CN=console-laptop", "CN=Console Root,O=E2E", "clientAuth, 1.3.6.1.4.1.99999.1.1", "Extended Key Usage", "RSA 2048 bits", "ECDSA-SHA256"} {
		if !strings.Contains(decoded, want) {
			t.Errorf("certificate page lacks %q:\n%s", want, decoded)
		}
	}
	shoot(t, ctx, shots, "certificate", "#extensions")

	// A forged form from another origin: the browser posts it, scepd
	// refuses it, the certificate stays valid.
	evil := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<form id="f" method="post" action="` + base + `/certificates/` + serial + `/revoke">
<input name="reason" value="keyCompromise"><input name="confirm" value="yes"><input name="csrf" value="guessed"></form>
<script>document.getElementById('f').submit()</script>`))
	}))
	run(t, ctx, "forged form", chromedp.Navigate(evil), chromedp.Sleep(2*time.Second))
	if c, _ := s.Store().GetCertificate(context.Background(), serial); c.Status != store.CertValid {
		t.Fatal("a cross-site form revoked a certificate")
	}
	// The same form posted with the session cookie but without the CSRF
	// token (a script outside the browser) is refused too.
	form := url.Values{"reason": {"keyCompromise"}, "confirm": {"yes"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/certificates/"+serial+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form without its CSRF token: HTTP %d, want 403", resp.StatusCode)
	}
	if c, _ := s.Store().GetCertificate(context.Background(), serial); c.Status != store.CertValid {
		t.Fatal("a form without its CSRF token revoked a certificate")
	}

	// Revoke for real, with a reason and the confirmation.
	var flash string
	run(t, ctx, "revoke", chromedp.Navigate(base+"/certificates/"+serial), chromedp.WaitVisible("#reason", chromedp.ByID),
		chromedp.SetValue("#reason", "keyCompromise", chromedp.ByID), chromedp.Click(`input[name="confirm"]`, chromedp.ByQuery))
	submit(t, ctx, "revoke", chromedp.Click(`button.danger`, chromedp.ByQuery))
	run(t, ctx, "revoke", chromedp.WaitVisible(".flash", chromedp.ByQuery), chromedp.Text(".flash", &flash, chromedp.ByQuery))
	if !strings.Contains(flash, "revoked") {
		t.Fatalf("after revoking: %q", flash)
	}
	crlDER, err := sceptest.HTTPGet(s.BaseURL() + "/crl/root.crl")
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil || crl.CheckSignatureFrom(root) != nil {
		t.Fatalf("CRL: %v", err)
	}
	inCRL := false
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Text(16) == serial && e.ReasonCode == 1 {
			inCRL = true
		}
	}
	if !inCRL {
		t.Fatalf("revoked certificate %s is not in the CRL with reason keyCompromise", serial)
	}

	// A pending request, approved in the console, collected by polling.
	_, ra = caCertsOf("approvals")
	c := client.New(s.URL("approvals"))
	key := newKey(t)
	subject := pkix.Name{CommonName: "console-approve-me"}
	_, err = c.Enroll(context.Background(), client.Enrollment{Key: key, Subject: subject, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256,
		TransactionID: "console-tx-1", Recipient: ra})
	if !errors.Is(err, client.ErrPending) {
		t.Fatalf("manual approval: %v, want PENDING", err)
	}
	self, _ := client.SelfSigned(key, subject)
	who := client.Requester{Cert: self, Key: key}
	run(t, ctx, "requests", chromedp.Navigate(base+"/requests"), chromedp.WaitVisible(`form[action$="/console-tx-1/approve"]`, chromedp.ByQuery))
	shoot(t, ctx, shots, "requests", "#requests")
	submit(t, ctx, "approve", chromedp.Click(`form[action$="/console-tx-1/approve"] button`, chromedp.ByQuery))
	run(t, ctx, "approve", chromedp.WaitVisible(".flash", chromedp.ByQuery), chromedp.Text(".flash", &flash, chromedp.ByQuery))
	if !strings.Contains(flash, "Approved") {
		t.Fatalf("after approving: %q", flash)
	}
	got, err := c.Poll(context.Background(), who, root, subject, "console-tx-1", ra, cms.AES128)
	if err != nil || got[0].Subject.CommonName != "console-approve-me" {
		t.Fatalf("poll after approval in the console: %v", err)
	}
	checkChain(t, got[0], root, nil)

	// Another one rejected with a comment: the polling client is told why.
	key2 := newKey(t)
	subject2 := pkix.Name{CommonName: "console-reject-me"}
	if _, err := c.Enroll(context.Background(), client.Enrollment{Key: key2, Subject: subject2, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256,
		TransactionID: "console-tx-2", Recipient: ra}); !errors.Is(err, client.ErrPending) {
		t.Fatalf("manual approval: %v, want PENDING", err)
	}
	run(t, ctx, "reject", chromedp.Navigate(base+"/requests"), chromedp.WaitVisible("#comment-console-tx-2", chromedp.ByID),
		chromedp.SendKeys("#comment-console-tx-2", "unknown laptop", chromedp.ByID))
	submit(t, ctx, "reject", chromedp.Click(`form[action$="/console-tx-2/reject"] button`, chromedp.ByQuery))
	run(t, ctx, "reject", chromedp.WaitVisible(".flash", chromedp.ByQuery), chromedp.Text(".flash", &flash, chromedp.ByQuery))
	if !strings.Contains(flash, "Rejected") {
		t.Fatalf("after rejecting: %q", flash)
	}
	self2, _ := client.SelfSigned(key2, subject2)
	if _, err := c.Poll(context.Background(), client.Requester{Cert: self2, Key: key2}, root, subject2, "console-tx-2", ra, cms.AES128); err == nil ||
		!strings.Contains(err.Error(), "unknown laptop") {
		t.Fatalf("poll after rejection in the console: %v, want the operator's comment", err)
	}

	// Download: the PEM is the stored certificate.
	req, _ = http.NewRequest(http.MethodGet, base+"/certificates/"+serial+"/download", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pemBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stored, _ := s.Store().GetCertificate(context.Background(), serial)
	if block, _ := pem.Decode(pemBody); block == nil || len(stored.DER) == 0 || string(block.Bytes) != string(stored.DER) {
		t.Fatalf("PEM download (HTTP %d) is not the stored certificate:\n%s", resp.StatusCode, pemBody)
	}

	// A one-time challenge, shown once; scepd keeps only its hash.
	var secret string
	run(t, ctx, "challenge", chromedp.Navigate(base+"/challenges"), chromedp.WaitVisible("#challenges", chromedp.ByID))
	submit(t, ctx, "challenge", chromedp.Click(`#challenges form button`, chromedp.ByQuery))
	run(t, ctx, "challenge", chromedp.WaitVisible("#new-challenge", chromedp.ByID), chromedp.Text("#new-challenge", &secret, chromedp.ByID))
	shoot(t, ctx, shots, "challenges", "#challenges")
	if _, err := enrollWith(s, "mdm", "console-mdm-device", strings.TrimSpace(secret)); err != nil {
		t.Fatalf("enrolling with the console's challenge: %v", err)
	}
	metrics, err := sceptest.HTTPGet(s.BaseURL() + "/metrics")
	if err != nil || !strings.Contains(string(metrics), `scepd_challenges{profile="mdm",state="used"} 1`) ||
		!strings.Contains(string(metrics), `scepd_challenges{profile="mdm",state="pending"} 0`) {
		t.Errorf("/metrics does not count the redeemed challenge (%v):\n%s", err, metrics)
	}
	var again string
	run(t, ctx, "challenge list", chromedp.Navigate(base+"/challenges"), chromedp.WaitVisible("#challenges", chromedp.ByID), chromedp.Text("main", &again, chromedp.ByQuery))
	if strings.Contains(again, strings.TrimSpace(secret)) {
		t.Error("the challenge is shown again after creation")
	}

	for _, p := range []struct{ path, name, table string }{
		{"/profiles", "profiles", "#profiles"}, {"/profiles/devices", "profile", ""}, {"/dashboard?days=90", "dashboard-90", "#profile-stats"},
	} {
		run(t, ctx, p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible("h1", chromedp.ByQuery))
		shoot(t, ctx, shots, p.name, p.table)
	}
	// Operators act; the audit trail is for auditors and admins.
	var body string
	run(t, ctx, "audit as operator", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible("h1", chromedp.ByQuery), chromedp.Text("main", &body, chromedp.ByQuery))
	if !strings.Contains(body, "does not allow") {
		t.Errorf("an operator sees the audit log:\n%s", body)
	}

	// Phone width: nothing wider than the screen.
	var overflow bool
	run(t, ctx, "phone width", emulation.SetDeviceMetricsOverride(390, 844, 3, true), chromedp.Navigate(base+"/dashboard"),
		chromedp.WaitVisible("svg.chart", chromedp.ByQuery), chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
	shoot(t, ctx, shots, "dashboard-phone", "#profile-stats")
	if overflow {
		t.Error("the dashboard is wider than a phone screen")
	}
	run(t, ctx, "desktop width", emulation.ClearDeviceMetricsOverride())

	// Sign out: the session is gone, also for a copied cookie.
	submit(t, ctx, "sign out", chromedp.Click(`form[action="/console/logout"] button`, chromedp.ByQuery))
	run(t, ctx, "sign out", chromedp.WaitVisible("#token", chromedp.ByID))
	req, _ = http.NewRequest(http.MethodGet, base+"/dashboard", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	resp, err = (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/console/login") {
		t.Fatalf("a signed-out session still works: HTTP %d", resp.StatusCode)
	}

	// The admin sees the audit trail: sign-ins, the revocation and the
	// approval by the operator's token, through the console.
	adminOut, err := cli(t, s, nil, "token", "create", "--name", "console-admin", "--role", "admin", "--data", s.DataDir)
	adminToken := regexp.MustCompile(`scepd_[0-9a-f]{16}_[A-Za-z0-9_-]+`).FindString(adminOut)
	if err != nil || adminToken == "" {
		t.Fatalf("token create: %v\n%s", err, adminOut)
	}
	run(t, ctx, "sign in as admin", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", adminToken, chromedp.ByID), chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible("#audit", chromedp.ByID), chromedp.Text("#audit", &body, chromedp.ByID))
	for _, want := range []string{"console.signin", "console.signout", "certificate.revoke", "via console"} {
		if !strings.Contains(body, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
	shoot(t, ctx, shots, "audit", "#audit")
	// The revoked certificate's event links to it; details open on
	// demand; the table fits the page.
	var links, details int
	var wide bool
	run(t, ctx, "audit links", chromedp.Evaluate(`document.querySelectorAll('#audit a[href="/console/certificates/`+serial+`"]').length`, &links),
		chromedp.Evaluate(`document.querySelectorAll('#audit details').length`, &details),
		chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth`, &wide))
	if links == 0 || details == 0 || wide {
		t.Errorf("audit page: %d links to the revoked certificate, %d details, wider than the window %v", links, details, wide)
	}
	run(t, ctx, "new profile form", chromedp.Navigate(base+"/profiles/new"), chromedp.WaitVisible("#spec", chromedp.ByID))
	shoot(t, ctx, shots, "profile-new", "")
	// An admin creates a profile from YAML; it serves SCEP at once.
	spec := "id: kiosk\nca: root\nchallenge: {mode: dynamic}\npolicy: {validity: 48h}\n"
	run(t, ctx, "create profile", chromedp.SetValue("#spec", spec, chromedp.ByID), chromedp.Submit("#spec", chromedp.ByID),
		chromedp.WaitVisible("#scep-url", chromedp.ByID), chromedp.Text(".flash", &flash, chromedp.ByQuery))
	if !strings.Contains(flash, "kiosk saved") {
		t.Fatalf("after creating a profile: %q", flash)
	}
	once, err := cli(t, s, nil, "challenge", "create", "--profile", "kiosk", "--data", s.DataDir)
	if err != nil {
		t.Fatalf("challenge create: %v\n%s", err, once)
	}
	kiosk, err := enrollWith(s, "kiosk", "kiosk-1", strings.TrimSpace(once))
	if err != nil {
		t.Fatalf("enrolling on the console-created profile: %v", err)
	}
	if d := kiosk.NotAfter.Sub(kiosk.NotBefore); d > 49*time.Hour {
		t.Errorf("kiosk certificate lives %v, want the profile's 48h", d)
	}
	// A broken spec is refused with the reason, and nothing is created.
	var alertText string
	run(t, ctx, "bad profile", chromedp.Navigate(base+"/profiles/new"), chromedp.WaitVisible("#spec", chromedp.ByID),
		chromedp.SetValue("#spec", "id: broken\nca: nope\nbogus: 1\n", chromedp.ByID), chromedp.Submit("#spec", chromedp.ByID),
		chromedp.WaitVisible(`[role="alert"]`, chromedp.ByQuery), chromedp.Text(`[role="alert"]`, &alertText, chromedp.ByQuery))
	if !strings.Contains(alertText, "bogus") {
		t.Errorf("a broken profile spec: %q", alertText)
	}
	if _, err := s.Store().GetProfile(context.Background(), "broken"); err == nil {
		t.Error("a broken spec created a profile")
	}
	if strings.Contains(s.Log(), token) || strings.Contains(s.Log(), adminToken) || strings.Contains(s.Log(), session.Value) {
		t.Error("a token or session cookie appears in the log")
	}
}
