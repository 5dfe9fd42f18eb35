package e2e

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
)

// apiRaw calls the REST API with a token and returns the raw answer.
func apiRaw(t *testing.T, s *sceptest.Server, token, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.BaseURL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return send(t, req)
}

// send sends req and returns the status and body of the answer.
func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiBody is apiRaw with a request body ("": none).
func apiBody(t *testing.T, s *sceptest.Server, token, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, s.BaseURL()+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func newToken(t *testing.T, s *sceptest.Server, role string, profiles ...string) string {
	t.Helper()
	args := []string{"token", "create", "--role", role, "--name", role + "-" + strings.Join(profiles, "-"), "--data", s.DataDir}
	for _, p := range profiles {
		args = append(args, "--profile", p)
	}
	out, err := cli(t, s, nil, args...)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

// TestScopedTokens: a token limited to profiles reads and changes only
// those profiles, through the REST API of the real binary: the audit log,
// certificates and requests are filtered in the query; CAs and tokens are
// for unscoped tokens only; another profile's certificate is not found
// (404, the answer for an unknown serial); revoke-subject revokes within
// the token's profiles only, where the subject also exists in others.
func TestScopedTokens(t *testing.T) {
	s := startConfigured(t)
	// The same subject in two profiles (laptops passes only the CN; camode
	// the CSR's attributes), and another device in camode. The in-scope
	// certificate is the newest, the first a listing would revoke.
	for _, e := range []struct{ profile, cn string }{{"camode", "shared"}, {"camode", "camode-only"}, {"laptops", "shared"}} {
		if _, err := client.New(s.URL(e.profile)).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: e.cn},
			Challenge: laptopChallenge, Cipher: cms.AES128, Digest: crypto.SHA256}); err != nil {
			t.Fatalf("enroll %s in %s: %v", e.cn, e.profile, err)
		}
	}
	auditor := newToken(t, s, "auditor", "laptops")
	operator := newToken(t, s, "operator", "laptops")
	admin := newToken(t, s, "admin", "laptops")
	fullAuditor := newToken(t, s, "auditor")

	t.Run("reads", func(t *testing.T) {
		for _, tt := range []struct {
			token, path string
			want        int
		}{
			{auditor, "/api/v1/tokens", 403},
			{auditor, "/api/v1/cas", 403},
			{auditor, "/api/v1/cas/devices", 403},
			{auditor, "/api/v1/cas/devices/chain", 403},
			{operator, "/api/v1/cas", 403},
			{admin, "/api/v1/tokens", 403},
			{admin, "/api/v1/cas", 403},
			{auditor, "/api/v1/certificates?profile=camode", 403},
			{auditor, "/api/v1/requests?profile=camode&status=issued", 403},
			{fullAuditor, "/api/v1/tokens", 200},
			{fullAuditor, "/api/v1/cas", 200},
		} {
			if code, body := apiRaw(t, s, tt.token, "GET", tt.path); code != tt.want {
				t.Errorf("GET %s: %d %s, want %d", tt.path, code, body, tt.want)
			}
		}
		// Certificates: without a profile, the token's own, counted right.
		code, body := apiRaw(t, s, auditor, "GET", "/api/v1/certificates?limit=1")
		var certs []map[string]any
		if json.Unmarshal([]byte(body), &certs); code != 200 || len(certs) != 1 || certs[0]["profile"] != "laptops" {
			t.Errorf("scoped certificate list (limit 1): %d %s; want the laptops certificate", code, body)
		}
		code, body = apiRaw(t, s, auditor, "GET", "/api/v1/certificates")
		if json.Unmarshal([]byte(body), &certs); code != 200 || len(certs) != 1 {
			t.Errorf("scoped certificate list: %d %s; want one certificate", code, body)
		}
		code, body = apiRaw(t, s, auditor, "GET", "/api/v1/requests?status=issued")
		if code != 200 || strings.Contains(body, "camode") || !strings.Contains(body, "laptops") {
			t.Errorf("scoped request list: %d %s", code, body)
		}
		// The audit log: laptops' events only, the newest page full of them.
		code, body = apiRaw(t, s, auditor, "GET", "/api/v1/audit?limit=1000")
		var events []store.AuditEvent
		json.Unmarshal([]byte(body), &events)
		if code != 200 || len(events) == 0 {
			t.Fatalf("scoped audit: %d %s", code, body)
		}
		for _, e := range events {
			if eventProfile(e) != "laptops" {
				t.Errorf("a token limited to laptops reads event %d (%s %s %v)", e.Seq, e.Action, e.Object, e.Details)
			}
		}
		if strings.Contains(body, "camode-only") || strings.Contains(body, "token.create") {
			t.Error("the scoped audit log shows another profile's subjects or token events")
		}
		if code, body = apiRaw(t, s, auditor, "GET", "/api/v1/audit?limit=1"); !strings.Contains(body, `"laptops"`) {
			t.Errorf("scoped audit limit=1 is not a laptops event (paging filtered after the query?): %d %s", code, body)
		}
		if _, body = apiRaw(t, s, fullAuditor, "GET", "/api/v1/audit?limit=1000"); !strings.Contains(body, "camode-only") {
			t.Error("an unscoped auditor misses camode events")
		}
	})

	t.Run("writes", func(t *testing.T) {
		if code, _ := api(t, s, admin, "POST", "/api/v1/tokens", map[string]any{"role": "admin", "name": "escalate"}); code != 403 {
			t.Errorf("a scoped admin creates a token: %d, want 403", code)
		}
		if code, _ := api(t, s, admin, "POST", "/api/v1/cas", map[string]any{"id": "mine", "create": map[string]any{"subject": "CN=Mine"}}); code != 403 {
			t.Errorf("a scoped admin creates a CA: %d, want 403", code)
		}
		// A profile names a CA: a token limited to the profile changes it on
		// its CA, but neither moves it to another CA nor creates one.
		kiosks := map[string]any{"id": "kiosks", "ca": "root", "challenge": map[string]any{"mode": "dynamic"}}
		if code, body := api(t, s, newToken(t, s, "admin"), "POST", "/api/v1/profiles", kiosks); code != 200 {
			t.Fatalf("admin creates kiosks: %d %v", code, body)
		}
		kioskAdmin := newToken(t, s, "admin", "kiosks")
		kiosks["policy"] = map[string]any{"validity": "48h"}
		if code, body := api(t, s, kioskAdmin, "PUT", "/api/v1/profiles/kiosks", kiosks); code != 200 {
			t.Errorf("a kiosks admin changes kiosks' policy: %d %v", code, body)
		}
		kiosks["ca"] = "devices"
		if code, _ := api(t, s, kioskAdmin, "PUT", "/api/v1/profiles/kiosks", kiosks); code != 403 {
			t.Errorf("a kiosks admin moves kiosks to another CA: %d, want 403", code)
		}
		if code, _ := api(t, s, kioskAdmin, "GET", "/api/v1/profiles/kiosks", nil); code != 200 {
			t.Errorf("a kiosks admin reads kiosks: %d", code)
		}
		if code, body := api(t, s, kioskAdmin, "GET", "/api/v1/profiles/kiosks", nil); code == 200 && body["ca"] != "root" {
			t.Errorf("kiosks moved to %v by a refused change", body["ca"])
		}
	})

	t.Run("another profile's certificates are not found", func(t *testing.T) {
		var other string
		for _, c := range s.Certificates() {
			if c.ProfileID == "camode" && c.Subject == "CN=camode-only" {
				other = c.Serial
			}
		}
		const unknown = "7a11ed5e1a1"
		for _, tt := range []struct{ token, method, path, body string }{
			{auditor, "GET", "/api/v1/certificates/%s", ""},
			{auditor, "GET", "/api/v1/certificates/%s.pem", ""},
			{operator, "POST", "/api/v1/certificates/%s/revoke", `{"reason": "keyCompromise"}`},
		} {
			codeOther, bodyOther := apiBody(t, s, tt.token, tt.method, strings.Replace(tt.path, "%s", other, 1), tt.body)
			codeUnknown, bodyUnknown := apiBody(t, s, tt.token, tt.method, strings.Replace(tt.path, "%s", unknown, 1), tt.body)
			if codeOther != 404 || codeOther != codeUnknown || bodyOther != bodyUnknown {
				t.Errorf("%s %s: another profile's serial %d %q, an unknown one %d %q; want the same 404", tt.method, tt.path, codeOther, bodyOther, codeUnknown, bodyUnknown)
			}
		}
		for _, c := range s.Certificates() {
			if c.Serial == other && c.Status != store.CertValid {
				t.Errorf("camode's certificate was revoked by a laptops operator")
			}
		}
	})

	t.Run("revoke-subject within the token's profiles", func(t *testing.T) {
		// A token limited to laptops revokes laptops' certificate with the
		// subject: camode's, outside its view, neither blocks it nor goes.
		code, out := api(t, s, operator, "POST", "/api/v1/certificates/revoke-subject", map[string]any{"subject": "CN=shared", "reason": "keyCompromise"})
		if code != 200 {
			t.Fatalf("scoped revoke-subject over laptops: %d %v, want 200", code, out)
		}
		for _, c := range s.Certificates() {
			if want := c.ProfileID == "laptops"; (c.Status == store.CertRevoked) != want {
				t.Errorf("certificate %s of %s (%s): %s after a laptops revoke-subject", c.Serial, c.ProfileID, c.Subject, c.Status)
			}
		}
		// A subject only another profile holds: the same answer as none.
		req := func(subject string) (int, string) {
			code, body := apiBody(t, s, operator, "POST", "/api/v1/certificates/revoke-subject", `{"subject": "`+subject+`"}`)
			return code, strings.TrimSpace(body)
		}
		if code, body := req("CN=camode-only"); code != 200 || body != "[]" {
			t.Errorf("scoped revoke-subject of camode's subject: %d %s, want 200 []", code, body)
		}
		if code, body := req("CN=nobody"); code != 200 || body != "[]" {
			t.Errorf("scoped revoke-subject of an unknown subject: %d %s, want 200 []", code, body)
		}
		both := newToken(t, s, "operator", "laptops", "camode")
		cliOut, err := cli(t, s, []string{"SCEPD_TOKEN=" + both}, "cert", "revoke", "--subject", "CN=shared", "--server", s.BaseURL())
		if err != nil {
			t.Fatalf("revoke-subject over both profiles: %v\n%s", err, cliOut)
		}
		revoked := 0
		for _, c := range s.Certificates() {
			if c.Status == store.CertRevoked {
				revoked++
				if c.Subject != "CN=shared" {
					t.Errorf("revoked %s", c.Subject)
				}
			}
		}
		if revoked != 2 {
			t.Errorf("%d certificates revoked, want 2", revoked)
		}
	})
}

// eventProfile is the profile an audit event names (detail or object).
func eventProfile(e store.AuditEvent) string {
	if p := e.Details["profile"]; p != "" {
		return p
	}
	return strings.TrimPrefix(e.Object, "profile:")
}

// TestConsoleScopedAndHashedSecrets: a console session of a token limited
// to a profile sees that profile's audit events and certificates only;
// the database holds neither the session cookie nor the CSRF token, only
// their SHA-256, and a form with the stored value is refused.
func TestConsoleScopedAndHashedSecrets(t *testing.T) {
	s := startConfigured(t)
	for _, e := range []struct{ profile, cn string }{{"laptops", "lap-console"}, {"camode", "camode-console"}} {
		if _, err := client.New(s.URL(e.profile)).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: e.cn},
			Challenge: laptopChallenge, Cipher: cms.AES128, Digest: crypto.SHA256}); err != nil {
			t.Fatal(err)
		}
	}
	scoped := consoleSignIn(t, s.BaseURL(), newToken(t, s, "auditor", "laptops"))
	code, page := scoped.get("/console/audit")
	if code != 200 || !strings.Contains(page, "lap-console") || strings.Contains(page, "camode-console") {
		t.Errorf("scoped console audit page: %d; shows laptops %v, camode %v", code, strings.Contains(page, "lap-console"), strings.Contains(page, "camode-console"))
	}
	code, page = scoped.get("/console/dashboard")
	if code != 200 || !strings.Contains(page, "laptops") || strings.Contains(page, "camode") {
		t.Errorf("scoped console dashboard: %d; shows laptops %v, camode %v", code, strings.Contains(page, "laptops"), strings.Contains(page, "camode"))
	}
	code, page = scoped.get("/console/certificates")
	if code != 200 || !strings.Contains(page, "lap-console") || strings.Contains(page, "camode-console") {
		t.Errorf("scoped console certificates page: %d; shows laptops %v, camode %v", code, strings.Contains(page, "lap-console"), strings.Contains(page, "camode-console"))
	}

	// Hashed at rest: read the database.
	op := consoleSignIn(t, s.BaseURL(), newToken(t, s, "operator"))
	formCSRF := op.csrf()
	base, _ := url.Parse(s.BaseURL() + "/console/")
	var cookie string
	for _, c := range op.hc.Jar.Cookies(base) {
		if c.Name == "scepd_session" {
			cookie = c.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie")
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.DataDir, "scepd.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id_hash, csrf FROM console_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	cookieSum, csrfSum := sha256.Sum256([]byte(cookie)), sha256.Sum256([]byte(formCSRF))
	found := false
	for rows.Next() {
		var idHash []byte
		var csrf string
		if err := rows.Scan(&idHash, &csrf); err != nil {
			t.Fatal(err)
		}
		n++
		if strings.Contains(string(idHash), cookie) || csrf == formCSRF || strings.Contains(csrf, formCSRF) || strings.Contains(string(idHash)+csrf, cookie) {
			t.Error("a console secret is stored in clear")
		}
		if string(idHash) == string(cookieSum[:]) {
			found = true
			if csrf != hex.EncodeToString(csrfSum[:]) {
				t.Errorf("stored CSRF %q is not the SHA-256 of the form token", csrf)
			}
		}
	}
	rows.Close()
	if n == 0 || !found {
		t.Fatalf("%d sessions stored, the operator's found: %v", n, found)
	}
	// The stored value does not pass as the form token.
	if code, _ := op.post("/console/logout", url.Values{"csrf": {hex.EncodeToString(csrfSum[:])}}); code != 403 {
		t.Errorf("sign-out with the stored CSRF hash: %d, want 403", code)
	}
	if code, _ := op.post("/console/logout", url.Values{"csrf": {formCSRF}}); code != 200 || op.last.URL.Path != "/console/login" {
		t.Errorf("sign-out with the form's CSRF token: %d at %s", code, op.last.URL)
	}
}

// clone copies a JSON-like spec deeply, so that a case changes its copy only.
func clone(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

// deniedEvents counts the audited refusals of changes to a profile.
func deniedEvents(t *testing.T, s *sceptest.Server, profile string) int {
	t.Helper()
	events, err := s.Store().ListAudit(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Action == "authz" && e.Outcome == "denied" && e.Object == "profile:"+profile && e.Details["reason"] != "" {
			n++
		}
	}
	return n
}

// enrollMinted enrolls a new device in a dynamic profile with a challenge an
// unscoped admin mints, and returns what the server answered (the
// certificate first).
func enrollMinted(t *testing.T, s *sceptest.Server, admin, profile, cn string) []*x509.Certificate {
	t.Helper()
	code, ch := api(t, s, admin, "POST", "/api/v1/profiles/"+profile+"/challenges", nil)
	if code != 201 {
		t.Fatalf("mint a challenge for %s: %d %v", profile, code, ch)
	}
	certs, err := client.New(s.URL(profile)).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: cn},
		Challenge: ch["challenge"].(string), Cipher: cms.AES128, Digest: crypto.SHA256})
	if err != nil {
		t.Fatalf("enroll %s in %s: %v", cn, profile, err)
	}
	return certs
}

// TestScopedProfileChanges: a token limited to a profile changes the
// profile's settings, but not what ties it to CA keys or to other
// profiles: rollover (next_ca, at; an `at` in the past would switch
// issuing to the next CA at once), ca_mode (the CA key in the RA's role),
// renewal.from_profiles naming a profile beyond the token and the RA
// extended key usage (other profiles trusting the CA as an RA). Each
// refusal is 403, audited, and changes nothing: the profile still issues
// under its CA through its RA.
func TestScopedProfileChanges(t *testing.T) {
	s := startConfigured(t)
	full := newToken(t, s, "admin")
	kiosks := map[string]any{"id": "kiosks", "ca": "devices", "challenge": map[string]any{"mode": "dynamic"}, "policy": map[string]any{"validity": "24h"}}
	if code, body := api(t, s, full, "POST", "/api/v1/profiles", kiosks); code != 200 {
		t.Fatalf("admin creates kiosks: %d %v", code, body)
	}
	kioskAdmin := newToken(t, s, "admin", "kiosks")
	put := func(token string, spec map[string]any) (int, map[string]any) {
		t.Helper()
		return api(t, s, token, "PUT", "/api/v1/profiles/kiosks", spec)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	future := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	refusals := 0
	for _, tt := range []struct {
		what   string
		change func(p map[string]any)
	}{
		{"rollover onto root, switching now", func(p map[string]any) { p["rollover"] = map[string]any{"next_ca": "root", "at": past} }},
		{"rollover onto root later", func(p map[string]any) { p["rollover"] = map[string]any{"next_ca": "root", "at": future} }},
		{"ca_mode", func(p map[string]any) { p["ca_mode"] = true }},
		{"renewal.from_profiles beyond the token", func(p map[string]any) {
			p["renewal"] = map[string]any{"from_profiles": []string{"laptops"}, "revoke_old": true}
		}},
		// An RA certificate of the CA would sign for any profile in
		// challenge mode ra that trusts it (spelled with a leading zero:
		// the OID, not the text, is what is refused).
		{"an RA extended key usage", func(p map[string]any) {
			p["policy"] = map[string]any{"validity": "24h", "ext_key_usage": []string{"clientAuth", "1.3.6.1.5.5.7.3.028"}}
		}},
	} {
		p := clone(t, kiosks)
		tt.change(p)
		if code, body := put(kioskAdmin, p); code != 403 {
			t.Errorf("a kiosks admin changes %s: %d %v, want 403", tt.what, code, body)
		}
		refusals++
	}
	if n := deniedEvents(t, s, "kiosks"); n != refusals {
		t.Errorf("%d refusals audited with a reason, want %d", n, refusals)
	}
	// Nothing changed: devices issues, through the profile's own RA.
	certs := enrollMinted(t, s, full, "kiosks", "kiosk-1")
	if iss := certs[0].Issuer.CommonName; iss != "E2E Devices CA" {
		t.Errorf("kiosks issues under %q after refused changes, want E2E Devices CA", iss)
	}
	if ra := caCerts(t, s, "kiosks")[0]; ra.IsCA {
		t.Errorf("kiosks answers SCEP with the CA (%s) after a refused ca_mode", ra.Subject)
	}
	code, body := api(t, s, full, "GET", "/api/v1/profiles/kiosks", nil)
	if code != 200 || body["ca_mode"] != false || body["ca"] != "devices" {
		t.Errorf("kiosks after refused changes: %d %v", code, body)
	}

	// What an unscoped admin decided stays: the kiosks admin changes the
	// policy with the rollover as it is, but not the rollover.
	kiosks["rollover"] = map[string]any{"next_ca": "root", "at": future}
	if code, body := put(full, kiosks); code != 200 {
		t.Fatalf("an unscoped admin plans a rollover: %d %v", code, body)
	}
	kiosks["policy"] = map[string]any{"validity": "48h"}
	if code, body := put(kioskAdmin, kiosks); code != 200 {
		t.Errorf("a kiosks admin changes the policy, the rollover as it is: %d %v", code, body)
	}
	for _, tt := range []struct {
		what     string
		rollover any
	}{
		{"the rollover time", map[string]any{"next_ca": "root", "at": past}},
		{"no rollover", nil},
	} {
		p := clone(t, kiosks)
		p["rollover"] = tt.rollover
		if tt.rollover == nil {
			delete(p, "rollover")
		}
		if code, body := put(kioskAdmin, p); code != 403 {
			t.Errorf("a kiosks admin sets %s: %d %v, want 403", tt.what, code, body)
		}
	}
	// A token covering both profiles may name the other one.
	both := newToken(t, s, "admin", "kiosks", "laptops")
	p := clone(t, kiosks)
	p["renewal"] = map[string]any{"from_profiles": []string{"laptops"}}
	if code, body := put(both, p); code != 200 {
		t.Errorf("an admin of kiosks and laptops has kiosks renew laptops' certificates: %d %v", code, body)
	}
	if iss := enrollMinted(t, s, full, "kiosks", "kiosk-2")[0].Issuer.CommonName; iss != "E2E Devices CA" {
		t.Errorf("kiosks issues under %q before its rollover, want E2E Devices CA", iss)
	}
}

// TestAPIProfileSecrets: a profile written through the API names only
// environment variables starting with SCEPD_SECRET_: the server's other
// variables are out of its reach (an Intune profile posts the variable it
// names to its login URL, a webhook signs with it). A token limited to
// profiles may not point delegated validation elsewhere: neither change
// the webhook or Intune URLs nor switch a profile into or out of those
// modes.
func TestAPIProfileSecrets(t *testing.T) {
	var mu sync.Mutex
	var trapped []string
	trap := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		trapped = append(trapped, r.URL.String()+" "+string(b))
		mu.Unlock()
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	const serverOnly = "server-only-secret-value"
	s := startConfigured(t, "E2E_SERVER_ONLY="+serverOnly, "SCEPD_SECRET_INTUNE=intune-secret-value", "SCEPD_SECRET_HOOK=hook-secret-value")
	full := newToken(t, s, "admin")
	intune := func(id, env, url string) map[string]any {
		return map[string]any{"id": id, "ca": "root", "challenge": map[string]any{"mode": "intune",
			"intune": map[string]any{"tenant": "contoso.example", "client_id": "app-123", "client_secret_env": env, "login_url": url, "graph_url": url}}}
	}
	webhook := func(id, env, url string) map[string]any {
		return map[string]any{"id": id, "ca": "root", "challenge": map[string]any{"mode": "webhook", "webhook": map[string]any{"url": url, "secret_env": env}}}
	}
	for _, spec := range []map[string]any{intune("leak", "E2E_SERVER_ONLY", trap), webhook("leakhook", "E2E_SERVER_ONLY", trap)} {
		if code, body := api(t, s, full, "POST", "/api/v1/profiles", spec); code != 400 {
			t.Errorf("an admin names E2E_SERVER_ONLY in profile %s: %d %v, want 400", spec["id"], code, body)
		}
	}
	// Had the profile been created, a request would post the secret.
	client.New(s.URL("leak")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "probe"},
		Challenge: "intune-blob", Cipher: cms.AES128, Digest: crypto.SHA256})
	mu.Lock()
	for _, req := range trapped {
		if strings.Contains(req, serverOnly) {
			t.Errorf("the server sent E2E_SERVER_ONLY to a URL the API named: %s", req)
		}
	}
	mu.Unlock()

	// Variables with the prefix are for the API.
	for _, spec := range []map[string]any{intune("tenant", "SCEPD_SECRET_INTUNE", trap), webhook("hook", "SCEPD_SECRET_HOOK", trap),
		{"id": "dyn", "ca": "root", "challenge": map[string]any{"mode": "dynamic"}}} {
		if code, body := api(t, s, full, "POST", "/api/v1/profiles", spec); code != 200 {
			t.Fatalf("an admin creates %s: %d %v", spec["id"], code, body)
		}
	}
	// A token limited to the profiles keeps where validation goes.
	scoped := newToken(t, s, "admin", "tenant", "hook", "dyn")
	for _, tt := range []struct {
		what string
		spec map[string]any
		want int
	}{
		{"the Intune profile as it is, a new policy", func() map[string]any {
			p := intune("tenant", "SCEPD_SECRET_INTUNE", trap)
			p["policy"] = map[string]any{"validity": "48h"}
			return p
		}(), 200},
		{"the Intune login and Graph URLs", intune("tenant", "SCEPD_SECRET_INTUNE", "https://login.attacker.example"), 403},
		{"the Intune login URL", func() map[string]any {
			p := intune("tenant", "SCEPD_SECRET_INTUNE", trap)
			p["challenge"].(map[string]any)["intune"].(map[string]any)["login_url"] = "https://login.attacker.example"
			return p
		}(), 403},
		{"the webhook as it is, notify on", func() map[string]any {
			p := webhook("hook", "SCEPD_SECRET_HOOK", trap)
			p["challenge"].(map[string]any)["webhook"].(map[string]any)["notify"] = true
			return p
		}(), 200},
		{"the webhook URL", webhook("hook", "SCEPD_SECRET_HOOK", "https://hook.attacker.example"), 403},
		{"a dynamic profile to webhook", webhook("dyn", "SCEPD_SECRET_HOOK", "https://hook.attacker.example"), 403},
		{"a dynamic profile to Intune", intune("dyn", "SCEPD_SECRET_INTUNE", ""), 403},
		{"the Intune profile to dynamic", map[string]any{"id": "tenant", "ca": "root", "challenge": map[string]any{"mode": "dynamic"}}, 403},
	} {
		if code, body := api(t, s, scoped, "PUT", "/api/v1/profiles/"+tt.spec["id"].(string), tt.spec); code != tt.want {
			t.Errorf("a scoped admin changes %s: %d %v, want %d", tt.what, code, body, tt.want)
		}
	}
	if n := deniedEvents(t, s, "tenant") + deniedEvents(t, s, "hook") + deniedEvents(t, s, "dyn"); n != 6 {
		t.Errorf("%d refusals audited with a reason, want 6", n)
	}
}
