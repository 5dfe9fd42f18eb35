package challenge

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestWebhookRedirectIsNoAnswer: a validation service that answers with a
// redirect has not decided: Go would follow it with a GET without the
// request, and an {"allow": true} to that GET granted the request. Now
// the redirect is refused like any answer but a 200.
func TestWebhookRedirectIsNoAnswer(t *testing.T) {
	allow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"allow": true}`))
	}))
	defer allow.Close()
	moved := httptest.NewServer(http.RedirectHandler(allow.URL, http.StatusFound))
	defer moved.Close()
	w := &Webhook{ProfileID: "p", URL: moved.URL, Secret: []byte("k"), Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	var rej *Rejected
	if _, err := w.Validate(context.Background(), Request{TransactionID: "tx", Password: "pw"}); !errors.As(err, &rej) {
		t.Fatalf("a redirected validation: %v, want it refused", err)
	}
	w.URL = allow.URL
	if _, err := w.Validate(context.Background(), Request{TransactionID: "tx", Password: "pw"}); err != nil {
		t.Fatalf("the service itself: %v, want granted", err)
	}
}
