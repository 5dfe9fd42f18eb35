package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
)

// TestScreenshots regenerates the console screenshots of docs/console.md
// (docs/img): SCEPD_SCREENSHOTS=$PWD/docs/img go test -run TestScreenshots ./internal/e2e/
// The dashboard over a month of issuance, a certificate a real client
// enrolled, a pending request with what approving would issue, and a
// profile's settings.
func TestScreenshots(t *testing.T) {
	out := os.Getenv("SCEPD_SCREENSHOTS")
	if out == "" {
		t.Skip("set SCEPD_SCREENSHOTS to the directory for the PNGs (docs/img)")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", consoleConfig(t)},
		Env: []string{"E2E_STATIC=" + challenge}})
	ctx := context.Background()
	st := s.Store()
	p, err := st.GetProfile(ctx, "devices")
	if err != nil {
		t.Fatal(err)
	}
	// A month of issuance for the chart, written through the store.
	now := time.Now().UTC()
	for i := range 600 {
		profile := []string{"devices", "devices", "approvals", "mdm"}[i%4]
		day := (i * 7) % 30
		created := now.Add(-time.Duration(day)*24*time.Hour - time.Duration(i%23)*time.Hour)
		seedCertificate(t, st, store.Certificate{Serial: fmt.Sprintf("%x", 0x7e57a000+i), ProfileID: profile, CAID: p.CAID, TransactionID: fmt.Sprintf("shot-%d", i),
			Subject: fmt.Sprintf("CN=host-%03d,O=Example", i), SANs: []string{fmt.Sprintf("DNS:host-%03d.example.com", i)},
			NotBefore: created, NotAfter: created.Add(time.Duration(20+i%400) * 24 * time.Hour), Created: created})
	}
	real, err := enrollWith(s, "devices", "laptop-0042.example.com", challenge)
	if err != nil {
		t.Fatal(err)
	}
	pendingRequest(t, s, "ipad-7f3e", "ipad-7f3e.example.com", "ipad-7f3e.example.com")

	b := browser(t)
	consoleSignInBrowser(t, b, s, "operator")
	base := s.BaseURL() + "/console"
	shot := func(name, path, wait string) {
		t.Helper()
		var png []byte
		run(t, b, name, chromedp.Navigate(base+path), chromedp.WaitVisible(wait, chromedp.ByQuery), chromedp.FullScreenshot(&png, 100))
		if err := os.WriteFile(filepath.Join(out, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shot("dashboard", "/dashboard", "svg.chart")
	shot("certificate", "/certificates/"+real.SerialNumber.Text(16), "#decoded")
	shot("request-preview", "/requests/approvals/ipad-7f3e", "#preview")
	shot("profile", "/profiles/approvals", ".settings")
}
