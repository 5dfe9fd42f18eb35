package challenge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// TestIntuneFailureDescription: failureNotification's errorDescription
// holds at most 255 characters (Intune's limit) whether Intune counts
// bytes, UTF-16 units or characters, and a character at the cut is left
// out whole, never cut in half (it would reach Intune as U+FFFD).
func TestIntuneFailureDescription(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/contoso.example/oauth2/v2.0/token":
			json.NewEncoder(w).Encode(map[string]any{"access_token": "tok", "expires_in": 3600})
		case strings.HasSuffix(r.URL.Path, "/endpoints"):
			json.NewEncoder(w).Encode(map[string]any{"value": []map[string]any{{"providerName": intuneProviderName, "uri": srv.URL + "/scep"}}})
		case r.URL.Path == "/scep/ScepActions/failureNotification":
			var body map[string]map[string]any
			json.NewDecoder(r.Body).Decode(&body)
			mu.Lock()
			got = append(got, body["notification"])
			mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"code": "Success"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	in := &Intune{ProfileID: "intune", Tenant: "contoso.example", ClientID: "app", ClientSecret: "secret", LoginURL: srv.URL, GraphURL: srv.URL,
		Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct{ name, reason, want string }{
		{"short", "enrollment rejected: no", "enrollment rejected: no"},
		{"ASCII", strings.Repeat("a", 300), strings.Repeat("a", 255)},
		{"a two-byte character across the cut", strings.Repeat("a", 254) + "é and more", strings.Repeat("a", 254)},
		{"a three-byte character across the cut", strings.Repeat("a", 253) + "€ and more", strings.Repeat("a", 253)},
		{"astral characters", strings.Repeat("😀", 100), strings.Repeat("😀", 63)},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		in.Failed(context.Background(), Request{ProfileID: "intune", TransactionID: "tx-1", CSR: csr}, tc.reason)
		mu.Lock()
		if len(got) != 1 {
			t.Fatalf("%s: %d failureNotifications", tc.name, len(got))
		}
		n := got[0]
		mu.Unlock()
		d, _ := n["errorDescription"].(string)
		if d != tc.want || !utf8.ValidString(d) || len(d) > 255 || len(utf16.Encode([]rune(d))) > 255 {
			t.Errorf("%s: errorDescription %q (%d bytes), want %q", tc.name, d, len(d), tc.want)
		}
		if n["transactionId"] != "tx-1" || n["certificateRequest"] != base64.StdEncoding.EncodeToString(der) || n["callerInfo"] == "" {
			t.Errorf("%s: notification %v", tc.name, n)
		}
		if h, ok := n["hResult"].(float64); !ok || h >= 0 {
			t.Errorf("%s: hResult %v, want a failure HRESULT", tc.name, n["hResult"])
		}
	}
}

// TestIntuneRedirectNotFollowed: a 307 from the token endpoint would have
// Go post the form, client secret and all, to wherever it points; it is
// refused instead.
func TestIntuneRedirectNotFollowed(t *testing.T) {
	var reached sync.Map
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		reached.Store("secret", r.PostForm.Get("client_secret"))
	}))
	defer elsewhere.Close()
	moved := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/token", http.StatusTemporaryRedirect))
	defer moved.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
	csr, _ := x509.ParseCertificateRequest(der)
	in := &Intune{ProfileID: "intune", Tenant: "contoso.example", ClientID: "app", ClientSecret: "intune-secret", LoginURL: moved.URL, GraphURL: moved.URL,
		Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	if _, err := in.Validate(context.Background(), Request{ProfileID: "intune", TransactionID: "tx-1", CSR: csr, Password: "pw"}); err == nil {
		t.Fatal("validated through a redirected token endpoint")
	}
	if s, ok := reached.Load("secret"); ok {
		t.Fatalf("the redirect was followed, the client secret %q posted elsewhere", s)
	}
}
