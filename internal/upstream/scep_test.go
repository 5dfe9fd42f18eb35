package upstream_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/upstream"
)

// scepserver starts micromdm's scepserver (Debian package scep) with a
// fresh CA.
func scepserver(t *testing.T) (url string, caCert *x509.Certificate, stop func()) {
	s := sceptest.StartScepserver(t)
	return s.URL, s.CACert, s.Stop
}

func deviceCSR(t *testing.T, cn string) *x509.CertificateRequest {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificateRequest(der)
	return c
}

func TestSCEPUpstreamIssuesFromScepserver(t *testing.T) {
	url, caCert, stop := scepserver(t)
	sum := sha256.Sum256(caCert.Raw)
	ctx := context.Background()
	u, err := upstream.NewSCEP(upstream.SCEPConfig{URL: url, Fingerprint: sum[:], Timeout: 10 * time.Second, Signer: requester(t)})
	if err != nil {
		t.Fatal(err)
	}
	d, err := u.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !d.CA.Equal(caCert) {
		t.Fatalf("discovered CA %s, want scepserver's", d.CA.Subject)
	}
	csr := deviceCSR(t, "device-1")
	got, err := u.Issue(ctx, enroll.IssueRequest{ProfileID: "p", TransactionID: "tx-1", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := got.Issued.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(caCert); err != nil {
		t.Fatalf("the certificate does not chain to scepserver's CA: %v", err)
	}
	if cert.Subject.CommonName != "device-1" || got.Upstream != "scep:"+url {
		t.Fatalf("got %s from %q", cert.Subject, got.Upstream)
	}
	if err := u.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	// Stopped: a FAILURE-bound UpstreamError, and Ready says why.
	stop()
	_, err = u.Issue(ctx, enroll.IssueRequest{ProfileID: "p", TransactionID: "tx-2", CSR: deviceCSR(t, "device-2")})
	var ue *enroll.UpstreamError
	if !errors.As(err, &ue) || ue.Upstream != "scep:"+url {
		t.Fatalf("issue with the upstream stopped: %v, want an UpstreamError", err)
	}
	if err := u.Ready(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Ready with the upstream stopped: %v", err)
	}
}

func TestSCEPUpstreamRefusesAnotherCA(t *testing.T) {
	url, _, _ := scepserver(t)
	wrong := sha256.Sum256([]byte("another CA"))
	u, err := upstream.NewSCEP(upstream.SCEPConfig{URL: url, Fingerprint: wrong[:], Signer: requester(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Discover(context.Background()); err == nil || !strings.Contains(err.Error(), "pinned fingerprint") {
		t.Fatalf("discovery with a wrong pin: %v, want a refusal naming the pin", err)
	}
	_, err = u.Issue(context.Background(), enroll.IssueRequest{ProfileID: "p", TransactionID: "tx", CSR: deviceCSR(t, "d")})
	var ue *enroll.UpstreamError
	if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "pinned fingerprint") {
		t.Fatalf("issue with a wrong pin: %v", err)
	}
}

// An upstream that accepts the connection but never answers yields an
// UpstreamError once the timeout ends, never a hang.
func TestSCEPUpstreamTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	served := make(chan struct{})
	go func() { srv.Serve(l); close(served) }()
	defer func() { close(release); srv.Close(); <-served }()
	u, err := upstream.NewSCEP(upstream.SCEPConfig{URL: "http://" + l.Addr().String() + "/scep", Timeout: time.Second, Signer: requester(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Issue(context.Background(), enroll.IssueRequest{ProfileID: "p", TransactionID: "tx", CSR: deviceCSR(t, "d")})
	var ue *enroll.UpstreamError
	if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "no answer within 1s") {
		t.Fatalf("%v, want an UpstreamError naming the timeout", err)
	}
}

// After BreakAfter failures in a row the upstream is not asked until
// BreakFor has passed; then one request tries again.
func TestSCEPUpstreamCircuitBreaker(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u, err := upstream.NewSCEP(upstream.SCEPConfig{URL: srv.URL + "/scep", Now: func() time.Time { return now }, Signer: requester(t)})
	if err != nil {
		t.Fatal(err)
	}
	issue := func() *enroll.UpstreamError {
		t.Helper()
		_, err := u.Issue(context.Background(), enroll.IssueRequest{ProfileID: "p", TransactionID: "tx", CSR: deviceCSR(t, "d")})
		var ue *enroll.UpstreamError
		if !errors.As(err, &ue) {
			t.Fatalf("%v, want an UpstreamError", err)
		}
		return ue
	}
	for range upstream.BreakAfter {
		issue()
	}
	asked := hits.Load()
	if ue := issue(); !strings.Contains(ue.Reason, "not asked again before") || hits.Load() != asked {
		t.Fatalf("breaker open: %q, upstream asked %d more times", ue.Reason, hits.Load()-asked)
	}
	now = now.Add(upstream.BreakFor)
	issue() // let through, fails: open again at once
	if hits.Load() == asked {
		t.Fatal("after BreakFor no request reached the upstream")
	}
	asked = hits.Load()
	if ue := issue(); !strings.Contains(ue.Reason, "not asked again before") || hits.Load() != asked {
		t.Fatalf("after a failed trial: %q, upstream asked again", ue.Reason)
	}
}

// No more than MaxInFlight exchanges reach the upstream at once; one more
// waits, and fails within its timeout if none finishes, without counting
// against the upstream in the circuit breaker.
func TestSCEPUpstreamMaxInFlight(t *testing.T) {
	var now, most atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	u, err := upstream.NewSCEP(upstream.SCEPConfig{URL: srv.URL + "/scep", Timeout: time.Second, MaxInFlight: 2, Signer: requester(t)})
	if err != nil {
		t.Fatal(err)
	}
	csrs := []*x509.CertificateRequest{deviceCSR(t, "d1"), deviceCSR(t, "d2"), deviceCSR(t, "d3")}
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := u.Issue(context.Background(), enroll.IssueRequest{ProfileID: "p", TransactionID: fmt.Sprint("tx-", i), CSR: csrs[i]})
			errs <- err
		}()
	}
	for now.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	// The third, while both are in flight: it waits (here 300ms, its
	// caller's deadline) and is turned away.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = u.Issue(ctx, enroll.IssueRequest{ProfileID: "p", TransactionID: "tx-3", CSR: csrs[2]})
	busy := 0
	var ue *enroll.UpstreamError
	if errors.As(err, &ue) && strings.HasPrefix(ue.Reason, "busy: 2 requests in flight") {
		busy++
	}
	close(release)
	<-errs
	<-errs
	if most.Load() != 2 || busy != 1 {
		t.Fatalf("%d exchanges reached the upstream at once and %d were turned away as busy, want 2 and 1", most.Load(), busy)
	}
}

// TestNameLeavesOutCredentials: an upstream's name is stored with every
// certificate it issues and labels its metrics; a user and password in a
// URL a profile stored before they were refused are not part of it.
func TestNameLeavesOutCredentials(t *testing.T) {
	for raw, want := range map[string]string{
		"https://ra:s3cret@ca.example/certsrv/mscep/mscep.dll?x=1": "scep:https://ca.example/certsrv/mscep/mscep.dll?x=1",
		"http://ca.example:8080/scep":                              "scep:http://ca.example:8080/scep",
	} {
		if got := upstream.Name(raw); got != want {
			t.Errorf("Name(%q) = %q, want %q", raw, got, want)
		}
	}
}
