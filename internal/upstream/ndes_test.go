package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf16"

	"github.com/scepd/scepd/internal/upstream"
)

func utf16le(s string, bom bool) []byte {
	var out []byte
	if bom {
		out = []byte{0xff, 0xfe}
	}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return out
}

const ndesHTML = `<HTML><Body><P> You have requested a password. </P><P> The enrollment challenge password is: <B> 8F3A2B1C4D5E6F70 </B><P> This password can be used only once.</Body></HTML>`

func TestParseNDESPage(t *testing.T) {
	for name, page := range map[string][]byte{
		"utf-8":           []byte(ndesHTML),
		"utf-16le":        utf16le(ndesHTML, false),
		"utf-16le BOM":    utf16le(ndesHTML, true),
		"lower-case tags": []byte(`the enrollment challenge password is: <b>8F3A2B1C4D5E6F70</b>`),
	} {
		got, err := upstream.ParseNDESPage(page)
		if err != nil || got != "8F3A2B1C4D5E6F70" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	for name, page := range map[string][]byte{
		"cache full": []byte(`<P> The password cache is full. </P>`),
		"empty":      nil,
		"spaces":     []byte(`challenge password is: <B> a b c d </B>`),
	} {
		if got, err := upstream.ParseNDESPage(page); !errors.Is(err, upstream.ErrNoNDESChallenge) {
			t.Errorf("%s: %q, %v; want ErrNoNDESChallenge", name, got, err)
		}
	}
}

func FuzzParseNDESPage(f *testing.F) {
	f.Add([]byte(ndesHTML))
	f.Add(utf16le(ndesHTML, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := upstream.ParseNDESPage(b)
		if err == nil && (len(got) < 4 || len(got) > 128) {
			t.Fatalf("challenge %q outside 4..128 characters", got)
		}
	})
}

// TestNDESPageRedirectNotFollowed: the page's password goes to the URL
// configured, not to wherever a redirect points.
func TestNDESPageRedirectNotFollowed(t *testing.T) {
	var reached atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Store(true)
		w.Write([]byte(ndesHTML))
	}))
	defer elsewhere.Close()
	moved := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/certsrv/mscep_admin/", http.StatusTemporaryRedirect))
	defer moved.Close()
	page := &upstream.NDESPage{URL: moved.URL + "/certsrv/mscep_admin/", Username: "svc", Password: "ndes-pass"}
	got, err := page.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirect") || reached.Load() {
		t.Fatalf("Fetch = %q, %v (redirect followed: %v); want a refusal naming the redirect", got, err, reached.Load())
	}
}
