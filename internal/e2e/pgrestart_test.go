package e2e

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// TestPostgresRestartDuringLoad restarts PostgreSQL under load. The
// server it restarts is its own (initdb in a temporary directory, its own
// port), so no other test or user of the machine's server notices; without
// initdb it is skipped.
func TestPostgresRestartDuringLoad(t *testing.T) {
	pg := pgtest.StartServer(t)
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--database", pg.URL()}})
	l := newLoad(t, []*sceptest.Server{s}, "pgrestart")

	ctx, cancel := context.WithCancel(context.Background())
	type outcome struct {
		issued int
		failed []error
	}
	res := make(chan outcome, 1)
	var issued = make(chan []string, 1)
	go func() {
		certs, failed := l.run(ctx, 0, 4, challenge)
		serials := make([]string, len(certs))
		for i, c := range certs {
			serials[i] = c.SerialNumber.Text(16)
		}
		issued <- serials
		res <- outcome{len(certs), failed}
	}()
	time.Sleep(time.Second)
	func() {
		// A failed restart ends the test; the load stops first.
		defer func() {
			if t.Failed() {
				cancel()
			}
		}()
		pg.Restart(t)
	}()
	// Keep loading while the pool reconnects.
	time.Sleep(2 * time.Second)
	cancel()
	serials := <-issued
	o := <-res

	// Service resumes by itself.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.BaseURL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready 30 s after PostgreSQL restarted:\n%s", s.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "after-pg-restart"}, Cipher: cms.AES128, Digest: crypto.SHA256})

	// Failures during the restart were clean refusals, never a success
	// without a stored certificate.
	for _, err := range o.failed {
		if msg := err.Error(); !strings.Contains(msg, "HTTP 503") && !strings.Contains(msg, "SCEP FAILURE") {
			t.Errorf("failure during the PostgreSQL restart was not a clean refusal: %v", err)
		}
	}
	st := s.Store()
	for _, serial := range serials {
		if _, err := st.GetCertificate(context.Background(), serial); err != nil {
			t.Fatalf("certificate %s was reported issued but is not stored: %v", serial, err)
		}
	}
	r, err := st.CheckIntegrity(context.Background())
	if err != nil || len(r.Problems) > 0 {
		t.Fatalf("integrity after the restart: %+v %v", r, err)
	}
	kinds := map[string]int{}
	for _, err := range o.failed {
		k := err.Error()
		if i := strings.Index(k, "(transaction"); i > 0 {
			k = k[:i]
		}
		kinds[k]++
	}
	t.Logf("during the restart: %d issued, %d refused: %v", o.issued, len(o.failed), kinds)
}
