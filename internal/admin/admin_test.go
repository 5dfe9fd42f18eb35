package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

func TestAllowed(t *testing.T) {
	scoped := Actor{Role: RoleMDM, Profiles: []string{"laptops"}}
	for _, tt := range []struct {
		a       Actor
		act     Action
		profile string
		want    bool
	}{
		{Actor{Role: RoleAdmin}, ActTokens, "", true},
		{Actor{Role: RoleAdmin}, ActManage, "x", true},
		{Actor{Role: RoleOperator}, ActRead, "x", true},
		{Actor{Role: RoleOperator}, ActChallenge, "x", true},
		{Actor{Role: RoleOperator}, ActManage, "x", false},
		{Actor{Role: RoleOperator}, ActTokens, "", false},
		{Actor{Role: RoleOperator}, ActReadTokens, "", false},
		{Actor{Role: RoleAuditor}, ActRead, "", true},
		{Actor{Role: RoleAuditor}, ActReadTokens, "", true},
		{Actor{Role: RoleAuditor}, ActChallenge, "x", false},
		{scoped, ActChallenge, "laptops", true},
		{scoped, ActChallenge, "routers", false},
		{scoped, ActRead, "laptops", false},
		{Actor{Role: "root"}, ActRead, "", false},
	} {
		if got := tt.a.Allowed(tt.act, tt.profile); got != tt.want {
			t.Errorf("%+v.Allowed(%d, %q) = %v, want %v", tt.a, tt.act, tt.profile, got, tt.want)
		}
	}
}

func newService(t *testing.T) *Service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Service{Store: st, Keys: keys.Source{Dir: t.TempDir()}, Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestAuthenticate(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.As(LocalAdmin).CreateToken(ctx, TokenRequest{Name: "ops", Role: RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Authenticate(ctx, s.Store, v.Token)
	if err != nil || a.Role != RoleAuditor || !strings.Contains(a.Name, "(ops)") {
		t.Fatalf("Authenticate = %+v, %v", a, err)
	}
	last := v.Token[len(v.Token)-1]
	flipped := v.Token[:len(v.Token)-1] + string(map[bool]byte{true: 'A', false: 'B'}[last != 'A'])
	for _, bad := range []string{"", "scepd_", "bearer", v.Token + "x", flipped, strings.Replace(v.Token, "scepd_", "scepX_", 1)} {
		if _, err := Authenticate(ctx, s.Store, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnauthenticated", bad, err)
		}
	}
	if err := s.As(LocalAdmin).RevokeToken(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := Authenticate(ctx, s.Store, v.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token: %v", err)
	}
	// The secret is never stored.
	tok, _ := s.Store.GetToken(ctx, v.ID)
	if strings.Contains(string(tok.Hash), v.Token) {
		t.Fatal("token stored in clear")
	}
	events, _ := s.Store.ListAudit(ctx, 10)
	for _, e := range events {
		if strings.Contains(e.Object+e.Actor+strings.Join(mapValues(e.Details), ""), v.Token[len(v.Token)-20:]) {
			t.Fatal("token secret in the audit log")
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestOpenAPIMatchesRoutes: every operation the document lists is served
// (without a token: 401, not 404), and every route of the table is in it.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := newService(t)
	srv := httptest.NewServer((&Handler{Service: s, Log: s.Log}).Routes())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	list, _ := json.Marshal(doc.Paths["/api/v1/certificates"]["get"])
	for _, want := range []string{fmt.Sprintf(`"maximum":%d`, MaxListLimit), `"name":"cursor"`, `"` + NextCursorHeader + `":`} {
		if !strings.Contains(string(list), want) {
			t.Errorf("the certificate listing's document lacks %s: %s", want, list)
		}
	}
	n := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			n++
			url := srv.URL + pathParam.ReplaceAllString(path, "x")
			req, _ := http.NewRequest(strings.ToUpper(method), url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s: %d, want 401 (the route must exist and require a token)", method, path, resp.StatusCode)
			}
		}
	}
	if n != len(routes) {
		t.Errorf("the document has %d operations, the route table %d", n, len(routes))
	}
	for _, rt := range routes {
		if _, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]; !ok {
			t.Errorf("%s %s is served but not documented", rt.method, rt.path)
		}
	}
	resp, _ = http.Get(srv.URL + "/api/v1/nothing")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown route: %d, want 404", resp.StatusCode)
	}
	var e apiError
	json.NewDecoder(resp.Body).Decode(&e)
	if e.Error.Code != "not_found" {
		t.Errorf("unknown route error %+v", e)
	}
}

// TestCertificatePages: the listing pages the same on the database and
// through the HTTP API and its client: a full last page carries no cursor
// (no empty page after it), the cursor keeps nanoseconds and rows created
// at one instant, and a limit over the maximum is ErrInvalid (400) naming
// the maximum.
func TestCertificatePages(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if err := s.Store.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "file:k", Created: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.CreateProfile(ctx, store.Profile{ID: "p", CAID: "ca", RACertDER: []byte{2}, RAKeyRef: "file:ra",
		ChallengeMode: store.ChallengeStatic, ChallengeHash: "$argon2id$x", Created: at, Source: store.SourceConfig}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 6 {
		serial, tx := fmt.Sprintf("%x", 0xa0+i), fmt.Sprint("t", i)
		created := at.Add(time.Duration(i/4) * time.Microsecond) // four at one instant
		if err := s.Store.RecordIssued(ctx, store.Issued{
			Certificate: store.Certificate{Serial: serial, ProfileID: "p", CAID: "ca", TransactionID: tx, Subject: "CN=d", DER: []byte{3},
				NotBefore: at, NotAfter: at.Add(time.Hour), Status: store.CertValid, Created: created},
			Transaction: store.Transaction{ProfileID: "p", TransactionID: tx, Status: store.StatusIssued, PublicKeySHA256: []byte(tx),
				CSRDER: []byte{4}, CertSerial: serial, Created: created, Updated: created},
			Audit: store.AuditEvent{Time: created, Actor: "t", Action: "enroll", Object: serial, Outcome: "issued"},
		}); err != nil {
			t.Fatal(err)
		}
		want = append([]string{serial}, want...)
	}
	tok, err := s.As(LocalAdmin).CreateToken(ctx, TokenRequest{Name: "pages", Role: RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&Handler{Service: s, Log: s.Log}).Routes())
	defer srv.Close()
	for name, api := range map[string]API{"local": s.As(LocalAdmin), "http": &Client{BaseURL: srv.URL, Token: tok.Token}} {
		t.Run(name, func(t *testing.T) {
			var got []string
			f := store.CertificateFilter{Limit: 3}
			for pages := 1; ; pages++ {
				page, err := api.ListCertificates(ctx, f)
				if err != nil || pages > 2 {
					t.Fatalf("page %d: %v (%d pages)", pages, err, pages)
				}
				for _, c := range page.Certificates {
					got = append(got, c.Serial)
				}
				if page.Next.IsZero() {
					break
				}
				f.After = page.Next
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("pages of 3 = %v, want %v", got, want)
			}
			_, err := api.ListCertificates(ctx, store.CertificateFilter{Limit: MaxListLimit + 1})
			var apiErr *APIError
			if !errors.Is(err, ErrInvalid) && !(errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest) ||
				!strings.Contains(fmt.Sprint(err), fmt.Sprintf("maximum of %d", MaxListLimit)) {
				t.Errorf("limit %d: %v, want a bad request naming the maximum", MaxListLimit+1, err)
			}
		})
	}
}

// TestProfileSecretEnvsEverywhere: a profile written through the API may
// name only SCEPD_SECRET_ variables, in every field that names one, not
// only the challenge's: the upstream's NDES password is sent to the URL the
// profile names. The check comes before anything is contacted.
func TestProfileSecretEnvsEverywhere(t *testing.T) {
	var contacted atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		contacted.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer up.Close()
	s := newService(t)
	ctx := context.Background()
	for _, tt := range []struct {
		path string
		spec config.Profile
	}{
		{"upstream.scep.ndes.password_env", config.Profile{ID: "up", Challenge: config.Challenge{Mode: "dynamic"},
			Upstream: &config.Upstream{SCEP: &config.UpstreamSCEP{URL: up.URL, NDES: &config.UpstreamNDES{URL: up.URL, Username: "x", PasswordEnv: "SCEPD_KEY_PASSPHRASE"}}}}},
		{"challenge.ndes.password_env", config.Profile{ID: "ndes", CA: "root", Challenge: config.Challenge{Mode: "dynamic",
			NDES: &config.NDES{Username: "mdm", PasswordEnv: "SCEPD_DATABASE"}}}},
		{"challenge.password_env", config.Profile{ID: "static", CA: "root", Challenge: config.Challenge{Mode: "static", PasswordEnv: "SCEPD_PKCS11_PIN"}}},
		{"challenge.webhook.secret_env", config.Profile{ID: "hook", CA: "root", Challenge: config.Challenge{Mode: "webhook",
			Webhook: &config.Webhook{URL: up.URL, SecretEnv: "HOME"}}}},
	} {
		_, err := s.As(LocalAdmin).PutProfile(ctx, tt.spec)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.path) {
			t.Errorf("%s naming a server variable: %v, want ErrInvalid naming the field", tt.path, err)
		}
	}
	if n := contacted.Load(); n != 0 {
		t.Fatalf("the upstream was contacted %d times for a refused profile", n)
	}
}

// withProfile gives s a root CA ("root") and a profile id issuing from it
// whose challenge mode is mode, as an admin creates them.
func withProfile(t *testing.T, s *Service, id, mode string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.As(LocalAdmin).CreateCA(ctx, config.CA{ID: "root", Create: &config.CACreate{Subject: "CN=Root", KeyType: "ecdsa-p256"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.As(LocalAdmin).PutProfile(ctx, config.Profile{ID: id, CA: "root", Challenge: config.Challenge{Mode: mode}}); err != nil {
		t.Fatal(err)
	}
}

// TestMDMTokensOnlyMint: an MDM's token mints challenges for its profile,
// but neither lists the pending ones (they name the devices they are
// bound to and who minted them) nor cancels what others minted; an
// operator does both.
func TestMDMTokensOnlyMint(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	withProfile(t, s, "laptops", "dynamic")
	mdm := s.As(Actor{Name: "token:jamf", Role: RoleMDM, Profiles: []string{"laptops"}})
	if _, err := mdm.CreateChallenge(ctx, "laptops", "device-7"); err != nil {
		t.Fatalf("an MDM mints: %v", err)
	}
	if _, err := mdm.ListChallenges(ctx, "laptops"); !errors.Is(err, ErrForbidden) {
		t.Errorf("an MDM lists pending challenges: %v, want ErrForbidden", err)
	}
	op := s.As(Actor{Name: "token:op", Role: RoleOperator})
	list, err := op.ListChallenges(ctx, "laptops")
	if err != nil || len(list) != 1 || list[0].BoundTo != "device-7" {
		t.Fatalf("an operator lists: %+v %v", list, err)
	}
	if err := mdm.CancelChallenge(ctx, "laptops", list[0].ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("an MDM cancels a challenge: %v, want ErrForbidden", err)
	}
	if err := op.CancelChallenge(ctx, "laptops", list[0].ID); err != nil {
		t.Errorf("an operator cancels: %v", err)
	}
}

// TestOperatorInputBounds: what an operator writes is bounded with a
// clear error, not stored whatever its size: a rejection's reason, a
// token's name, a challenge's binding, a listing's offset and serials.
func TestOperatorInputBounds(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	adm := s.As(LocalAdmin)
	withProfile(t, s, "laptops", "dynamic")
	long := strings.Repeat("x", 2000)
	if _, err := adm.CreateToken(ctx, TokenRequest{Name: long, Role: RoleAuditor}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a 2000-character token name: %v, want ErrInvalid", err)
	}
	if _, err := adm.CreateChallenge(ctx, "laptops", long); !errors.Is(err, ErrInvalid) {
		t.Errorf("a 2000-character binding: %v, want ErrInvalid", err)
	}
	if err := adm.Reject(ctx, "laptops", "tx", strings.Repeat("y", 5000)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a 5000-character reason: %v, want ErrInvalid", err)
	}
	if _, err := adm.ListCertificates(ctx, store.CertificateFilter{Offset: MaxListOffset + 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an offset past the bound: %v, want ErrInvalid", err)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = "ab"
	}
	if _, err := adm.ListCertificates(ctx, store.CertificateFilter{SerialPrefixes: many}); !errors.Is(err, ErrInvalid) {
		t.Errorf("101 serials: %v, want ErrInvalid", err)
	}
	if _, err := adm.CreateToken(ctx, TokenRequest{Name: "ops", Role: RoleAuditor}); err != nil {
		t.Errorf("a token within the bounds: %v", err)
	}
	if _, err := adm.ListCertificates(ctx, store.CertificateFilter{Offset: 10, SerialPrefixes: many[:3]}); err != nil {
		t.Errorf("a listing within the bounds: %v", err)
	}
}

// TestEntityCodesHashedSlowly: an end entity's code, chosen by the
// operator or generated, is stored as an argon2id hash: a chosen code is
// a password, and a SHA-256 digest of one is guessed offline by anyone
// who reads the database.
func TestEntityCodesHashedSlowly(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	withProfile(t, s, "kiosks", "entity")
	for user, code := range map[string]string{"alice": "summer2026", "bob": ""} {
		v, err := s.As(LocalAdmin).PutEntity(ctx, "kiosks", EntityRequest{Username: user, Code: code})
		if err != nil {
			t.Fatal(err)
		}
		if code == "" {
			code = v.Code
		}
		e, err := s.Store.GetEntity(ctx, "kiosks", user)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(e.CodeHash, []byte("$argon2id$")) || bytes.Contains(e.CodeHash, []byte(code)) {
			t.Errorf("%s's code stored as %q, want an argon2id hash", user, e.CodeHash)
		}
	}
}

// TestRefusedTokenLogged: why an API token was refused (unknown, wrong
// secret, revoked) is in the server's log with the caller's address,
// never the secret; the client hears only that it was refused.
func TestRefusedTokenLogged(t *testing.T) {
	s := newService(t)
	var log bytes.Buffer
	s.Log = slog.New(slog.NewTextHandler(&log, nil))
	ctx := context.Background()
	v, err := s.As(LocalAdmin).CreateToken(ctx, TokenRequest{Name: "old-ci", Role: RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.As(LocalAdmin).RevokeToken(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&Handler{Service: s, Log: s.Log}).Routes())
	defer srv.Close()
	wrong := v.Token[:len(v.Token)-4] + "AAAA"
	unknown := "scepd_0123456789abcdef_" + v.Token[len(v.Token)-20:]
	for token, reason := range map[string]string{v.Token: "token " + v.ID + " was revoked", wrong: "wrong secret for token " + v.ID,
		unknown: `no token with ID \"0123456789abcdef\"`, "nonsense": "not a scepd token"} { // the text log escapes the quotes
		log.Reset()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/certificates", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), v.ID) || strings.Contains(string(body), "revoked") {
			t.Errorf("%s: HTTP %d %s; want 401 saying nothing of the token", reason, resp.StatusCode, body)
		}
		if line := log.String(); !strings.Contains(line, "API token refused") || !strings.Contains(line, reason) || !strings.Contains(line, "remote=127.0.0.1") {
			t.Errorf("%s: log %q, want the reason and the caller's address", reason, line)
		} else if strings.Contains(line, token[len(token)-8:]) {
			t.Errorf("%s: the token's secret is in the log: %q", reason, line)
		}
	}
}
