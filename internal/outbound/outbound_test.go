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
		"https://hooks.example/api/scep?code=AZFUNC-KEY":                     "https://hooks.example/…",
		"http://svc:PASS@ca.example/scep/pkiclient.exe":                      "http://redacted@ca.example/…",
		"https://hooks.slack.example/services/T000/B000/XXXXSECRETXXXX#frag": "https://hooks.slack.example/…",
		"https://siem.example:8443/":                                         "https://siem.example:8443",
		"https://siem.example?token=QUERYTOKEN":                              "https://siem.example/…",
		"http://[::1%zone/":                                                  "(a URL, not shown)",
		"postgres://scepd:PASS@db.example/scepd?sslmode=require":             "postgres://redacted@db.example/…",
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
	if msg := Err(err).Error(); strings.Contains(msg, "AZFUNC-KEY") || strings.Contains(msg, "/hook") || !strings.Contains(msg, srv.URL+"/…") {
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

// TestRedirected: a redirect is an error naming where it points (the path
// the operator needs, without user information or query); other answers
// are none.
func TestRedirected(t *testing.T) {
	for _, tc := range []struct {
		status   int
		location string
		want     string
	}{
		{http.StatusOK, "", ""},
		{http.StatusNotFound, "", ""},
		{http.StatusMovedPermanently, "https://u:PASS@ndes.example/certsrv/mscep_admin/?k=KEY", "a redirect to https://ndes.example/certsrv/mscep_admin/: configure"},
		{http.StatusFound, "", "a redirect to (no Location)"},
	} {
		resp := &http.Response{StatusCode: tc.status, Status: http.StatusText(tc.status), Header: http.Header{}, Request: &http.Request{}}
		if tc.location != "" {
			resp.Header.Set("Location", tc.location)
		}
		err := Redirected(resp)
		switch {
		case tc.want == "" && err != nil, tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%d %s: %v, want %q", tc.status, tc.location, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), "PASS") || strings.Contains(err.Error(), "KEY")):
			t.Errorf("%d: %v shows a secret", tc.status, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.0.0.2": true, "::1": true,
		"10.0.0.1": false, "pki.example": false, "localhost.example": false, "": false} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}
