package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// cliStdout runs the real binary and returns its standard output alone
// (a listing's rows), with standard error for failures.
func cliStdout(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sceptest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// csvSerials reads a cert list -o csv answer: the header row, then rows
// whose serials must all differ; it returns the serials with their profiles.
func csvSerials(t *testing.T, out string) map[string]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) == 0 || rows[0][0] != "serial" || rows[0][1] != "profile" {
		t.Fatalf("not CSV with a header row (%v): %.300s", err, out)
	}
	seen := map[string]string{}
	for _, r := range rows[1:] {
		if _, dup := seen[r[0]]; dup {
			t.Errorf("serial %s listed twice", r[0])
		}
		seen[r[0]] = r[1]
	}
	return seen
}

// TestListingAtScale: 1,500 certificates, many created at the same
// instant, are listed whole by scepd cert list --all (CSV with a header,
// every serial once) on the data directory and through --server, in
// pages of the maximum and of 250; a limit over the maximum is an error
// naming it, from the CLI and the API; a token limited to a profile pages
// through that profile's certificates only, by the API's Next-Cursor and
// by the CLI.
func TestListingAtScale(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testListingAtScale(t, startConfigured(t), nil) })
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.Schema(t)
		dir := t.TempDir()
		cfg := filepath.Join(dir, "scepd.yaml")
		if err := os.WriteFile(cfg, []byte(operatorsConfig), 0o600); err != nil {
			t.Fatal(err)
		}
		s := sceptest.Start(t, sceptest.Options{
			DataDir: filepath.Join(dir, "data"),
			Env:     []string{"E2E_LAPTOP_CHALLENGE=" + laptopChallenge, "E2E_ROUTER_CHALLENGE=" + routerChallenge},
			Args:    []string{"--config", cfg, "--database", db},
		})
		testListingAtScale(t, s, []string{"--database", db})
	})
}

// testListingAtScale is TestListingAtScale on a running server; local are
// the CLI's flags besides --data that reach its database.
func testListingAtScale(t *testing.T, s *sceptest.Server, local []string) {
	ctx := context.Background()
	st := s.Store()
	cas := map[string]string{}
	for _, id := range []string{"laptops", "routers"} {
		p, err := st.GetProfile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		cas[id] = p.CAID
	}
	// Written through the store: 1,500 SCEP enrollments would test
	// enrollment, not listing. Seven rows share each instant, so pages
	// of 1,000 and of 250 end inside a run of equal created_at.
	const n, routers = 1500, 300
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range n {
		profile := "laptops"
		if i%5 == 0 {
			profile = "routers"
		}
		serial := fmt.Sprintf("%x", 0x5ca1e000+i)
		created := base.Add(time.Duration(i/7) * time.Millisecond)
		txid := fmt.Sprintf("listing-%d", i)
		err := st.RecordIssued(ctx, store.Issued{
			Certificate: store.Certificate{Serial: serial, ProfileID: profile, CAID: cas[profile], TransactionID: txid,
				Subject: fmt.Sprintf("CN=device-%d", i), SANs: []string{fmt.Sprintf("DNS:device-%d.example", i)},
				NotBefore: created, NotAfter: created.Add(365 * 24 * time.Hour), DER: []byte{0x30, 0}, Status: store.CertValid, Created: created},
			Transaction: store.Transaction{ProfileID: profile, TransactionID: txid, Status: store.StatusIssued, PublicKeySHA256: []byte(txid),
				CSRDER: []byte{0x30, 0}, CertSerial: serial, Created: created, Updated: created},
			Audit: store.AuditEvent{Time: created, Actor: "e2e", Action: "enroll", Object: serial, Outcome: "issued",
				Details: map[string]string{"profile": profile, "tx": txid}},
		})
		if err != nil {
			t.Fatalf("record certificate %d: %v", i, err)
		}
	}
	token := func(args ...string) string {
		out, errOut, err := cliStdout(t, nil, append(append([]string{"token", "create", "--data", s.DataDir}, local...), args...)...)
		if err != nil {
			t.Fatalf("token create %v: %v\n%s", args, err, errOut)
		}
		return strings.TrimSpace(out)
	}
	admin := token("--role", "admin", "--name", "lister")
	scoped := token("--role", "auditor", "--profile", "routers", "--name", "routers-lister")
	server := []string{"--server", s.BaseURL()}

	t.Run("all as CSV", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			env  []string
			args []string
		}{
			{"data directory", nil, append([]string{"--data", s.DataDir}, local...)},
			{"server", []string{"SCEPD_TOKEN=" + admin}, server},
			{"server, pages of 250", []string{"SCEPD_TOKEN=" + admin}, append([]string{"--limit", "250"}, server...)},
		} {
			out, errOut, err := cliStdout(t, tt.env, append([]string{"cert", "list", "--all", "-o", "csv"}, tt.args...)...)
			if err != nil {
				t.Fatalf("%s: %v\n%s", tt.name, err, errOut)
			}
			if got := csvSerials(t, out); len(got) != n || strings.Count(out, "\n") != n+1 {
				t.Errorf("%s: %d serials in %d lines, want %d rows and a header", tt.name, len(got), strings.Count(out, "\n"), n)
			}
		}
	})

	t.Run("all as a table", func(t *testing.T) {
		out, errOut, err := cliStdout(t, nil, append([]string{"cert", "list", "--all", "--limit", "400", "--data", s.DataDir}, local...)...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if err != nil || len(lines) != n+1 || !strings.HasPrefix(lines[0], "SERIAL") {
			t.Fatalf("cert list --all: %v, %d lines\n%s", err, len(lines), errOut)
		}
	})

	t.Run("all as JSON", func(t *testing.T) {
		out, errOut, err := cliStdout(t, []string{"SCEPD_TOKEN=" + admin}, append([]string{"cert", "list", "--all", "-o", "json"}, server...)...)
		var certs []struct {
			Serial  string    `json:"serial"`
			Created time.Time `json:"created"`
		}
		if err != nil || json.Unmarshal([]byte(out), &certs) != nil || len(certs) != n {
			t.Fatalf("cert list --all -o json: %v, %d certificates\n%s\n%.300s", err, len(certs), errOut, out)
		}
		for i := 1; i < n; i++ {
			if certs[i].Created.After(certs[i-1].Created) {
				t.Fatalf("not newest first at %d: %v after %v", i, certs[i].Created, certs[i-1].Created)
			}
		}
	})

	t.Run("limit over the maximum", func(t *testing.T) {
		for _, env := range [][]string{nil, {"SCEPD_TOKEN=" + admin}} {
			args := append([]string{"cert", "list", "--limit", "5000", "--data", s.DataDir}, local...)
			if env != nil {
				args = append([]string{"cert", "list", "--limit", "5000"}, server...)
			}
			out, errOut, err := cliStdout(t, env, args...)
			t.Logf("%v: %s", args[:4], strings.TrimSpace(errOut))
			if err == nil || !strings.Contains(errOut, "maximum of 1000") {
				t.Errorf("%v: %v, stdout %d bytes, stderr %q; want an error naming the maximum", args, err, len(out), errOut)
			}
		}
		code, body := apiRaw(t, s, admin, "GET", "/api/v1/certificates?limit=5000")
		if code != http.StatusBadRequest || !strings.Contains(body, "maximum of 1000") {
			t.Errorf("GET ?limit=5000: %d %s; want 400 naming the maximum", code, body)
		}
		code, body = apiRaw(t, s, admin, "GET", "/api/v1/certificates?cursor=bm90LWEtY3Vyc29y")
		if code != http.StatusBadRequest {
			t.Errorf("GET with a made-up cursor: %d %s; want 400", code, body)
		}
	})

	t.Run("scoped token pages its profile", func(t *testing.T) {
		seen := map[string]bool{}
		path := "/api/v1/certificates?limit=70"
		for pages := 0; ; pages++ {
			if pages > routers {
				t.Fatal("the cursor never ends")
			}
			req, _ := http.NewRequest("GET", s.BaseURL()+path, nil)
			req.Header.Set("Authorization", "Bearer "+scoped)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var certs []struct{ Serial, Profile string }
			err = json.NewDecoder(resp.Body).Decode(&certs)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil || len(certs) > 70 {
				t.Fatalf("page %d: %d, %v, %d rows", pages, resp.StatusCode, err, len(certs))
			}
			for _, c := range certs {
				if c.Profile != "routers" || seen[c.Serial] {
					t.Errorf("page %d: %s of %s (seen before: %v)", pages, c.Serial, c.Profile, seen[c.Serial])
				}
				seen[c.Serial] = true
			}
			next := resp.Header.Get("Next-Cursor")
			if next == "" {
				break
			}
			path = "/api/v1/certificates?limit=70&cursor=" + next
		}
		if len(seen) != routers {
			t.Errorf("the routers token paged through %d certificates, want %d", len(seen), routers)
		}
		out, errOut, err := cliStdout(t, []string{"SCEPD_TOKEN=" + scoped}, append([]string{"cert", "list", "--all", "--limit", "120", "-o", "csv"}, server...)...)
		if err != nil {
			t.Fatalf("scoped cert list --all: %v\n%s", err, errOut)
		}
		got := csvSerials(t, out)
		for serial, profile := range got {
			if profile != "routers" {
				t.Errorf("scoped CLI listed %s of %s", serial, profile)
			}
		}
		if len(got) != routers {
			t.Errorf("scoped CLI listed %d certificates, want %d", len(got), routers)
		}
	})
}
