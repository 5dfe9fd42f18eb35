package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
)

const ndesPassword = "ndes-admin-password"

// newNDESServer serves two dynamic-challenge profiles with the default
// limits: "ndes" (the default profile) with an NDES page for user
// mdmadmin, and "plain" without one. Its log is returned for reading.
func newNDESServer(t *testing.T) (*httptest.Server, *sceptest.LogBuffer) {
	t.Helper()
	return newMDMServer(t, nil)
}

// newMDMServer is newNDESServer with the Jamf webhook on profile "ndes"
// too, and API tokens checked by authorize.
func newMDMServer(t *testing.T, authorize server.Authorizer) (*httptest.Server, *sceptest.LogBuffer) {
	t.Helper()
	ctx := context.Background()
	st, ks := openStore(t)
	now := time.Now()
	if _, err := provision.CreateCA(ctx, st, ks, config.CA{ID: "root", Create: &config.CACreate{Subject: "CN=Root", KeyType: "ecdsa-p256"}}, provision.Inline(), now); err != nil {
		t.Fatal(err)
	}
	in := provision.Inputs{Getenv: func(string) string { return ndesPassword }}
	for _, p := range []config.Profile{
		{ID: "ndes", CA: "root", Challenge: config.Challenge{Mode: "dynamic", Jamf: authorize != nil, NDES: &config.NDES{Username: "mdmadmin", PasswordEnv: "NDES_PASSWORD"}}},
		{ID: "plain", CA: "root", Challenge: config.Challenge{Mode: "dynamic"}},
	} {
		if _, _, err := provision.UpsertProfile(ctx, st, ks, p, store.SourceAPI, in, now); err != nil {
			t.Fatal(err)
		}
	}
	profiles, err := server.Load(ctx, st, ks, server.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	logged := &sceptest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logged, nil))
	srv, err := server.New(server.Options{Profiles: profiles.Profiles, CAs: profiles.CAs, DefaultProfile: "ndes", Enroller: enroll.New(st, time.Now, log), Logger: log, Authorize: authorize})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs, logged
}

// get sends a GET with the Authorization header auth (none when empty)
// and returns the status and the WWW-Authenticate header.
func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// TestNDESHandshakeIsNoFailure: MDMs fetch the NDES page in two legs, the
// first without credentials (waiting for the 401 challenge) or with NTLM
// or Negotiate (falling back to Basic when only Basic is offered). Those
// first legs are answered 401 offering Basic and are not failed
// authentications: twenty fetches with the right password never meet 429.
// Wrong passwords still lock the address out after ten, and a success in
// between does not forgive the earlier ones.
func TestNDESHandshakeIsNoFailure(t *testing.T) {
	hs, _ := newNDESServer(t)
	page := hs.URL + "/scep/ndes/mscep_admin/"
	firstLegs := []string{"", "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==", "Negotiate YIIGHgYGKwYBBQUCoIIGEjCCBg6gMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHgYKKwYBBAGCNwICCg=="}
	for i := range 20 {
		for _, auth := range firstLegs {
			code, challenge := get(t, page, auth)
			if code != http.StatusUnauthorized || challenge != `Basic realm="scepd NDES admin"` {
				t.Fatalf("fetch %d, first leg %.12q: %d WWW-Authenticate %q, want 401 offering Basic", i+1, auth, code, challenge)
			}
		}
		if code, _ := get(t, page, basic("mdmadmin", ndesPassword)); code != http.StatusOK {
			t.Fatalf("fetch %d with the right password: %d, want 200", i+1, code)
		}
	}

	for i := range 9 {
		if code, _ := get(t, page, basic("mdmadmin", fmt.Sprintf("guess-%d", i))); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i+1, code)
		}
	}
	if code, _ := get(t, page, basic("mdmadmin", ndesPassword)); code != http.StatusOK {
		t.Fatalf("the right password after nine wrong ones: %d, want 200", code)
	}
	if code, _ := get(t, page, basic("mdmadmin", "guess-9")); code != http.StatusUnauthorized {
		t.Fatalf("wrong password 10: %d, want 401", code)
	}
	if code, _ := get(t, page, basic("mdmadmin", ndesPassword)); code != http.StatusTooManyRequests {
		t.Fatalf("the right password after ten wrong ones: %d, want 429 (a success does not reset the failures)", code)
	}
	if code, _ := get(t, page, ""); code != http.StatusTooManyRequests {
		t.Fatalf("a first leg from the locked-out address: %d, want 429", code)
	}
	if code, _ := get(t, strings.Replace(page, "/ndes/", "/plain/", 1), ""); code != http.StatusNotFound {
		t.Fatalf("a profile without an NDES page: %d, want 404", code)
	}
}

// warnings returns the WARN lines of a text log that are about path.
func warnings(log, path string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, " path="+path+" ") {
			out = append(out, line)
		}
	}
	return out
}

// TestWrongURLsLogged: a device with a wrong URL hears only a 404 (Windows
// shows 0x80190194), so each one is a warning in the log naming the
// method, the path, the operation and the caller, with what the right URLs
// look like; never the query's other values. A path asked again within the
// minute is not logged again.
func TestWrongURLsLogged(t *testing.T) {
	hs, logged := newNDESServer(t)
	for _, tt := range []struct{ path, query, want string }{
		{"/scep", "?operation=GetCACert&message=SECRET-1", "/scep/<profile>/pkiclient.exe"},
		{"/certsrv/mscep/mscep.dl", "?operation=GetCACaps&message=SECRET-2", "/certsrv/mscep/mscep.dll"},
		{"/cgi-bin/pkiclient.ex", "?operation=PKIOperation&message=SECRET-3", "/cgi-bin/pkiclient.exe"},
		{"/certsrv/mscep_admn/", "", "/scep/<profile>/mscep_admin/"},
		{"/scep/nosuch/pkiclient.exe", "?operation=GetCACert&message=SECRET-4", "/scep/<profile>/pkiclient.exe"},
		{"/scep/plain/mscep_admin/", "?password=SECRET-5", "challenge.ndes"},
		{"/scep/ndes/pkiclient.exe", "?operation=GetNextCACert&message=SECRET-6", "rollover"},
	} {
		for range 3 {
			if code, _ := get(t, hs.URL+tt.path+tt.query, ""); code != http.StatusNotFound {
				t.Fatalf("GET %s: %d, want 404", tt.path, code)
			}
		}
		lines := warnings(logged.String(), tt.path)
		if len(lines) != 1 {
			t.Errorf("GET %s three times: %d warnings, want one:\n%s", tt.path, len(lines), logged.String())
			continue
		}
		line := lines[0]
		for _, want := range []string{"method=GET", "remote=127.0.0.1:", tt.want} {
			if !strings.Contains(line, want) {
				t.Errorf("GET %s: the warning lacks %q:\n%s", tt.path, want, line)
			}
		}
		if op, _, _ := strings.Cut(strings.TrimPrefix(tt.query, "?operation="), "&"); strings.HasPrefix(tt.query, "?operation=") && !strings.Contains(line, "operation="+op) {
			t.Errorf("GET %s: the warning lacks the operation %s:\n%s", tt.path, op, line)
		}
	}
	if strings.Contains(logged.String(), "SECRET") {
		t.Errorf("a query value other than operation is in the log:\n%s", logged.String())
	}
	// Right URLs, and a known path with another method (405), are not wrong URLs.
	before := logged.String()
	if code, _ := get(t, hs.URL+"/scep/ndes?operation=GetCACaps", ""); code != http.StatusOK {
		t.Fatalf("GetCACaps: %d", code)
	}
	resp, err := http.Post(hs.URL+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
	}
	if after := logged.String(); after != before {
		t.Errorf("logged for right URLs or a wrong method:\n%s", after[len(before):])
	}
}

// TestTokenCheckUnavailable: while the store cannot check an API token,
// the Jamf webhook and the NDES page answer 503 with Retry-After, not 401,
// and count no failed authentication: eleven calls with a valid token
// during an outage lock nothing out, and the same token works at once
// when the store is back; so does the NDES password from that address.
func TestTokenCheckUnavailable(t *testing.T) {
	const token = "scepd_0123456789abcdef_valid"
	var down atomic.Bool
	down.Store(true)
	hs, logged := newMDMServer(t, func(_ context.Context, tok, profile string) (string, bool, bool, error) {
		if down.Load() {
			return "", false, false, fmt.Errorf("admin: token lookup: %w", store.ErrUnavailable)
		}
		return "token:mdm", tok == token, tok == token, nil
	})
	jamf := func() (int, string) {
		req, _ := http.NewRequest("POST", hs.URL+"/scep/ndes/jamf-challenge", strings.NewReader(`{"webhook":{"webhookEvent":"SCEPChallenge"},"event":{"device":{"serialNumber":"C02X"}}}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	ndes := func(path, auth string) (int, string) {
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := range 11 {
		if code, ra := jamf(); code != http.StatusServiceUnavailable || ra != "5" {
			t.Fatalf("Jamf webhook %d during the outage: %d Retry-After %q, want 503 Retry-After 5", i+1, code, ra)
		}
		for _, path := range []string{"/scep/ndes/mscep_admin/", "/certsrv/mscep_admin/"} {
			if code, ra := ndes(path, "Bearer "+token); code != http.StatusServiceUnavailable || ra != "5" {
				t.Fatalf("NDES page %s %d during the outage: %d Retry-After %q, want 503 Retry-After 5", path, i+1, code, ra)
			}
		}
	}
	if strings.Contains(logged.String(), "locked out") {
		t.Errorf("an outage locked the address out:\n%s", logged.String())
	}
	down.Store(false)
	if code, _ := jamf(); code != http.StatusOK {
		t.Errorf("Jamf webhook after the outage: %d, want 200", code)
	}
	for _, path := range []string{"/scep/ndes/mscep_admin/", "/certsrv/mscep_admin/"} {
		if code, _ := ndes(path, "Bearer "+token); code != http.StatusOK {
			t.Errorf("NDES page %s with the token after the outage: %d, want 200", path, code)
		}
		if code, _ := ndes(path, basic("mdmadmin", ndesPassword)); code != http.StatusOK {
			t.Errorf("NDES page %s with the password after the outage: %d, want 200 (no lockout)", path, code)
		}
	}
	// A token that is not valid still counts: ten lock the address out.
	for i := range 10 {
		if code, _ := ndes("/scep/ndes/mscep_admin/", "Bearer scepd_0123456789abcdef_wrong"); code != http.StatusUnauthorized {
			t.Fatalf("invalid token %d: %d, want 401", i+1, code)
		}
	}
	if code, _ := ndes("/scep/ndes/mscep_admin/", basic("mdmadmin", ndesPassword)); code != http.StatusTooManyRequests {
		t.Errorf("the password after ten invalid tokens: %d, want 429", code)
	}
}
