package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

const password = "right-password"

func setup(t *testing.T) (*enroll.Service, *enroll.Profile, store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := ca.NewRoot(key, pkix.Name{CommonName: "test root"}, 24*time.Hour*365, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateCA(ctx, store.CA{ID: "ca", CertDER: root.Cert.Raw, KeyRef: "file:x", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateProfile(ctx, store.Profile{ID: "p", CAID: "ca", RACertDER: []byte{1}, RAKeyRef: "file:y", ChallengeMode: store.ChallengeStatic, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	hash, _ := challenge.HashPassword(password)
	v, _ := challenge.NewStatic(hash)
	policy := ca.DefaultPolicy()
	svc := enroll.New(st, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return svc, &enroll.Profile{ID: "p", CA: root, Policy: &policy, Challenge: v}, st
}

func csr(t *testing.T, bits int, cn string) *x509.CertificateRequest {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, bits)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn + ".example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificateRequest(der)
	return c
}

func count(t *testing.T, st store.Store) int {
	t.Helper()
	certs, err := st.ListCertificates(context.Background(), store.CertificateFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}

func TestRejectionsStoreNothing(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		req  enroll.Request
		want scep.FailInfo
	}{
		{"wrong challenge", enroll.Request{TransactionID: "a", CSR: csr(t, 2048, "a"), Password: "wrong"}, scep.BadRequest},
		{"no challenge", enroll.Request{TransactionID: "b", CSR: csr(t, 2048, "b")}, scep.BadRequest},
		{"small key", enroll.Request{TransactionID: "c", CSR: csr(t, 1024, "c"), Password: password}, scep.BadRequest},
	} {
		_, err := svc.PKCSReq(ctx, p, tt.req)
		var rej *enroll.Rejection
		if !errors.As(err, &rej) || rej.FailInfo != tt.want {
			t.Errorf("%s: %v, want a %v rejection", tt.name, err, tt.want)
		}
		if _, err := st.GetTransaction(ctx, "p", tt.req.TransactionID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: a transaction was stored", tt.name)
		}
	}
	if n := count(t, st); n != 0 {
		t.Fatalf("%d certificates stored by rejected requests", n)
	}
	events, _ := st.ListAudit(ctx, 10)
	for _, e := range events {
		for _, v := range e.Details {
			if v == "wrong" {
				t.Fatal("the submitted password is in the audit log")
			}
		}
	}
}

func TestIssueAndRetransmit(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	req := enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password}
	first, err := svc.PKCSReq(ctx, p, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Cert.Subject.CommonName != "dev" || first.Cert.DNSNames[0] != "dev.example" || first.Cert.SerialNumber.BitLen() < 64 {
		t.Fatalf("issued %v %v serial bits %d", first.Cert.Subject, first.Cert.DNSNames, first.Cert.SerialNumber.BitLen())
	}
	again, err := svc.PKCSReq(ctx, p, req)
	if err != nil || !again.Replayed || !again.Cert.Equal(first.Cert) {
		t.Fatalf("retransmission: %v, replayed %v", err, again.Replayed)
	}
	other := req
	other.CSR = csr(t, 2048, "dev")
	var rej *enroll.Rejection
	if _, err := svc.PKCSReq(ctx, p, other); !errors.As(err, &rej) {
		t.Fatalf("same transactionID, other key: %v, want a rejection", err)
	}
	if n := count(t, st); n != 1 {
		t.Fatalf("%d certificates, want 1", n)
	}
}

// TestConcurrentRetransmissions: many copies of one request at once yield
// one certificate, and every copy gets that certificate.
func TestConcurrentRetransmissions(t *testing.T) {
	svc, p, st := setup(t)
	req := enroll.Request{TransactionID: "burst", CSR: csr(t, 2048, "burst"), Password: password}
	const n = 12
	results := make([]enroll.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); results[i], errs[i] = svc.PKCSReq(context.Background(), p, req) }()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !results[i].Cert.Equal(results[0].Cert) {
			t.Fatal("two different certificates for one transaction")
		}
	}
	if c := count(t, st); c != 1 {
		t.Fatalf("%d certificates stored, want 1", c)
	}
}
