package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scepd/scepd/internal/config"
)

// TestClientFollowsNoRedirect: a redirect is an error naming where it
// points, and nothing reaches that place: Go would follow a 302 with the
// token (same host name) and re-send a 307's body there, here a CA's key.
func TestClientFollowsNoRedirect(t *testing.T) {
	var reached atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Write([]byte("{}"))
	}))
	defer target.Close()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		front := httptest.NewServer(http.RedirectHandler(target.URL+"/elsewhere", code))
		c := &Client{BaseURL: front.URL, Token: "the-token"}
		_, err := c.CreateCA(context.Background(), config.CA{ID: "imported", Import: &config.CAImport{Cert: "CHAIN", Key: "PRIVATE KEY"}})
		front.Close()
		if err == nil || !strings.Contains(err.Error(), target.URL+"/elsewhere") {
			t.Errorf("HTTP %d: error %v, want one naming %s/elsewhere", code, err, target.URL)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}
