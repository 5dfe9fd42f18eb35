package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

// stalled is a database whose writes never finish (a lock held, a
// server frozen, a network partition): they return when their context
// ends.
type stalled struct{ store.Store }

func (stalled) RecordIssued(ctx context.Context, _ store.Issued) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestAnswerWithin: a PKIOperation whose decision waits on a stalled
// database is answered 503 with Retry-After once AnswerWithin has passed
// since it arrived (clients retry that), not left until the HTTP
// server's write timeout closes the connection under it.
func TestAnswerWithin(t *testing.T) {
	ctx := context.Background()
	ks := keys.Source{Dir: t.TempDir()}
	st, err := sqlite.Open(ctx, filepath.Join(ks.Dir, "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	if _, err := provision.EnsureDefault(ctx, st, ks, provision.Options{CAKeyType: ca.ECDSAP256, RAKeyType: ca.RSA2048, Challenge: challenge, Now: time.Now, Log: log}); err != nil {
		t.Fatal(err)
	}
	profiles, err := server.Load(ctx, st, ks, server.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Profiles: profiles.Profiles, CAs: profiles.CAs, DefaultProfile: "default",
		Enroller: enroll.New(stalled{st}, time.Now, log), Logger: log, AnswerWithin: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	url := hs.URL + "/scep/default/pkiclient.exe"
	certs, err := client.New(url).GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := client.Recipient(certs)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	self, _ := client.SelfSigned(key, pkix.Name{CommonName: "stalled"})
	csr, _ := scep.NewCSR(key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "stalled"}}, challenge)
	msg, _, err := scep.Builder{Cert: self, Key: key}.NewRequest(scep.Request{Type: scep.PKCSReq, TransactionID: "stalled-1", Body: csr,
		Recipient: ra, Cipher: cms.AES128, Digest: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	// Without the deadline the request waits for good: the client gives
	// up long after AnswerWithin.
	hc := &http.Client{Timeout: time.Minute}
	resp, err := hc.Post(url+"?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("HTTP %d, Retry-After %q: %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}
