package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/scepd/scepd/internal/sceptest"
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
