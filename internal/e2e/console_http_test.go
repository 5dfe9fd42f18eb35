package e2e

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// webSession is a signed-in web console session driven over plain
// HTTP, as a browser would (cookies kept, same-origin POSTs carrying the
// page's CSRF token), for checks that need no script.
type webSession struct {
	t    *testing.T
	base string // scheme://host:port of the listener serving /console/
	hc   *http.Client
	// last is the request that gave the latest answer, after redirects.
	last *http.Request
}

// consoleSignIn signs in to the console at base with token.
func consoleSignIn(t *testing.T, base, token string) *webSession {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &webSession{t: t, base: base, hc: &http.Client{Jar: jar}}
	_, page := c.get("/console/login")
	if code, body := c.post("/console/login", url.Values{"nonce": {c.field(page, "nonce")}, "token": {token}}); code != 200 {
		t.Fatalf("console sign-in: HTTP %d\n%s", code, body)
	}
	return c
}

// field is the value of the first input named name in page.
func (c *webSession) field(page, name string) string {
	c.t.Helper()
	m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("console page has no %s field:\n%s", name, page)
	}
	return m[1]
}

func (c *webSession) do(req *http.Request) (int, string) {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	c.last = resp.Request
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get fetches a console page, following redirects.
func (c *webSession) get(path string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

// post submits a form from this origin, following the redirect after it.
func (c *webSession) post(path string, form url.Values) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.base)
	return c.do(req)
}

// csrf is the session's form token, read from a console page.
func (c *webSession) csrf() string {
	c.t.Helper()
	_, page := c.get("/console/requests")
	return c.field(page, "csrf")
}

// TestConsoleSCEPURLWithAdminAddr: with the console on its own listener
// (--admin-addr), the SCEP URL it shows (and Copy hands out) is the SCEP
// listener's, which answers GetCACaps, and the page says where the URL
// comes from; with a public URL, that one.
func TestConsoleSCEPURLWithAdminAddr(t *testing.T) {
	adminAddr := sceptest.FreeAddr(t)
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--admin-addr", adminAddr}})
	c := consoleSignIn(t, "http://"+adminAddr, newToken(t, s, "auditor"))
	copied := regexp.MustCompile(`data-copy="([^"]+)"`)
	for _, path := range []string{"/console/profiles", "/console/profiles/default"} {
		code, page := c.get(path)
		m := copied.FindStringSubmatch(page)
		if code != 200 || m == nil {
			t.Fatalf("%s: HTTP %d, no Copy button:\n%s", path, code, page)
		}
		if m[1] != s.URL("default") {
			t.Errorf("%s: Copy gives %s, want the SCEP listener's %s", path, m[1], s.URL("default"))
		}
		resp, err := http.Get(m[1] + "?operation=GetCACaps")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: the copied URL answers GetCACaps with HTTP %d", path, resp.StatusCode)
		}
		if !strings.Contains(page, "SCEP listener") || !strings.Contains(page, "public_url") {
			t.Errorf("%s does not say the URL is the SCEP listener's and how to set public_url:\n%s", path, page)
		}
	}

	adminAddr2 := sceptest.FreeAddr(t)
	s2 := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge},
		Args: []string{"--admin-addr", adminAddr2, "--public-url", "https://pki.example.com/"}})
	c2 := consoleSignIn(t, "http://"+adminAddr2, newToken(t, s2, "auditor"))
	_, page := c2.get("/console/profiles/default")
	if m := copied.FindStringSubmatch(page); m == nil || m[1] != "https://pki.example.com/scep/default/pkiclient.exe" {
		t.Errorf("with a public URL, Copy gives %v", m)
	}
	if !strings.Contains(page, "public URL") {
		t.Errorf("the page does not say the URL is the public URL:\n%s", page)
	}
}

// TestDecideTwice: approving or rejecting a request already decided (a
// double click, a stale page, two operators at once) is a 409 naming who
// decided it and when, in the API and in the console; never a 500, never
// a second certificate.
func TestDecideTwice(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", consoleConfig(t)}, Env: []string{"E2E_STATIC=" + challenge}})
	op := newToken(t, s, "operator")
	pending := func(txid string) {
		t.Helper()
		_, err := client.New(s.URL("approvals")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: txid},
			Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: txid})
		if !errors.Is(err, client.ErrPending) {
			t.Fatalf("enroll %s: %v, want PENDING", txid, err)
		}
	}
	already := regexp.MustCompile(`already (approved|rejected) by token:[0-9a-f]{16} \(operator-\)( via console)? at 20\d\d-\d\d-\d\d`)

	// API: two operators approve at once; one certificate, one 409.
	pending("api-tx")
	codes := make(chan int, 2)
	msgs := make(chan string, 2)
	for range 2 {
		go func() {
			code, body := api(t, s, op, "POST", "/api/v1/requests/approvals/api-tx/approve", nil)
			codes <- code
			msgs <- apiMessage(body)
		}()
	}
	got := map[int]int{}
	var msg string
	for range 2 {
		got[<-codes]++
		if m := <-msgs; m != "" {
			msg = m
		}
	}
	if got[200] != 1 || got[409] != 1 || !already.MatchString(msg) {
		t.Errorf("two approvals at once: %v, message %q; want one 200 and one 409 naming who approved and when", got, msg)
	}
	if n := len(s.Certificates()); n != 1 {
		t.Errorf("%d certificates issued, want 1", n)
	}
	code, body := api(t, s, op, "POST", "/api/v1/requests/approvals/api-tx/reject", map[string]any{"reason": "late"})
	if m := apiMessage(body); code != 409 || !strings.Contains(m, "already approved by") {
		t.Errorf("rejecting an approved request: %d %v, want 409 already approved", code, body)
	}
	pending("api-tx2")
	if code, body := api(t, s, op, "POST", "/api/v1/requests/approvals/api-tx2/reject", map[string]any{"reason": "no"}); code != 204 {
		t.Fatalf("reject: %d %v", code, body)
	}
	for _, d := range []string{"approve", "reject"} {
		code, body := api(t, s, op, "POST", "/api/v1/requests/approvals/api-tx2/"+d, map[string]any{})
		if m := apiMessage(body); code != 409 || !already.MatchString(m) || !strings.Contains(m, "rejected") {
			t.Errorf("%s a rejected request: %d %v, want 409 already rejected", d, code, body)
		}
	}
	if code, _ := api(t, s, op, "POST", "/api/v1/requests/approvals/no-such-tx/reject", map[string]any{}); code != 404 {
		t.Errorf("rejecting an unknown request: %d, want 404", code)
	}

	// Console: the form posted twice (a stale page) is a clear 409.
	pending("web-tx")
	c := consoleSignIn(t, s.BaseURL(), op)
	csrf := c.csrf()
	if code, page := c.post("/console/requests/approvals/web-tx/approve", url.Values{"csrf": {csrf}}); code != 200 || !strings.Contains(page, "Approved") {
		t.Fatalf("console approve: %d\n%s", code, page)
	}
	for _, d := range []string{"approve", "reject"} {
		code, page := c.post("/console/requests/approvals/web-tx/"+d, url.Values{"csrf": {csrf}})
		if code != 409 || !already.MatchString(page) {
			t.Errorf("console %s of an approved request: HTTP %d\n%s", d, code, page[strings.Index(page, "<main"):])
		}
	}
	if strings.Contains(s.Log(), "internal error") || strings.Contains(s.Log(), "operation failed") {
		t.Errorf("a decided request logged an internal error:\n%s", s.Log())
	}
}

// apiMessage is the message of a REST API error answer.
func apiMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// TestConsoleChallengePostRedirectGet: minting a challenge in the console
// answers with a redirect (POST/redirect/GET), so reloading the page that
// shows it mints no second one; that page shows the value once, with its
// binding and expiry, and the value is never in a URL.
func TestConsoleChallengePostRedirectGet(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", consoleConfig(t)}, Env: []string{"E2E_STATIC=" + challenge}})
	c := consoleSignIn(t, s.BaseURL(), newToken(t, s, "operator"))
	code, page := c.post("/console/challenges", url.Values{"csrf": {c.csrf()}, "profile": {"mdm"}, "bind": {"device-7.example"}})
	if code != 200 || c.last.Method != http.MethodGet || c.last.URL.Path != "/console/challenges" {
		t.Fatalf("minting answered HTTP %d at %s %s, want a redirect to GET /console/challenges", code, c.last.Method, c.last.URL)
	}
	m := regexp.MustCompile(`<code id="new-challenge">([^<]+)</code>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page after minting does not show the challenge:\n%s", page)
	}
	secret := m[1]
	if strings.Contains(c.last.URL.String(), secret) {
		t.Errorf("the challenge is in the URL %s", c.last.URL)
	}
	for _, want := range []string{"device-7.example", "valid until", "mdm"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page showing the challenge lacks %q", want)
		}
	}
	// Reload: shown once, and nothing minted again.
	_, again := c.get("/console/challenges")
	if strings.Contains(again, secret) || strings.Contains(again, "new-challenge") {
		t.Error("reloading shows the challenge again")
	}
	checkMetrics(t, s, `scepd_challenges{profile="mdm",state="pending"} 1`)
	if strings.Contains(s.Log(), secret) {
		t.Error("the challenge is in the log")
	}
	if _, err := enrollWith(s, "mdm", "device-7.example", secret); err != nil {
		t.Fatalf("enrolling with the console's challenge: %v", err)
	}
}

// TestRootOpensConsole: / sends a browser to the console, on the shared
// listener and on the admin listener; a SCEP-looking request to / is not
// redirected to HTML.
func TestRootOpensConsole(t *testing.T) {
	adminAddr := sceptest.FreeAddr(t)
	shared := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}})
	sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--admin-addr", adminAddr}})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, base := range []string{shared.BaseURL(), "http://" + adminAddr} {
		resp, err := noFollow.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/console/" {
			t.Errorf("GET %s/: HTTP %d to %q, want a redirect to /console/", base, resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, err = http.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(page), `id="token"`) {
			t.Errorf("GET %s/ does not end on the sign-in page: HTTP %d", base, resp.StatusCode)
		}
		resp, err = noFollow.Get(base + "/?operation=GetCACaps")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 3 {
			t.Errorf("GET %s/?operation=GetCACaps is redirected to the console", base)
		}
	}
}

// TestConsoleMessagesOnlyFromServer: ?msg= in a link puts no text on any
// page, the sign-in page included; the messages the console shows after
// an action come from the session, once, and are not in the URL.
func TestConsoleMessagesOnlyFromServer(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", consoleConfig(t)}, Env: []string{"E2E_STATIC=" + challenge}})
	planted := "Your token expired; call 555-0100 to renew"
	q := "?msg=" + url.QueryEscape(planted)
	resp, err := http.Get(s.BaseURL() + "/console/login" + q)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(page), "555-0100") {
		t.Error("the sign-in page shows the text of ?msg=")
	}
	c := consoleSignIn(t, s.BaseURL(), newToken(t, s, "operator"))
	for _, p := range []string{"/console/dashboard", "/console/requests", "/console/profiles", "/console/challenges"} {
		if _, page := c.get(p + q); strings.Contains(page, "555-0100") {
			t.Errorf("%s shows the text of ?msg=", p)
		}
	}
	// A message the server set: after approving, once.
	if _, err := client.New(s.URL("approvals")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "msg-tx"},
		Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: "msg-tx"}); !errors.Is(err, client.ErrPending) {
		t.Fatalf("enroll: %v, want PENDING", err)
	}
	code, page2 := c.post("/console/requests/approvals/msg-tx/approve", url.Values{"csrf": {c.csrf()}})
	if code != 200 || !strings.Contains(page2, `class="flash"`) || !strings.Contains(page2, "Approved: certificate") {
		t.Fatalf("after approving: HTTP %d, no message", code)
	}
	if c.last.URL.RawQuery != "" {
		t.Errorf("the message page has a query: %s", c.last.URL)
	}
	if _, again := c.get("/console/requests"); strings.Contains(again, "Approved: certificate") {
		t.Error("the message is shown again on reload")
	}
}

// menu is the main navigation of a console page: the link texts.
func menu(page string) []string {
	nav := page
	if i := strings.Index(nav, `<nav aria-label="Main">`); i >= 0 {
		nav = nav[i:]
		if j := strings.Index(nav, "</nav>"); j >= 0 {
			nav = nav[:j]
		}
	} else {
		return nil
	}
	var out []string
	for _, m := range regexp.MustCompile(`>([A-Za-z ]+)</a>`).FindAllStringSubmatch(nav, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestConsoleRoles: the menu offers what the role may do; an mdm token
// lands on the challenges page of its profiles and mints there; auditors
// see no Create buttons; operators no audit log.
func TestConsoleRoles(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", consoleConfig(t)}, Env: []string{"E2E_STATIC=" + challenge}})

	mdm := consoleSignIn(t, s.BaseURL(), newToken(t, s, "mdm", "mdm"))
	if mdm.last.URL.Path != "/console/challenges" {
		t.Errorf("an mdm token lands on %s, want /console/challenges", mdm.last.URL.Path)
	}
	code, page := mdm.get("/console/")
	if code != 200 || mdm.last.URL.Path != "/console/challenges" {
		t.Fatalf("mdm token at /console/: HTTP %d at %s", code, mdm.last.URL.Path)
	}
	if got := strings.Join(menu(page), ","); got != "Challenges" {
		t.Errorf("mdm menu %q, want Challenges only", got)
	}
	if !strings.Contains(page, `name="profile" value="mdm"`) || strings.Contains(page, `value="devices"`) {
		t.Errorf("mdm challenges page does not offer exactly its profile:\n%s", page)
	}
	// It mints; the pending list (bound devices, who minted) is for readers.
	if strings.Contains(page, "Pending one-time challenges") {
		t.Errorf("an mdm token is shown the pending challenges:\n%s", page)
	}
	code, page = mdm.post("/console/challenges", url.Values{"csrf": {mdm.field(page, "csrf")}, "profile": {"mdm"}})
	secret := regexp.MustCompile(`<code id="new-challenge">([^<]+)</code>`).FindStringSubmatch(page)
	if code != 200 || secret == nil {
		t.Fatalf("mdm mints in the console: HTTP %d\n%s", code, page)
	}
	if _, err := enrollWith(s, "mdm", "mdm-console-device", secret[1]); err != nil {
		t.Fatalf("enrolling with the mdm token's challenge: %v", err)
	}

	aud := consoleSignIn(t, s.BaseURL(), newToken(t, s, "auditor"))
	_, page = aud.get("/console/challenges")
	if !strings.Contains(page, "<td>mdm</td>") || strings.Contains(page, ">Create<") || strings.Contains(page, `action="/console/challenges"`) {
		t.Errorf("auditor challenges page: want the counts without a Create form:\n%s", page)
	}
	if got := strings.Join(menu(page), ","); got != "Dashboard,Profiles,Certificates,Requests,Challenges,CAs,Audit" {
		t.Errorf("auditor menu %q", got)
	}
	if _, page = aud.get("/console/profiles"); strings.Contains(page, "Create a profile") {
		t.Error("an auditor is offered to create a profile")
	}

	op := consoleSignIn(t, s.BaseURL(), newToken(t, s, "operator"))
	_, page = op.get("/console/challenges")
	if got := strings.Join(menu(page), ","); got != "Dashboard,Profiles,Certificates,Requests,Challenges,CAs" {
		t.Errorf("operator menu %q, want no Audit", got)
	}
	if !strings.Contains(page, ">Create<") {
		t.Error("an operator is not offered to create a challenge")
	}
}

// signInAs posts the sign-in form from a given client address (as a proxy
// in front of scepd reports it) and returns the answer, unfollowed.
func signInAs(t *testing.T, base, token string, header http.Header) *http.Response {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, base+"/console/login", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="nonce" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		// The nonce cookie of a Secure sign-in page does not come back
		// over plain HTTP in a cookie jar: read it from the answer.
		t.Fatalf("no sign-in nonce (HTTP %d)", resp.StatusCode)
	}
	var nonce string
	for _, c := range resp.Cookies() {
		if c.Name == "scepd_login" {
			nonce = c.Value
		}
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/console/login", strings.NewReader(url.Values{"nonce": {string(m[1])}, "token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.AddCookie(&http.Cookie{Name: "scepd_login", Value: nonce})
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "scepd_session" {
			return c
		}
	}
	return nil
}

// TestConsoleSignInRateLimited: failed sign-ins are counted per client
// address, as on the NDES page; once locked out, even a valid token is
// refused with 429 and Retry-After, while another address signs in. The
// address of X-Forwarded-For counts only from a trusted proxy.
func TestConsoleSignInRateLimited(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--trusted-proxies", "127.0.0.0/8"}})
	good := newToken(t, s, "auditor")
	// Clients elsewhere, behind a TLS proxy (over plain HTTP they would
	// not be asked for a token: TestConsolePlainHTTPSignIn).
	from := func(ip string) http.Header {
		return http.Header{"X-Forwarded-For": {ip}, "X-Forwarded-Proto": {"https"}}
	}
	for i := range 10 {
		if resp := signInAs(t, s.BaseURL(), "scepd_0123456789abcdef_wrong", from("203.0.113.5")); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad sign-in %d: HTTP %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp := signInAs(t, s.BaseURL(), good, from("203.0.113.5"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || sessionCookieOf(resp) != nil {
		t.Errorf("a valid token from a locked-out address: HTTP %d, Retry-After %q, want 429 and no session", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := signInAs(t, s.BaseURL(), good, from("203.0.113.6")); resp.StatusCode != http.StatusSeeOther || sessionCookieOf(resp) == nil {
		t.Errorf("another address: HTTP %d, want signed in", resp.StatusCode)
	}
	if !s.LogContains("console sign-in") {
		t.Error("the lockout is not logged")
	}

	// Without trusted proxies, X-Forwarded-For is the client's word: the
	// peer address counts, so changing the header does not escape. (A peer
	// that forwards for others is no browser on this machine: plain HTTP
	// sign-in is allowed here to count the failures.)
	s2 := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--console-insecure-http"}})
	good2 := newToken(t, s2, "auditor")
	for i := range 10 {
		signInAs(t, s2.BaseURL(), "scepd_0123456789abcdef_wrong", from(fmt.Sprintf("198.51.100.%d", i)))
	}
	if resp := signInAs(t, s2.BaseURL(), good2, from("198.51.100.200")); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("an untrusted X-Forwarded-For escaped the lockout: HTTP %d", resp.StatusCode)
	}
}

// TestConsoleSessionCookie: the session cookie is HttpOnly and
// SameSite=Lax (a link from a ticket opens the console signed in; forms
// still need the CSRF token); Secure when the console is reached over
// HTTPS: a public URL of https (console on the SCEP listener), or
// X-Forwarded-Proto: https from a trusted proxy, and only then.
func TestConsoleSessionCookie(t *testing.T) {
	plain := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--trusted-proxies", "192.0.2.0/24"}})
	https := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--public-url", "https://pki.example.com"}})
	proxied := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--trusted-proxies", "10.0.0.0/8, 127.0.0.1/32"}})
	cfg := consoleConfig(t)
	body, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(body, "listen: {trusted_proxies: [127.0.0.1]}\n"...), 0o600)
	fromFile := sceptest.Start(t, sceptest.Options{Env: []string{"E2E_STATIC=" + challenge}, Args: []string{"--config", cfg}})
	xfp := http.Header{"X-Forwarded-Proto": {"https"}}
	for _, tt := range []struct {
		name   string
		s      *sceptest.Server
		header http.Header
		secure bool
	}{
		{"plain HTTP", plain, nil, false},
		{"X-Forwarded-Proto from an untrusted peer", plain, xfp, false},
		{"https public URL", https, nil, true},
		{"X-Forwarded-Proto from a trusted proxy", proxied, xfp, true},
		{"trusted proxy, plain HTTP", proxied, http.Header{"X-Forwarded-Proto": {"http"}}, false},
		{"trusted proxy from the config file", fromFile, xfp, true},
	} {
		resp := signInAs(t, tt.s.BaseURL(), newToken(t, tt.s, "auditor"), tt.header)
		c := sessionCookieOf(resp)
		if c == nil {
			t.Errorf("%s: no session cookie (HTTP %d)", tt.name, resp.StatusCode)
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tt.secure {
			t.Errorf("%s: session cookie HttpOnly %v, SameSite %v, Secure %v; want HttpOnly, Lax, Secure %v", tt.name, c.HttpOnly, c.SameSite, c.Secure, tt.secure)
		}
	}
}

// TestConsoleIdleTimeout: a session unused for the idle timeout ends
// (besides the 8-hour limit); each request keeps it alive.
func TestConsoleIdleTimeout(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--console-idle-timeout", "3s"}})
	c := consoleSignIn(t, s.BaseURL(), newToken(t, s, "auditor"))
	for i := range 3 { // 4.5 s in all, never 3 s idle
		time.Sleep(1500 * time.Millisecond)
		if code, _ := c.get("/console/profiles"); code != 200 || c.last.URL.Path != "/console/profiles" {
			t.Fatalf("request %d of an active session: HTTP %d at %s", i+1, code, c.last.URL)
		}
	}
	time.Sleep(3500 * time.Millisecond)
	_, page := c.get("/console/profiles")
	if c.last.URL.Path != "/console/login" || !strings.Contains(page, "inactivity") {
		t.Errorf("after 3.5 s idle: at %s, want the sign-in page saying the session ended for inactivity", c.last.URL)
	}
	if _, page := c.get("/console/login?ended=<b>x</b>"); strings.Contains(page, "<b>x") {
		t.Error("the sign-in page echoes ?ended=")
	}
}

// TestConsoleFlashAcrossReplicas: replicas sharing PostgreSQL share
// console sessions and their one-time notes: a challenge minted through
// one replica is shown by the other, once.
func TestConsoleFlashAcrossReplicas(t *testing.T) {
	db := pgtest.Schema(t)
	replicas := sceptest.StartMany(t, 2, sceptest.Options{DataDir: filepath.Join(t.TempDir(), "data"), Env: []string{"SCEPD_CHALLENGE=" + challenge},
		Args: []string{"--database", db, "--challenge-mode", "dynamic"}})
	a, b := replicas[0], replicas[1]
	out, err := cli(t, a, nil, "token", "create", "--role", "operator", "--name", "replicas", "--data", a.DataDir, "--database", db)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	c := consoleSignIn(t, a.BaseURL(), strings.TrimSpace(out))
	// The cookie jar scopes cookies by host, not port: the session goes
	// to both replicas, as behind a load balancer.
	req, _ := http.NewRequest(http.MethodPost, a.BaseURL()+"/console/challenges",
		strings.NewReader(url.Values{"csrf": {c.csrf()}, "profile": {"default"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.BaseURL())
	noFollow := *c.hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("minting: HTTP %d, want 303", resp.StatusCode)
	}
	c.base = b.BaseURL()
	_, page := c.get("/console/challenges")
	m := regexp.MustCompile(`<code id="new-challenge">([^<]+)</code>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the other replica does not show the minted challenge:\n%s", page)
	}
	c.base = a.BaseURL()
	if _, page := c.get("/console/challenges"); strings.Contains(page, m[1]) {
		t.Error("the challenge is shown twice")
	}
	if _, err := enrollWith(b, "default", "replica-console-device", m[1]); err != nil {
		t.Fatalf("enrolling with the challenge: %v", err)
	}
}

// TestConsoleFormBound: the sign-in form, open to anyone, reads at most
// 1 MiB of a request: a larger form is refused as too large instead of
// being parsed (up to 32 MB each, in memory and temporary files).
func TestConsoleFormBound(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", consoleConfig(t)}, Env: []string{"E2E_STATIC=" + challenge}})
	if resp := signInAs(t, s.BaseURL(), strings.Repeat("a", 2<<20), nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 2 MiB sign-in form: HTTP %d, want 413", resp.StatusCode)
	}
	if resp := signInAs(t, s.BaseURL(), newToken(t, s, "auditor"), nil); sessionCookieOf(resp) == nil {
		t.Fatalf("a sign-in after the refused one: HTTP %d, no session", resp.StatusCode)
	}
}

// TestConsoleTransactionIDInURLs: a device chooses its transactionID,
// and the console puts it in its links and form actions. One holding
// "/approve?" made the Reject button of that request approve another one
// (the device's own, pending approval): now every form acts on its own
// request.
func TestConsoleTransactionIDInURLs(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", consoleConfig(t)}, Env: []string{"E2E_STATIC=" + challenge}})
	op := newToken(t, s, "operator")
	txids := []string{"TXC", "TXC/approve?", "../../tokens/x", "..", "."}
	for _, txid := range txids {
		_, err := client.New(s.URL("approvals")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "device"},
			Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: txid})
		if !errors.Is(err, client.ErrPending) {
			t.Fatalf("enroll %q: %v, want PENDING", txid, err)
		}
	}
	c := consoleSignIn(t, s.BaseURL(), op)
	_, page := c.get("/console/requests")
	actions := regexp.MustCompile(`action="([^"]*)/reject"`).FindAllStringSubmatch(page, -1)
	if len(actions) != len(txids) {
		t.Fatalf("%d reject forms, want %d:\n%s", len(actions), len(txids), page)
	}
	csrf := c.csrf()
	for _, a := range actions {
		action := html.UnescapeString(a[1]) + "/reject"
		if code, page := c.post(action, url.Values{"csrf": {csrf}, "reason": {"not this one"}}); code != 200 || !strings.Contains(page, "Rejected") {
			t.Errorf("POST %s: HTTP %d\n%s", action, code, page)
		}
	}
	if n := len(s.Certificates()); n != 0 {
		t.Fatalf("%d certificates issued by clicking Reject on every request", n)
	}
}

// TestConsoleProfileFormTakesOnlyAnID: "Replace this profile" links to
// the form with ?id=; a link carrying YAML instead of an ID put it in the
// form an admin then saves.
func TestConsoleProfileFormTakesOnlyAnID(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{})
	c := consoleSignIn(t, s.BaseURL(), newToken(t, s, "admin"))
	if code, page := c.get("/console/profiles/new?id=" + url.QueryEscape("kiosks")); code != 200 || !strings.Contains(page, "id: kiosks") {
		t.Fatalf("HTTP %d: the form does not name the profile\n%s", code, page)
	}
	code, page := c.get("/console/profiles/new?id=" + url.QueryEscape("default\nca_mode: true\n#"))
	if code != 200 || strings.Contains(page, "ca_mode: true") || !strings.Contains(page, "id: new-profile") {
		t.Fatalf("HTTP %d: text from the link is in the form\n%s", code, page)
	}
}

// TestConsolePlainHTTPSignIn: a browser on another machine is not asked
// for its API token over plain HTTP, which anyone on the path reads: the
// sign-in page says how to reach the console instead, and a token posted
// anyway opens no session. HTTPS (here at a trusted proxy), this machine,
// and --console-insecure-http sign in.
func TestConsolePlainHTTPSignIn(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--trusted-proxies", "127.0.0.0/8"}})
	page := func(s *sceptest.Server, h http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.BaseURL()+"/console/login", nil)
		for k, v := range h {
			req.Header[k] = v
		}
		return send(t, req)
	}
	remote := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	if code, body := page(s, remote); code != http.StatusForbidden || !strings.Contains(body, "unencrypted") || strings.Contains(body, `name="token"`) {
		t.Fatalf("plain HTTP from another machine: HTTP %d\n%s", code, body)
	}
	token := newToken(t, s, "auditor")
	form := url.Values{"nonce": {"n"}, "token": {token}}
	req, _ := http.NewRequest(http.MethodPost, s.BaseURL()+"/console/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.BaseURL())
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.AddCookie(&http.Cookie{Name: "scepd_login", Value: "n"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || sessionCookieOf(resp) != nil {
		t.Fatalf("a token posted over plain HTTP from another machine: HTTP %d, session %v", resp.StatusCode, sessionCookieOf(resp))
	}
	for name, h := range map[string]http.Header{
		"HTTPS at a trusted proxy": {"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}},
		"this machine":             nil,
	} {
		if resp := signInAs(t, s.BaseURL(), token, h); resp.StatusCode != http.StatusSeeOther || sessionCookieOf(resp) == nil {
			t.Errorf("%s: HTTP %d, want signed in", name, resp.StatusCode)
		}
	}
	// An https public URL says where browsers should go, not that this one
	// came that way: a browser elsewhere at http://ADDRESS:8080/console/ is
	// refused, and so is one at http://PUBLIC-HOST/ on the same listener (a
	// Host header proves nothing about TLS).
	public := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge},
		Args: []string{"--trusted-proxies", "127.0.0.0/8", "--public-url", "https://pki.example.com"}})
	if code, body := page(public, remote); code != http.StatusForbidden || strings.Contains(body, `name="token"`) {
		t.Errorf("https public URL, plain HTTP from another machine at the listener's address: HTTP %d", code)
	}
	viaPublic, _ := http.NewRequest(http.MethodGet, public.BaseURL()+"/console/login", nil)
	viaPublic.Host = "pki.example.com"
	viaPublic.Header.Set("X-Forwarded-For", "203.0.113.9")
	if code, _ := send(t, viaPublic); code != http.StatusForbidden {
		t.Errorf("plain HTTP naming the public URL's host: HTTP %d, want 403", code)
	}
	// A proxy on this machine sending only Forwarded names no local browser.
	fwd, _ := http.NewRequest(http.MethodGet, s.BaseURL()+"/console/login", nil)
	fwd.Header.Set("Forwarded", "for=203.0.113.9")
	if code, _ := send(t, fwd); code != http.StatusForbidden {
		t.Errorf("Forwarded from a trusted loopback proxy: HTTP %d, want 403", code)
	}
	// A proxy or sidecar on this machine, not trusted, forwarding for a
	// browser elsewhere, is no browser here.
	untrusted := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}})
	if code, _ := page(untrusted, remote); code != http.StatusForbidden {
		t.Errorf("a loopback peer forwarding for another address: HTTP %d, want 403", code)
	}
	insecure := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--trusted-proxies", "127.0.0.0/8", "--console-insecure-http"}})
	if resp := signInAs(t, insecure.BaseURL(), newToken(t, insecure, "auditor"), remote); resp.StatusCode != http.StatusSeeOther || sessionCookieOf(resp) == nil {
		t.Errorf("--console-insecure-http: HTTP %d, want signed in", resp.StatusCode)
	}
}
