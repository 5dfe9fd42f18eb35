package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
)

// TestConsoleChallengesAndProfile drives, in headless Chromium, the list
// of pending one-time challenges (binding, by whom) and their Cancel
// button, after which the challenge enrolls nothing; the CLI lists and
// cancels too. The profile page shows what decides behaviour with the
// defaults written out and durations as operators write them.
func TestConsoleChallengesAndProfile(t *testing.T) {
	dir := t.TempDir()
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", consoleConfig(t)},
		Env: []string{"E2E_STATIC=" + challenge}})
	ctx := browser(t)
	consoleSignInBrowser(t, ctx, s, "operator")
	base := s.BaseURL() + "/console"

	var secret, pending string
	run(t, ctx, "challenges", chromedp.Navigate(base+"/challenges"), chromedp.WaitVisible("#bind-mdm", chromedp.ByID),
		chromedp.SendKeys("#bind-mdm", "kiosk-7.example.com", chromedp.ByID))
	submit(t, ctx, "mint", chromedp.Submit("#bind-mdm", chromedp.ByID))
	run(t, ctx, "minted", chromedp.WaitVisible("#new-challenge", chromedp.ByID), chromedp.Text("#new-challenge", &secret, chromedp.ByID),
		chromedp.Text("#pending-challenges", &pending, chromedp.ByID))
	secret = strings.TrimSpace(secret)
	if !strings.Contains(pending, "kiosk-7.example.com") || !strings.Contains(pending, "inventory-operator") || strings.Contains(pending, secret) {
		t.Errorf("pending challenges (want the binding and who minted it, never the secret):\n%s", pending)
	}
	// The CLI lists it with its ID.
	out, err := cli(t, s, nil, "challenge", "pending", "--profile", "mdm", "--data", s.DataDir)
	id := regexp.MustCompile(`[0-9a-f]{64}`).FindString(out)
	if err != nil || id == "" || !strings.Contains(out, "kiosk-7.example.com") {
		t.Fatalf("challenge pending: %v\n%s", err, out)
	}
	submit(t, ctx, "cancel", chromedp.Click(`#pending-challenges form[action$="/`+id+`/cancel"] button`, chromedp.ByQuery))
	var flash string
	run(t, ctx, "cancelled", chromedp.WaitVisible(".flash", chromedp.ByQuery), chromedp.Text(".flash", &flash, chromedp.ByQuery),
		chromedp.Text("#pending-challenges", &pending, chromedp.ByID))
	if !strings.Contains(flash, "cancelled") || strings.Contains(pending, "kiosk-7") {
		t.Errorf("after Cancel: %q\n%s", flash, pending)
	}
	if _, err := enrollWith(s, "mdm", "kiosk-7.example.com", secret); err == nil {
		t.Error("a cancelled challenge enrolled a device")
	}
	// Another, cancelled by the CLI.
	if _, err := cli(t, s, nil, "challenge", "create", "--profile", "mdm", "--data", s.DataDir); err != nil {
		t.Fatal(err)
	}
	out, _ = cli(t, s, nil, "challenge", "pending", "--profile", "mdm", "--data", s.DataDir)
	id = regexp.MustCompile(`[0-9a-f]{64}`).FindString(out)
	if out, err := cli(t, s, nil, "challenge", "cancel", "--profile", "mdm", id, "--data", s.DataDir); err != nil || !strings.Contains(out, "cancelled") {
		t.Errorf("challenge cancel: %v\n%s", err, out)
	}
	if out, err := cli(t, s, nil, "challenge", "cancel", "--profile", "mdm", id, "--data", s.DataDir); err == nil {
		t.Errorf("cancelling twice: %s, want an error", out)
	}

	var settings string
	run(t, ctx, "profile", chromedp.Navigate(base+"/profiles/approvals"), chromedp.WaitVisible(".settings", chromedp.ByQuery),
		chromedp.Text("main", &settings, chromedp.ByQuery))
	for _, want := range []string{"Approval", "manual", "Pending requests expire after", "72h", "Expiry notices", "720h and 168h",
		"Validity", "8760h", "Extended key usage", "clientAuth", "(default)", "Renewal window", "any time"} {
		if !strings.Contains(settings, want) {
			t.Errorf("profile page lacks %q", want)
		}
	}
	if strings.Contains(settings, "0m0s") || strings.Contains(settings, "{}") {
		t.Errorf("profile page shows Go durations or an empty policy:\n%s", settings)
	}
}

// TestConsoleCAsAndTokens drives the CAs page (chain, CRL number, next
// update and a download link that serves the CRL, rollover state) and the
// admin's tokens page in headless Chromium: a created token is shown
// once, works, and stops working when revoked there.
func TestConsoleCAsAndTokens(t *testing.T) {
	dir := t.TempDir()
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", consoleConfig(t)},
		Env: []string{"E2E_STATIC=" + challenge}})
	if _, err := sceptest.HTTPGet(s.BaseURL() + "/crl/root.crl"); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	consoleSignInBrowser(t, ctx, s, "admin")
	base := s.BaseURL() + "/console"

	var page, href string
	var ok bool
	run(t, ctx, "CAs", chromedp.Navigate(base+"/cas"), chromedp.WaitVisible("#ca-root", chromedp.ByID), chromedp.Text("#ca-root", &page, chromedp.ByID),
		chromedp.AttributeValue("#ca-root a.crl", "href", &href, &ok, chromedp.ByQuery))
	if !regexp.MustCompile(`number \d{13}`).MatchString(page) { // at least the signing time in milliseconds
		t.Errorf("CAs page lacks the CRL number:\n%s", page)
	}
	for _, want := range []string{"CN=Console Root,O=E2E", "a root (self-signed)", "next update", "devices", "none planned"} {
		if !strings.Contains(page, want) {
			t.Errorf("CAs page lacks %q:\n%s", want, page)
		}
	}
	der, err := sceptest.HTTPGet(href)
	if crl, perr := x509.ParseRevocationList(der); err != nil || perr != nil || crl.Number.Int64() < 1 {
		t.Errorf("the CRL link %s: %v %v", href, err, perr)
	}

	var secret string
	run(t, ctx, "tokens", chromedp.Navigate(base+"/tokens"), chromedp.WaitVisible("#token-name", chromedp.ByID),
		chromedp.SendKeys("#token-name", "ci-reader", chromedp.ByID), chromedp.SetValue("#token-role", "auditor", chromedp.ByID))
	submit(t, ctx, "create token", chromedp.Submit("#token-name", chromedp.ByID))
	run(t, ctx, "new token", chromedp.WaitVisible("#new-token", chromedp.ByID), chromedp.Text("#new-token", &secret, chromedp.ByID))
	secret = strings.TrimSpace(secret)
	if code, body := apiRaw(t, s, secret, "GET", "/api/v1/certificates"); code != 200 {
		t.Fatalf("the console's new token: HTTP %d %s", code, body)
	}
	run(t, ctx, "tokens again", chromedp.Navigate(base+"/tokens"), chromedp.WaitVisible("#tokens", chromedp.ByID), chromedp.Text("main", &page, chromedp.ByQuery))
	if strings.Contains(page, secret) || !strings.Contains(page, "ci-reader") {
		t.Fatalf("tokens page after creating (the secret only once, the token listed):\n%s", page)
	}
	id := regexp.MustCompile(`scepd_([0-9a-f]{16})_`).FindStringSubmatch(secret)
	if id == nil {
		t.Fatalf("token %q", secret)
	}
	submit(t, ctx, "revoke token", chromedp.Click(`form[action="/console/tokens/`+id[1]+`/revoke"] button`, chromedp.ByQuery))
	if code, _ := apiRaw(t, s, secret, "GET", "/api/v1/certificates"); code != 401 {
		t.Errorf("a token revoked in the console: HTTP %d, want 401", code)
	}
}

// TestConsoleRequestsPastAThousand: 1,030 pending requests are all
// reachable, newest first, in the console (50 a page, by cursor) and
// through the API's newest-first listing.
func TestConsoleRequestsPastAThousand(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", consoleConfig(t)}, Env: []string{"E2E_STATIC=" + challenge}})
	const n = 1030
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range n {
		txid := fmt.Sprintf("waiting-%04d", i)
		at := base.Add(time.Duration(i) * time.Second)
		if err := s.Store().RecordPending(context.Background(), store.Transaction{ProfileID: "approvals", TransactionID: txid, Status: store.StatusPending,
			PublicKeySHA256: []byte(txid), CSRDER: []byte{0x30, 0}, Created: at, Updated: at, Expires: at.Add(72 * time.Hour)}, "",
			store.AuditEvent{Time: at, Actor: "device:192.0.2.7", Action: "enroll", Object: "transaction:" + txid, Outcome: "pending",
				Details: map[string]string{"profile": "approvals"}}); err != nil {
			t.Fatalf("pending %d: %v", i, err)
		}
	}
	token := newToken(t, s, "operator")
	c := consoleSignIn(t, s.BaseURL(), token)
	rowRe := regexp.MustCompile(`href="/console/requests/approvals/(waiting-\d{4})"><code>`)
	nextRe := regexp.MustCompile(`<a href="([^"]+)" rel="next">`)
	var got []string
	path := "/console/requests"
	for pages := 0; path != "" && pages <= n/50+1; pages++ {
		code, page := c.get(path)
		if code != 200 {
			t.Fatalf("%s: HTTP %d", path, code)
		}
		for _, m := range rowRe.FindAllStringSubmatch(page, -1) {
			got = append(got, m[1])
		}
		if pages == 0 && !strings.Contains(page, "from device:192.0.2.7") {
			t.Error("a request does not say who sent it")
		}
		path = ""
		if m := nextRe.FindStringSubmatch(page); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(got) != n || got[0] != "waiting-1029" || got[n-1] != "waiting-0000" {
		t.Errorf("the console listed %d requests (%v … %v), want %d newest first", len(got), got[:min(1, len(got))], got[max(len(got)-1, 0):], n)
	}
	// Filtered by profile, the second page leads back to the newest page
	// of the same filter.
	_, page := c.get("/console/requests?profile=approvals")
	m := nextRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the filtered first page has no Older link")
	}
	_, page = c.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if first := regexp.MustCompile(`<a href="([^"]+)">← Newest</a>`).FindStringSubmatch(page); first == nil || !strings.Contains(first[1], "profile=approvals") {
		t.Errorf("the second filtered page's Newest link %q drops the profile filter", first)
	}
	seen := 0
	for cursor := ""; ; {
		req, _ := http.NewRequest("GET", s.BaseURL()+"/api/v1/requests/newest?limit=400&cursor="+url.QueryEscape(cursor), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list []map[string]any
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		seen += len(list)
		if cursor = resp.Header.Get("Next-Cursor"); cursor == "" || seen > n {
			break
		}
	}
	if seen != n {
		t.Errorf("the API listed %d requests newest first, want %d", seen, n)
	}
}
