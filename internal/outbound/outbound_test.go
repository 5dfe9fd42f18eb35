package outbound

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.example/api/scep?code=AZFUNC-KEY": "https://hooks.example/api/scep?redacted",
		"http://svc:PASS@ca.example/scep/pkiclient.exe":  "http://redacted@ca.example/scep/pkiclient.exe",
		"https://siem.example/in#frag":                   "https://siem.example/in",
		"https://hooks.example/plain":                    "https://hooks.example/plain",
		"http://[::1%zone/":                              "(an unparsable URL)",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestErrRedacts: the error of a call that failed names the service, not
// the key in its URL.
func TestErrRedacts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Close() // nothing listens: the call fails
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/hook?code=AZFUNC-KEY", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NoRedirects.Do(req)
	if err == nil {
		t.Fatal("a call to a closed server succeeded")
	}
	if msg := Err(err).Error(); strings.Contains(msg, "AZFUNC-KEY") || !strings.Contains(msg, srv.URL+"/hook") {
		t.Fatalf("error %q: want the service named without its key", msg)
	}
}

// TestNoRedirects: a 307 is the answer; the body and its secret do not
// travel on to where it points.
func TestNoRedirects(t *testing.T) {
	var reached atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Store(true) }))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	resp, err := NoRedirects.Post(srv.URL, "text/plain", strings.NewReader("client_secret=s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || reached.Load() {
		t.Fatalf("status %d, redirect followed: %v", resp.StatusCode, reached.Load())
	}
}
