package console

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/certificates?subject=x": "/console/certificates?subject=x",
		"":                                "/console/",
		"https://evil.example/":           "/console/",
		"//evil.example/console/":         "/console/",
		"/console/\\evil":                 "/console/",
		"/api/v1/tokens":                  "/console/",
		"/console/x\r\nSet-Cookie: a=b":   "/console/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tt := range []struct {
		site, origin string
		want         bool
	}{
		{"same-origin", "http://pki.example", true},
		{"none", "", true},
		{"cross-site", "http://pki.example", false},
		{"same-site", "http://other.pki.example", false},
		{"", "http://pki.example", true},
		{"", "http://evil.example", false},
		{"", "null", false},
		{"", "", true}, // old clients: the CSRF token still decides
	} {
		r := httptest.NewRequest("POST", "http://pki.example/console/logout", nil)
		if tt.site != "" {
			r.Header.Set("Sec-Fetch-Site", tt.site)
		}
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if got := sameOrigin(r); got != tt.want {
			t.Errorf("Sec-Fetch-Site %q, Origin %q: %v, want %v", tt.site, tt.origin, got, tt.want)
		}
	}
}

func TestTemplatesParse(t *testing.T) {
	h := &Handler{}
	if err := h.parse(); err != nil {
		t.Fatal(err)
	}
	for _, name := range pageNames {
		if h.pages[name] == nil {
			t.Errorf("page %s missing", name)
		}
	}
}

// TestFlashSealedToCookie: a flash opens with its session's cookie only,
// so the note the database holds tells nothing without the cookie.
func TestFlashSealedToCookie(t *testing.T) {
	f := flash{Challenge: &shownChallenge{Profile: "mdm", Value: "s3cret-value", Bind: "d1"}}
	sealed, err := sealFlash(flashKey("cookie-a"), f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "s3cret-value") {
		t.Fatal("the flash is stored in clear")
	}
	got, err := openFlash(flashKey("cookie-a"), sealed)
	if err != nil || got.Challenge == nil || got.Challenge.Value != "s3cret-value" || got.Challenge.Bind != "d1" {
		t.Fatalf("openFlash = %+v, %v", got, err)
	}
	if _, err := openFlash(flashKey("cookie-b"), sealed); err == nil {
		t.Fatal("another session's cookie opens the flash")
	}
}
