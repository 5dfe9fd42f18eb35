package challenge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/scep"
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

// TestWebhookSecretsStayPut: a key in the webhook's URL (an Azure
// Functions code=...) is not logged when the service cannot be reached,
// and the issued and failed notifications carry the CSR without the
// device's challengePassword (only validate carries the challenge).
func TestWebhookSecretsStayPut(t *testing.T) {
	var logs bytes.Buffer
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	w := &Webhook{ProfileID: "p", URL: closed.URL + "/api/scep?code=AZFUNC-KEY", Secret: []byte("k"), Notify: true, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := scep.NewCSR(key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, "device-challenge-1")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	r := Request{TransactionID: "tx", Password: "device-challenge-1", CSR: csr}
	if _, err := w.Validate(context.Background(), r); err == nil {
		t.Fatal("granted without an answer")
	}
	w.Failed(context.Background(), r, "no")
	if !strings.Contains(logs.String(), "webhook validation failed closed") || strings.Contains(logs.String(), "AZFUNC-KEY") {
		t.Fatalf("log:\n%s\nwant the failure logged without the URL's key", logs.String())
	}

	var mu sync.Mutex
	bodies := map[string]WebhookRequest{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		var got WebhookRequest
		json.NewDecoder(req.Body).Decode(&got)
		mu.Lock()
		bodies[got.Event] = got
		mu.Unlock()
		rw.Write([]byte(`{"allow": true}`))
	}))
	defer srv.Close()
	w.URL = srv.URL
	if _, err := w.Validate(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	cert := &x509.Certificate{SerialNumber: big.NewInt(7)}
	w.Issued(context.Background(), r, cert)
	w.Failed(context.Background(), r, "no")
	mu.Lock()
	defer mu.Unlock()
	for event, withChallenge := range map[string]bool{"validate": true, "issued": false, "failed": false} {
		b, ok := bodies[event]
		if !ok {
			t.Fatalf("no %s event", event)
		}
		block, _ := pem.Decode([]byte(b.CSR))
		if block == nil {
			t.Fatalf("%s: no CSR", event)
		}
		if has := bytes.Contains(block.Bytes, []byte("device-challenge-1")); has != withChallenge {
			t.Errorf("%s: the CSR holds the challengePassword: %v, want %v", event, has, withChallenge)
		}
	}
}
