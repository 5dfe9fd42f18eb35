package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/store"
)

// upstreamCA stands in for an upstream CA behind the issuer seam: a CA
// enroll knows nothing of (it is not the profile's), or one that fails.
type upstreamCA struct {
	ca    *ca.CA
	fail  error
	calls int
}

func (u *upstreamCA) Issue(_ context.Context, req enroll.IssueRequest) (enroll.Issuance, error) {
	u.calls++
	if u.fail != nil {
		return enroll.Issuance{}, u.fail
	}
	c, err := u.ca.Sign(req.Template, req.CSR.PublicKey)
	return enroll.Issuance{Cert: c, Upstream: "scep:http://upstream.test/scep"}, err
}

func newUpstream(t *testing.T) *upstreamCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := ca.NewRoot(key, pkix.Name{CommonName: "upstream root"}, 24*time.Hour*365, testNow())
	if err != nil {
		t.Fatal(err)
	}
	return &upstreamCA{ca: root}
}

func TestIssuerSeamStoresUpstreamCertificate(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	up := newUpstream(t)
	p.Issuer = up
	res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Cert.CheckSignatureFrom(up.ca.Cert); err != nil {
		t.Fatalf("the certificate is not the upstream's: %v", err)
	}
	c, err := st.GetCertificate(ctx, res.Cert.SerialNumber.Text(16))
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream != "scep:http://upstream.test/scep" || c.ProfileID != "p" {
		t.Fatalf("stored %+v, want it marked with its upstream", c)
	}
	events, _ := st.ListAudit(ctx, 10)
	found := false
	for _, e := range events {
		found = found || (e.Outcome == "issued" && e.Details["upstream"] == "scep:http://upstream.test/scep")
	}
	if !found {
		t.Fatal("no issued audit event names the upstream")
	}
	// A wrong challenge never reaches the issuer.
	if _, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "tx2", CSR: csr(t, 2048, "dev2"), Password: "wrong"}); err == nil {
		t.Fatal("a wrong challenge was accepted")
	}
	if up.calls != 1 {
		t.Fatalf("the upstream was asked %d times, want once (not for the wrong challenge)", up.calls)
	}
}

func TestUpstreamFailureIsRejectionAndStoresNothing(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	up := newUpstream(t)
	up.fail = &enroll.UpstreamError{Upstream: "scep:x", Reason: "unreachable", Err: errors.New("dial: refused")}
	p.Issuer = up
	_, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password})
	var rej *enroll.Rejection
	if !errors.As(err, &rej) || rej.Reason != "the upstream CA did not issue: unreachable" {
		t.Fatalf("%v, want a rejection naming the upstream's failure", err)
	}
	if _, err := st.GetTransaction(ctx, "p", "tx"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a transaction was stored for a failed upstream")
	}
	if n := count(t, st); n != 0 {
		t.Fatalf("%d certificates stored", n)
	}
	// The upstream answers again: the same request succeeds.
	up.fail = nil
	if _, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password}); err != nil {
		t.Fatal(err)
	}
}
