package e2e

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
)

// seedInventory writes n certificates of profile devices through the
// store (n SCEP enrollments would test enrollment, not the console):
// serials 0x5ca1e000 up, one in ten expired, newest last.
func seedInventory(t *testing.T, s *sceptest.Server, n int) {
	t.Helper()
	ctx := context.Background()
	st := s.Store()
	p, err := st.GetProfile(ctx, "devices")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	for i := range n {
		serial := fmt.Sprintf("%x", 0x5ca1e000+i)
		created := base.Add(time.Duration(i) * time.Second)
		notAfter := created.Add(time.Duration(30+i%300) * 24 * time.Hour)
		if i%10 == 0 {
			notAfter = time.Now().Add(-time.Duration(i+1) * time.Minute)
		}
		seedCertificate(t, st, store.Certificate{Serial: serial, ProfileID: "devices", CAID: p.CAID, TransactionID: fmt.Sprintf("inventory-%d", i),
			Subject: fmt.Sprintf("CN=laptop-%04d,O=Fleet", i), SANs: []string{fmt.Sprintf("DNS:laptop-%04d.fleet.example", i)},
			NotBefore: created, NotAfter: notAfter, Created: created})
	}
}

// seedCertificate records c (valid, a placeholder DER) with its issued
// transaction and enroll audit event, through the store.
func seedCertificate(t *testing.T, st store.Store, c store.Certificate) {
	t.Helper()
	c.DER, c.Status = []byte{0x30, 0}, store.CertValid
	err := st.RecordIssued(context.Background(), store.Issued{
		Certificate: c,
		Transaction: store.Transaction{ProfileID: c.ProfileID, TransactionID: c.TransactionID, Status: store.StatusIssued,
			PublicKeySHA256: []byte(c.TransactionID), CSRDER: []byte{0x30, 0}, CertSerial: c.Serial, Created: c.Created, Updated: c.Created},
		Audit: store.AuditEvent{Time: c.Created, Actor: "e2e", Action: "enroll", Object: c.Serial, Outcome: "issued",
			Details: map[string]string{"profile": c.ProfileID, "tx": c.TransactionID}},
	})
	if err != nil {
		t.Fatalf("record certificate %s: %v", c.Serial, err)
	}
}

// consoleToken creates a token of role and signs the browser in with it.
func consoleSignInBrowser(t *testing.T, ctx context.Context, s *sceptest.Server, role string) {
	t.Helper()
	out, err := cli(t, s, nil, "token", "create", "--name", "inventory-"+role, "--role", role, "--data", s.DataDir)
	token := regexp.MustCompile(`scepd_[0-9a-f]{16}_[A-Za-z0-9_-]+`).FindString(out)
	if err != nil || token == "" {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	run(t, ctx, "sign in", chromedp.Navigate(s.BaseURL()+"/console/login"), chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", token, chromedp.ByID), chromedp.Submit("#token", chromedp.ByID), chromedp.WaitVisible("nav", chromedp.ByQuery))
}

// pendingRequest has a real client ask the approvals profile for a
// certificate that waits for an operator.
func pendingRequest(t *testing.T, s *sceptest.Server, txid, cn string, dns ...string) {
	t.Helper()
	certs, err := client.New(s.URL("approvals")).GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.New(s.URL("approvals")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: cn, Organization: []string{"Fleet"}},
		DNSNames: dns, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: txid, Recipient: ra})
	if !errors.Is(err, client.ErrPending) {
		t.Fatalf("enrolling on approvals: %v, want PENDING", err)
	}
}

// listedSerials is the serials in the console's certificate table.
func listedSerials(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var serials []string
	run(t, ctx, "listed serials", chromedp.Evaluate(`Array.from(document.querySelectorAll('#certificates tbody code')).map(e => e.textContent)`, &serials))
	return serials
}

// TestConsoleInventory drives the console over 1,500 certificates in
// headless Chromium: the count, every page by cursor, a serial found in
// each form operators paste it, expired apart from valid, the dashboard
// tiles opening their lists, the Requests page at phone width, and the
// same inventory exported with cert list --all -o csv.
func TestConsoleInventory(t *testing.T) {
	dir := t.TempDir()
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", consoleConfig(t)},
		Env: []string{"E2E_STATIC=" + challenge}})
	const n = 1500
	seedInventory(t, s, n)
	ctx := browser(t)
	consoleSignInBrowser(t, ctx, s, "operator")
	base := s.BaseURL() + "/console"

	t.Run("paged through", func(t *testing.T) {
		var total string
		run(t, ctx, "inventory", chromedp.Navigate(base+"/certificates"), chromedp.WaitVisible("#total", chromedp.ByID), chromedp.Text("#total", &total, chromedp.ByID))
		if !strings.Contains(total, "1500 certificates") {
			t.Errorf("total: %q, want 1500", total)
		}
		seen := map[string]bool{}
		pages := 0
		for {
			pages++
			for _, serial := range listedSerials(t, ctx) {
				if seen[serial] {
					t.Fatalf("page %d lists %s again", pages, serial)
				}
				seen[serial] = true
			}
			var next int
			run(t, ctx, "next link", chromedp.Evaluate(`document.querySelectorAll('a[rel=next]').length`, &next))
			if next == 0 || pages > n/50+1 {
				break
			}
			submit(t, ctx, "next page", chromedp.Click(`a[rel=next]`, chromedp.ByQuery))
		}
		if len(seen) != n || pages != n/50 {
			t.Errorf("paged through %d certificates in %d pages, want %d in %d", len(seen), pages, n, n/50)
		}
	})

	t.Run("serial forms", func(t *testing.T) {
		const serial = "5ca1e0ff" // the 255th certificate
		dec := new(big.Int)
		dec.SetString(serial, 16)
		for _, form := range []string{"5ca1e0ff", "5C:A1:E0:FF", "5c a1 e0 ff", "0x5CA1E0FF", "00:5c:a1:e0:ff", dec.String()} {
			run(t, ctx, "serial "+form, chromedp.Navigate(base+"/certificates"), chromedp.WaitVisible("#serial", chromedp.ByID),
				chromedp.SendKeys("#serial", form, chromedp.ByID))
			submit(t, ctx, "search "+form, chromedp.Submit("#serial", chromedp.ByID))
			if got := listedSerials(t, ctx); len(got) != 1 || got[0] != serial {
				t.Errorf("serial %q finds %v, want [%s]", form, got, serial)
			}
		}
		// A beginning finds every serial it starts: 5ca1e0f0 … 5ca1e0ff;
		// with status expired, only those that expired (each tenth).
		run(t, ctx, "serial prefix", chromedp.Navigate(base+"/certificates?serial=5CA1E0F"))
		if got := listedSerials(t, ctx); len(got) != 16 {
			t.Errorf("serial prefix 5CA1E0F finds %d, want 16: %v", len(got), got)
		}
		run(t, ctx, "serial prefix, expired", chromedp.Navigate(base+"/certificates?serial=5ca1e0f&status=expired&subject=laptop"))
		got := listedSerials(t, ctx)
		var pills []string
		run(t, ctx, "pills", chromedp.Evaluate(`Array.from(document.querySelectorAll('#certificates .status')).map(e => e.className)`, &pills))
		// 0x5ca1e0f0-0x5ca1e000 = 240 and 250 are the tenths.
		if fmt.Sprint(got) != "[5ca1e0fa 5ca1e0f0]" || fmt.Sprint(pills) != "[status expired status expired]" {
			t.Errorf("prefix 5ca1e0f, expired: %v %v, want 5ca1e0fa and 5ca1e0f0 as expired", got, pills)
		}
		var alert string
		run(t, ctx, "bad serial", chromedp.Navigate(base+"/certificates?serial=xyz"), chromedp.Text(`[role="alert"]`, &alert, chromedp.ByQuery))
		if !strings.Contains(alert, "hex") {
			t.Errorf("serial xyz: %q, want what a serial looks like", alert)
		}
	})

	t.Run("valid and expired", func(t *testing.T) {
		var valid, expired string
		run(t, ctx, "valid", chromedp.Navigate(base+"/certificates?status=valid"), chromedp.Text("#total", &valid, chromedp.ByID),
			chromedp.Navigate(base+"/certificates?status=expired"), chromedp.Text("#total", &expired, chromedp.ByID))
		if !strings.HasPrefix(valid, "1350 ") || !strings.HasPrefix(expired, "150 ") {
			t.Errorf("valid %q, expired %q; want 1350 and 150", valid, expired)
		}
		// Soonest to expire first, from the dashboard's tile.
		run(t, ctx, "dashboard", chromedp.Navigate(base+"/dashboard"), chromedp.WaitVisible("#tile-valid", chromedp.ByID))
		for _, tile := range []string{"tile-valid", "tile-exp30", "tile-revoked"} {
			var num string
			run(t, ctx, tile, chromedp.Navigate(base+"/dashboard"), chromedp.Text("#"+tile+" .num", &num, chromedp.ByQuery))
			submit(t, ctx, "open "+tile, chromedp.Click("#"+tile, chromedp.ByID))
			var total, path string
			var rows int
			// An empty list shows no total.
			run(t, ctx, tile+" list", chromedp.Location(&path), chromedp.Evaluate(`(document.getElementById('total')||{textContent:''}).textContent`, &total),
				chromedp.Evaluate(`document.querySelectorAll('#certificates tbody code').length`, &rows))
			listed := rows > 0 && strings.HasPrefix(total, num+" ")
			if !strings.Contains(path, "/console/certificates") || listed == (num == "0") {
				t.Errorf("%s says %s; it opened %s listing %q with %d rows", tile, num, path, total, rows)
			}
		}
		var first []string
		run(t, ctx, "30 days", chromedp.Navigate(base+"/certificates?status=valid&within=30&sort=expiry"))
		first = listedSerials(t, ctx)
		if len(first) == 0 || first[0] != "5ca1e001" {
			t.Errorf("expiring within 30 days, soonest first: %v, want 5ca1e001 first", first)
		}
	})

	t.Run("phone width", func(t *testing.T) {
		pendingRequest(t, s, "inventory-phone-1", "a-rather-long-device-name-for-a-phone-screen.fleet.example", "a-rather-long-device-name-for-a-phone-screen.fleet.example")
		var overflow bool
		var right, width float64
		run(t, ctx, "requests at 390 px", emulation.SetDeviceMetricsOverride(390, 844, 3, true), chromedp.Navigate(base+"/requests"),
			chromedp.WaitVisible(`form[action$="/inventory-phone-1/approve"] button`, chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth`, &overflow),
			chromedp.Evaluate(`Math.max(...Array.from(document.querySelectorAll('#requests button, #requests input')).map(e => e.getBoundingClientRect().right))`, &right),
			chromedp.Evaluate(`window.innerWidth`, &width))
		shoot(t, ctx, artifactsDir(t), "requests-phone", "#requests")
		run(t, ctx, "desktop width", emulation.ClearDeviceMetricsOverride())
		if overflow || right > width {
			t.Errorf("Requests at 390 px: scrolls sideways %v, rightmost control at %.0f of %.0f", overflow, right, width)
		}
		// Each request says its key, its SANs and who sent it; its page
		// previews what approving would issue.
		var row, preview string
		run(t, ctx, "request row", chromedp.Text("#requests tbody tr", &row, chromedp.ByQuery))
		for _, want := range []string{"RSA-2048", "DNS:a-rather-long-device-name", "subjectAltName", "from device:127.0.0.1"} {
			if !strings.Contains(row, want) {
				t.Errorf("pending request row lacks %q:\n%s", want, row)
			}
		}
		submit(t, ctx, "preview", chromedp.Click(`#requests a[href$="/inventory-phone-1"]`, chromedp.ByQuery))
		run(t, ctx, "preview", chromedp.WaitVisible("#preview", chromedp.ByID), chromedp.Text("#preview", &preview, chromedp.ByID))
		if !strings.Contains(preview, "CN=a-rather-long-device-name-for-a-phone-screen.fleet.example") || !strings.Contains(preview, "Not after") {
			t.Errorf("preview of what approving would issue:\n%s", preview)
		}
	})

	t.Run("exported", func(t *testing.T) {
		out, errOut, err := cliStdout(t, nil, "cert", "list", "--all", "-o", "csv", "--data", s.DataDir)
		if err != nil {
			t.Fatalf("cert list --all -o csv: %v\n%s", err, errOut)
		}
		if got := csvSerials(t, out); len(got) != n || strings.Count(out, "\n") != n+1 {
			t.Errorf("exported %d serials in %d lines, want %d and a header", len(got), strings.Count(out, "\n"), n)
		}
		count, errOut, err := cliStdout(t, nil, "cert", "list", "--count", "--status", "expired", "--serial", "5C:A1:E0", "--data", s.DataDir)
		if err != nil || strings.TrimSpace(count) != "26" {
			t.Errorf("cert list --count --status expired --serial 5C:A1:E0: %q %v %s, want 26", count, err, errOut)
		}
	})
}
