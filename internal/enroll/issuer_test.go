package enroll_test

import (
	"bytes"
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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
)

// upstreamCA stands in for an upstream CA behind the issuer seam: a CA
// enroll knows nothing of (it is not the profile's), or one that fails.
type upstreamCA struct {
	ca    *ca.CA
	fail  error
	calls int
	// pending answers Pending to Issue and to that many Polls.
	pending int
	polls   int
	// gate, when set, is called as Issue begins, with Issue's context,
	// after counting the call (a test holds an exchange open with it); its
	// error, if any, is the answer. mu guards the fields for tests that
	// call from goroutines.
	gate func(ctx context.Context, call int) error
	// pollGate is gate for Poll.
	pollGate func(poll int)
	mu       sync.Mutex
}

func (u *upstreamCA) Issue(ctx context.Context, req enroll.IssueRequest) (enroll.Issuance, error) {
	u.mu.Lock()
	u.calls++
	call, gate, fail := u.calls, u.gate, u.fail
	u.mu.Unlock()
	if gate != nil {
		if err := gate(ctx, call); err != nil {
			return enroll.Issuance{}, err
		}
	}
	if fail != nil {
		return enroll.Issuance{}, fail
	}
	if u.pending > 0 {
		return enroll.Issuance{Pending: true, Token: []byte("up-" + req.TransactionID), Upstream: "scep:http://upstream.test/scep"}, nil
	}
	return u.sign(req)
}

func (u *upstreamCA) sign(req enroll.IssueRequest) (enroll.Issuance, error) {
	policy := ca.DefaultPolicy()
	tmpl, err := policy.Evaluate(req.CSR, u.ca.Cert, req.ProfileID, testNow())
	if err != nil {
		return enroll.Issuance{}, err
	}
	c, err := u.ca.Issue(tmpl, req.CSR.PublicKey)
	return enroll.Issuance{Issued: c, Upstream: "scep:http://upstream.test/scep"}, err
}

func (u *upstreamCA) Name() string { return "scep:http://upstream.test/scep" }

func (u *upstreamCA) Poll(_ context.Context, req enroll.IssueRequest, token []byte) (enroll.Issuance, error) {
	u.mu.Lock()
	u.polls++
	polls, gate, fail := u.polls, u.pollGate, u.fail
	u.mu.Unlock()
	if gate != nil {
		gate(polls)
	}
	if string(token) != "up-"+req.TransactionID {
		return enroll.Issuance{}, errors.New("wrong poll token")
	}
	if fail != nil {
		return enroll.Issuance{}, fail
	}
	if polls < u.pending {
		return enroll.Issuance{Pending: true, Token: token, Upstream: "scep:http://upstream.test/scep"}, nil
	}
	return u.sign(req)
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
	if err := certOf(t, res).CheckSignatureFrom(up.ca.Cert); err != nil {
		t.Fatalf("the certificate is not the upstream's: %v", err)
	}
	c, err := st.GetCertificate(ctx, certOf(t, res).SerialNumber.Text(16))
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

// An upstream that holds the request: the device hears PENDING, its
// CertPoll polls the upstream, and the certificate is stored once the
// upstream issues; an operator cannot approve it here.
func TestUpstreamPendingIsPolledByTheDevice(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	up := newUpstream(t)
	up.pending = 2
	p.Issuer = up
	req := enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password}
	res, err := svc.PKCSReq(ctx, p, req)
	if err != nil || !res.Pending {
		t.Fatalf("%+v %v, want PENDING", res, err)
	}
	tx, err := st.GetTransaction(ctx, "p", "tx")
	if err != nil || tx.Status != store.StatusPending || string(tx.UpstreamPoll) != "up-tx" {
		t.Fatalf("stored %+v %v", tx, err)
	}
	if _, err := svc.Approve(ctx, p, "tx", "admin"); !errors.Is(err, enroll.ErrUpstreamHeld) || errors.Is(err, enroll.ErrNotApprovable) {
		t.Fatalf("approving a request the upstream holds: %v, want ErrUpstreamHeld (not a policy refusal)", err)
	}
	if res, err := svc.Poll(ctx, p, "tx", req.CSR.PublicKey, ""); err != nil || !res.Pending {
		t.Fatalf("first poll: %+v %v, want PENDING", res, err)
	}
	res, err = svc.Poll(ctx, p, "tx", req.CSR.PublicKey, "192.0.2.7")
	if err != nil || res.DER == nil {
		t.Fatalf("second poll: %+v %v, want the certificate", res, err)
	}
	c, err := st.GetCertificate(ctx, certOf(t, res).SerialNumber.Text(16))
	if err != nil || c.Upstream == "" {
		t.Fatalf("stored %+v %v", c, err)
	}
	// The upstream decided it; the device whose poll completed it is named
	// too (not the upstream in its place).
	if tx, err := st.GetTransaction(ctx, "p", "tx"); err != nil || tx.DecidedBy != c.Upstream {
		t.Fatalf("stored %+v %v, want it decided by %s", tx, err, c.Upstream)
	}
	events, _ := st.ListAudit(ctx, 10)
	var issued *store.AuditEvent
	for i, e := range events {
		if e.Outcome == "issued" && e.Object == "certificate:"+c.Serial {
			issued = &events[i]
		}
	}
	if issued == nil || issued.Actor != c.Upstream || issued.Details["client_ip"] != "192.0.2.7" || issued.Details["upstream"] != c.Upstream {
		t.Fatalf("issued audit event %+v, want actor %s and client_ip 192.0.2.7", issued, c.Upstream)
	}
	// Retransmitted polls get the stored certificate, not a new one.
	again, err := svc.Poll(ctx, p, "tx", req.CSR.PublicKey, "")
	if err != nil || !bytes.Equal(again.DER, res.DER) || up.polls != 2 {
		t.Fatalf("poll after issuance: %v (upstream polled %d times)", err, up.polls)
	}
}

func TestUpstreamRefusalWhilePendingRejects(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	up := newUpstream(t)
	up.pending = 5
	p.Issuer = up
	req := enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password}
	if res, err := svc.PKCSReq(ctx, p, req); err != nil || !res.Pending {
		t.Fatalf("%+v %v", res, err)
	}
	// Unreachable: still PENDING.
	up.fail = &enroll.UpstreamError{Upstream: "scep:x", Reason: "no answer"}
	if res, err := svc.Poll(ctx, p, "tx", req.CSR.PublicKey, ""); err != nil || !res.Pending {
		t.Fatalf("poll with the upstream unreachable: %+v %v, want PENDING", res, err)
	}
	// Refused: rejected, and so it stays.
	up.fail = &enroll.UpstreamError{Upstream: "scep:x", Reason: "refused: SCEP FAILURE badRequest", Refused: true}
	var rej *enroll.Rejection
	if _, err := svc.Poll(ctx, p, "tx", req.CSR.PublicKey, "192.0.2.9"); !errors.As(err, &rej) {
		t.Fatalf("poll with the upstream refusing: %v, want a rejection", err)
	}
	if tx, _ := st.GetTransaction(ctx, "p", "tx"); tx.Status != store.StatusRejected {
		t.Fatalf("transaction %s, want rejected", tx.Status)
	}
	// The upstream decided; the device whose poll found it out is named.
	events, _ := st.ListAudit(ctx, 10)
	found := false
	for _, e := range events {
		found = found || (e.Action == "request.reject" && e.Actor == "scep:x" && e.Details["client_ip"] == "192.0.2.9")
	}
	if !found {
		t.Fatalf("no request.reject event by the upstream naming the polling device: %+v", events)
	}
}

// xorSealer stands in for the RA's envelope.
type xorSealer struct{}

func (xorSealer) Seal(b []byte) ([]byte, error) { return xorBytes(b), nil }
func (xorSealer) Open(b []byte) ([]byte, error) { return xorBytes(b), nil }

func xorBytes(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = c ^ 0x5a
	}
	return out
}

// holding sets up a profile whose upstream is down (up fails with down)
// and that holds requests meanwhile; hold enrolls a request, which must be
// held PENDING without its challenge stored in the clear.
func holding(t *testing.T) (svc *enroll.Service, p *enroll.Profile, st store.Store, up *upstreamCA, down error,
	hold func(id string) (*x509.CertificateRequest, store.Transaction)) {
	svc, p, st = setup(t)
	up = newUpstream(t)
	down = &enroll.UpstreamError{Upstream: "scep:x", Reason: "unreachable", Err: errors.New("dial: refused")}
	up.fail = down
	p.Issuer, p.HoldWhenUpstreamDown, p.Sealer = up, true, xorSealer{}
	ctx := context.Background()
	hold = func(id string) (*x509.CertificateRequest, store.Transaction) {
		t.Helper()
		c := csr(t, 2048, id)
		res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: id, CSR: c, Password: password})
		if err != nil || !res.Pending {
			t.Fatalf("%s with the upstream down: %+v %v, want PENDING", id, res, err)
		}
		tx, err := st.GetTransaction(ctx, "p", id)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(tx.UpstreamPoll, []byte(password)) || bytes.Contains(tx.CSRDER, []byte(password)) {
			t.Fatalf("%s: the challenge is stored in the clear", id)
		}
		return c, tx
	}
	return svc, p, st, up, down, hold
}

// TestHeldWhileUpstreamDown: with HoldWhenUpstreamDown a request the
// upstream cannot be asked for is held PENDING (its CSR sealed, the stored
// one without the challenge), submitted at a poll once the upstream is
// back; a held request the profile no longer allows, or can no longer
// open, is rejected at the poll instead of going upstream; no token
// remains once a request has left pending.
func TestHeldWhileUpstreamDown(t *testing.T) {
	svc, p, st, up, down, hold := holding(t)
	ctx := context.Background()
	gone := func(id, status string) {
		t.Helper()
		tx, err := st.GetTransaction(ctx, "p", id)
		if err != nil || tx.Status != status || tx.UpstreamPoll != nil {
			t.Fatalf("%s: %s with poll token %q (%v), want %s and no token", id, tx.Status, tx.UpstreamPoll, err, status)
		}
	}

	c1, _ := hold("held-1")
	if res, err := svc.Poll(ctx, p, "held-1", c1.PublicKey, ""); err != nil || !res.Pending {
		t.Fatalf("poll while down: %+v %v, want PENDING", res, err)
	}
	up.fail = nil
	res, err := svc.Poll(ctx, p, "held-1", c1.PublicKey, "")
	if err != nil || res.DER == nil {
		t.Fatalf("poll once the upstream is back: %+v %v, want the certificate", res, err)
	}
	if err := certOf(t, res).CheckSignatureFrom(up.ca.Cert); err != nil {
		t.Fatal("the certificate is not the upstream's")
	}
	gone("held-1", store.StatusIssued)

	// A renewal held the same way is issued as the renewal of the
	// certificate it renews.
	key1, _ := rsa.GenerateKey(rand.Reader, 2048)
	first, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "first", CSR: keyCSR(t, key1, "renewing"), Password: password})
	if err != nil || first.DER == nil {
		t.Fatalf("first certificate: %+v %v", first, err)
	}
	up.fail = down
	key2, _ := rsa.GenerateKey(rand.Reader, 2048)
	rc := keyCSR(t, key2, "renewing")
	held, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "held-renewal", CSR: rc, Renewal: true, Signer: certOf(t, first), SignerKey: &key1.PublicKey})
	if err != nil || !held.Pending {
		t.Fatalf("renewal with the upstream down: %+v %v, want PENDING", held, err)
	}
	up.fail = nil
	renewed, err := svc.Poll(ctx, p, "held-renewal", &key2.PublicKey, "")
	if err != nil || renewed.DER == nil {
		t.Fatalf("poll of the held renewal: %+v %v, want the certificate", renewed, err)
	}
	stored, err := st.GetCertificate(ctx, certOf(t, renewed).SerialNumber.Text(16))
	if err != nil || stored.RenewedSerial != certOf(t, first).SerialNumber.Text(16) {
		t.Fatalf("the held renewal is stored renewing %q (%v), want %s", stored.RenewedSerial, err, certOf(t, first).SerialNumber.Text(16))
	}

	// The policy tightened while it was held: rejected, not sent upstream.
	up.fail = down
	c2, _ := hold("held-2")
	up.fail = nil
	strict := ca.DefaultPolicy()
	strict.MinRSABits = 3072
	p.Policy = &strict
	calls := up.calls
	_, err = svc.Poll(ctx, p, "held-2", c2.PublicKey, "")
	var rej *enroll.Rejection
	if !errors.As(err, &rej) || !strings.Contains(rej.Reason, "policy no longer allows") || up.calls != calls {
		t.Fatalf("poll after the policy tightened: %v (upstream asked %d more times), want a rejection and no request upstream", err, up.calls-calls)
	}
	gone("held-2", store.StatusRejected)

	// The profile stopped holding requests: rejected at the next poll.
	loose := ca.DefaultPolicy()
	p.Policy = &loose
	up.fail = down
	c3, _ := hold("held-3")
	up.fail, p.Sealer = nil, nil
	if _, err := svc.Poll(ctx, p, "held-3", c3.PublicKey, ""); !errors.As(err, &rej) || !strings.Contains(rej.Reason, "when_unavailable") {
		t.Fatalf("poll after holding was turned off: %v, want a rejection naming when_unavailable", err)
	}
	gone("held-3", store.StatusRejected)
}

// TestHeldSubmittedOnce: a held request goes upstream from one poll at a
// time. While one poll's submission is in progress, another poll (the
// device retrying, another replica) answers PENDING without asking the
// upstream, which would otherwise issue twice, or refuse the second as a
// reused one-time password and reject the request while the first is
// issued. A submission that fails frees the request for the next poll;
// one abandoned (its server stopped) is taken over once its lease ran out.
func TestHeldSubmittedOnce(t *testing.T) {
	svc, p, st, up, down, hold := holding(t)
	ctx := context.Background()
	calls := func() int {
		up.mu.Lock()
		defer up.mu.Unlock()
		return up.calls
	}
	// gate holds the next submission open until release is closed, and
	// lets any other through.
	gate := func() (entered, release chan struct{}) {
		entered, release = make(chan struct{}), make(chan struct{})
		first := calls() + 1
		up.mu.Lock()
		up.gate = func(_ context.Context, call int) error {
			if call == first {
				close(entered)
				<-release
			}
			return nil
		}
		up.mu.Unlock()
		return entered, release
	}
	type answer struct {
		res enroll.Result
		err error
	}
	pollAsync := func(svc *enroll.Service, id string, pub any) chan answer {
		done := make(chan answer, 1)
		go func() {
			res, err := svc.Poll(ctx, p, id, pub, "")
			done <- answer{res, err}
		}()
		return done
	}

	c, _ := hold("once")
	up.fail = nil
	entered, release := gate()
	first := pollAsync(svc, "once", c.PublicKey)
	<-entered
	before := calls()
	if res, err := svc.Poll(ctx, p, "once", c.PublicKey, ""); err != nil || !res.Pending || calls() != before {
		t.Fatalf("a poll during another's submission: pending %v, certificate %v, %v, upstream asked %d more times; want PENDING and no request upstream",
			res.Pending, res.DER != nil, err, calls()-before)
	}
	close(release)
	if a := <-first; a.err != nil || a.res.DER == nil {
		t.Fatalf("the submitting poll: %+v %v, want the certificate", a.res, a.err)
	}
	if res, err := svc.Poll(ctx, p, "once", c.PublicKey, ""); err != nil || res.DER == nil || calls() != before {
		t.Fatalf("a poll after it was issued: %+v %v, upstream asked %d more times", res, err, calls()-before)
	}

	// A submission that fails (the upstream down again) leaves the request
	// held, and the next poll submits it.
	up.fail = down
	c2, _ := hold("retried")
	n := calls()
	if res, err := svc.Poll(ctx, p, "retried", c2.PublicKey, ""); err != nil || !res.Pending || calls() != n+1 {
		t.Fatalf("a poll while the upstream is down: %+v %v (%d requests upstream), want PENDING after one", res, err, calls()-n)
	}
	up.fail = nil
	if res, err := svc.Poll(ctx, p, "retried", c2.PublicKey, ""); err != nil || res.DER == nil || calls() != n+2 {
		t.Fatalf("the next poll with the upstream back: %+v %v (%d requests upstream), want the certificate after two", res, err, calls()-n)
	}

	// A submission whose server stopped answering: after its lease, a
	// poll (here on a replica whose clock is three minutes on) takes over.
	up.fail = down
	c3, _ := hold("abandoned")
	up.fail = nil
	entered, release = gate()
	stuck := pollAsync(svc, "abandoned", c3.PublicKey)
	<-entered
	later := enroll.New(st, func() time.Time { return testNow().Add(3 * time.Minute) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	n = calls()
	res, err := later.Poll(ctx, p, "abandoned", c3.PublicKey, "")
	if err != nil || res.DER == nil || calls() != n+1 {
		t.Fatalf("a poll after the lease ran out: %+v %v (%d requests upstream), want the certificate after one", res, err, calls()-n)
	}
	close(release)
	// Its certificate is not stored (the request was issued already):
	// it answers with the stored one.
	if a := <-stuck; a.err != nil || !bytes.Equal(a.res.DER, res.DER) {
		t.Fatalf("the abandoned poll, done after the takeover: certificate %v, %v; want the stored certificate", a.res.DER != nil, a.err)
	}
	tx, err := st.GetTransaction(ctx, "p", "abandoned")
	if err != nil || tx.Status != store.StatusIssued || tx.CertSerial != certOf(t, res).SerialNumber.Text(16) {
		t.Fatalf("the request after the takeover: %+v %v, want issued with the certificate of the poll that took over", tx, err)
	}
}

// TestConcurrentPollsOfAnIssuedRequest: two polls of a request pending at
// the upstream both find it issued there (the device retrying, two
// replicas); the second to store it hears that the first did, and both
// answer with the stored certificate instead of an error. A certificate
// the upstream issued twice is logged for the operator.
func TestConcurrentPollsOfAnIssuedRequest(t *testing.T) {
	_, p, st := setup(t)
	ctx := context.Background()
	var logs sceptest.LogBuffer
	svc := enroll.New(st, testNow, slog.New(slog.NewTextHandler(&logs, nil)))
	up := newUpstream(t)
	up.pending = 1
	p.Issuer = up
	c := csr(t, 2048, "polled")
	if res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "polled", CSR: c, Password: password}); err != nil || !res.Pending {
		t.Fatalf("PKCSReq: %+v %v, want PENDING at the upstream", res, err)
	}
	// The first poll is held inside the upstream while the second
	// stores the certificate the upstream gives it.
	entered, release := make(chan struct{}), make(chan struct{})
	up.mu.Lock()
	up.pollGate = func(poll int) {
		if poll == 1 {
			close(entered)
			<-release
		}
	}
	up.mu.Unlock()
	type answer struct {
		res enroll.Result
		err error
	}
	first := make(chan answer, 1)
	go func() {
		res, err := svc.Poll(ctx, p, "polled", c.PublicKey, "")
		first <- answer{res, err}
	}()
	<-entered
	second, err := svc.Poll(ctx, p, "polled", c.PublicKey, "")
	if err != nil || second.DER == nil {
		t.Fatalf("the second poll: %+v %v, want the certificate", second, err)
	}
	close(release)
	a := <-first
	if a.err != nil || !bytes.Equal(a.res.DER, second.DER) {
		t.Fatalf("the first poll, done after the second stored the certificate: certificate %v, %v; want the stored certificate", a.res.DER != nil, a.err)
	}
	tx, err := st.GetTransaction(ctx, "p", "polled")
	if err != nil || tx.Status != store.StatusIssued || tx.CertSerial != certOf(t, second).SerialNumber.Text(16) {
		t.Fatalf("the request: %+v %v, want issued with the stored certificate", tx, err)
	}
	if !strings.Contains(logs.String(), "certificate issued by the upstream CA but not stored") {
		t.Fatalf("the upstream's second certificate was not logged:\n%s", logs.String())
	}
}

// TestHeldSubmissionAnswers: what a held request's submission brings back
// replaces its claim: the upstream's PENDING (its token, with which the
// next polls ask), its refusal (the request rejected), and its
// certificate, stored even when the device hung up during the exchange.
func TestHeldSubmissionAnswers(t *testing.T) {
	svc, p, st, up, down, hold := holding(t)
	ctx := context.Background()
	token := func(id string) store.Transaction {
		t.Helper()
		tx, err := st.GetTransaction(ctx, "p", id)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}

	c, _ := hold("pending-up")
	up.fail, up.pending = nil, 2
	if res, err := svc.Poll(ctx, p, "pending-up", c.PublicKey, ""); err != nil || !res.Pending {
		t.Fatalf("a submission the upstream holds: %+v %v, want PENDING", res, err)
	}
	if tx := token("pending-up"); string(tx.UpstreamPoll) != "up-pending-up" {
		t.Fatalf("the token after the upstream's PENDING: %q, want the upstream's", tx.UpstreamPoll)
	}
	calls := up.calls
	if res, err := svc.Poll(ctx, p, "pending-up", c.PublicKey, ""); err != nil || !res.Pending {
		t.Fatalf("the next poll, the upstream still pending: %+v %v, want PENDING", res, err)
	}
	if res, err := svc.Poll(ctx, p, "pending-up", c.PublicKey, ""); err != nil || res.DER == nil || up.calls != calls || up.polls != 2 {
		t.Fatalf("the poll once the upstream issued: %+v %v (%d submissions, %d polls upstream), want the certificate from polls alone",
			res, err, up.calls-calls, up.polls)
	}
	up.pending = 0

	up.fail = down
	c2, _ := hold("refused-up")
	up.fail = &enroll.UpstreamError{Upstream: "scep:x", Reason: "badRequest", Refused: true}
	var rej *enroll.Rejection
	if _, err := svc.Poll(ctx, p, "refused-up", c2.PublicKey, ""); !errors.As(err, &rej) || !strings.Contains(rej.Reason, "refused") {
		t.Fatalf("a submission the upstream refuses: %v, want a rejection", err)
	}
	if tx := token("refused-up"); tx.Status != store.StatusRejected || tx.UpstreamPoll != nil {
		t.Fatalf("the refused request: %s with token %.16q, want rejected without one", tx.Status, tx.UpstreamPoll)
	}

	up.fail = down
	c3, _ := hold("hung-up")
	up.fail = nil
	hungUp, cancel := context.WithCancel(ctx)
	up.mu.Lock()
	up.gate = func(ctx context.Context, _ int) error {
		cancel()
		if ctx.Err() != nil {
			return errors.New("the exchange was cancelled with the device's request")
		}
		return nil
	}
	up.mu.Unlock()
	svc.Poll(hungUp, p, "hung-up", c3.PublicKey, "") // nobody hears it
	up.mu.Lock()
	up.gate = nil
	up.mu.Unlock()
	if tx := token("hung-up"); tx.Status != store.StatusIssued || tx.UpstreamPoll != nil {
		t.Fatalf("a request issued upstream while its device hung up: %s with token %.16q, want issued", tx.Status, tx.UpstreamPoll)
	}

	// An operator rejects the request while the upstream is asked, which
	// holds it PENDING: the poll answers with the rejection, and the
	// operator is told that the upstream holds a request nobody polls.
	var logs sceptest.LogBuffer
	logged := enroll.New(st, testNow, slog.New(slog.NewTextHandler(&logs, nil)))
	up.fail = down
	c4, _ := hold("rejected-meanwhile")
	up.fail, up.pending = nil, 1
	up.mu.Lock()
	up.gate = func(context.Context, int) error {
		return svc.Reject(ctx, p, "rejected-meanwhile", "operator", "not wanted")
	}
	up.mu.Unlock()
	if _, err := logged.Poll(ctx, p, "rejected-meanwhile", c4.PublicKey, ""); !errors.As(err, &rej) || !strings.Contains(rej.Reason, "not wanted") {
		t.Fatalf("a poll whose request was rejected during its submission: %v, want the rejection", err)
	}
	if !strings.Contains(logs.String(), "no longer tracked here") {
		t.Fatalf("the request left at the upstream was not logged:\n%s", logs.String())
	}
}

// TestPendingUpstreamSpendsEntityCode: an end entity's code is spent when
// its request goes PENDING at the upstream (or is held for it), since the
// poll that completes it asks for no code: a code of one use holds one
// request, not one per transactionID, and is not spent twice when the
// request is issued.
func TestPendingUpstreamSpendsEntityCode(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	up := newUpstream(t)
	up.pending = 1
	p.Issuer = up
	ent, err := challenge.NewEntity("p", st, testNow)
	if err != nil {
		t.Fatal(err)
	}
	p.Challenge = ent
	const code = "enrollment-code-1"
	if err := st.PutEntity(ctx, store.Entity{ProfileID: "p", Username: "kiosk-7", CodeHash: challenge.Hash(code), UsesLeft: 1,
		Expires: testNow().Add(time.Hour), Created: testNow()}); err != nil {
		t.Fatal(err)
	}
	first := enroll.Request{TransactionID: "first", CSR: csr(t, 2048, "kiosk-7"), Password: code}
	if res, err := svc.PKCSReq(ctx, p, first); err != nil || !res.Pending {
		t.Fatalf("first request: %+v %v, want PENDING at the upstream", res, err)
	}
	if e, _ := st.GetEntity(ctx, "p", "kiosk-7"); e.UsesLeft != 0 {
		t.Fatalf("uses left after a request went PENDING: %d, want 0", e.UsesLeft)
	}
	var rej *enroll.Rejection
	if _, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "second", CSR: csr(t, 2048, "kiosk-7"), Password: code}); !errors.As(err, &rej) {
		t.Fatalf("a second request with the code of one use: %v, want it refused", err)
	}
	res, err := svc.Poll(ctx, p, "first", first.CSR.PublicKey, "")
	if err != nil || res.DER == nil {
		t.Fatalf("poll: %+v %v, want the certificate", res, err)
	}
	if e, _ := st.GetEntity(ctx, "p", "kiosk-7"); e.UsesLeft != 0 {
		t.Fatalf("uses left after issuance: %d, want 0", e.UsesLeft)
	}
	if n := count(t, st); n != 1 {
		t.Fatalf("%d certificates, want 1", n)
	}
	// Two requests both past the check of a code's last use: the one
	// that loses is refused, and the request the upstream holds for it,
	// which nothing here will poll, is named for the operator.
	var logs sceptest.LogBuffer
	racer := enroll.New(st, testNow, slog.New(slog.NewTextHandler(&logs, nil)))
	p.Challenge = grantEntity("kiosk-7")
	up.pending = 100
	if _, err := racer.PKCSReq(ctx, p, enroll.Request{TransactionID: "late", CSR: csr(t, 2048, "kiosk-7"), Password: code}); !errors.As(err, &rej) {
		t.Fatalf("a request losing the code's last use: %v, want it refused", err)
	}
	if !strings.Contains(logs.String(), "could not be stored here; reject it there") || !strings.Contains(logs.String(), "late") {
		t.Fatalf("the request left at the upstream is not logged:\n%s", logs.String())
	}
}

// grantEntity grants every request as a use of user's code (as the entity
// check does for a code with a use left when it reads it).
type grantEntity string

func (g grantEntity) Validate(context.Context, challenge.Request) (challenge.Grant, error) {
	return challenge.Grant{EntityUser: string(g)}, nil
}

// TestRevokeOldLeavesUpstreamCertificates: renewing a certificate an
// upstream CA issued does not list it revoked here (revoke_old), since
// only that CA revokes it: its CRL and OCSP would still say good.
func TestRevokeOldLeavesUpstreamCertificates(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	p.Issuer = newUpstream(t)
	p.Renewal.RevokeOld = true
	oldKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	first, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "t0", CSR: keyCSR(t, oldKey, "dev"), Password: password})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "t1", CSR: csr(t, 2048, "dev"), Renewal: true, Signer: certOf(t, first), SignerKey: &oldKey.PublicKey})
	if err != nil || res.DER == nil || res.Renewed == "" {
		t.Fatalf("renewal: %+v %v", res, err)
	}
	old, err := st.GetCertificate(ctx, certOf(t, first).SerialNumber.Text(16))
	if err != nil || old.Status != store.CertValid {
		t.Fatalf("the upstream's certificate after its renewal: %+v %v, want it valid here as at its CA", old, err)
	}
}

// TestNoPendingProfileRefusesUpstreamPending: on a profile that cannot
// wait (Intune has no pending state), the upstream's PENDING is a refusal
// the device (and Intune, told the failure) hears at once; nothing is kept
// pending that a poll would later issue without Intune hearing of it.
func TestNoPendingProfileRefusesUpstreamPending(t *testing.T) {
	svc, p, st := setup(t)
	ctx := context.Background()
	up := newUpstream(t)
	up.pending = 1
	p.Issuer, p.NoPending = up, true
	var rej *enroll.Rejection
	if _, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password}); !errors.As(err, &rej) || !strings.Contains(rej.Reason, "PENDING") {
		t.Fatalf("upstream PENDING on a profile that cannot wait: %v, want a refusal", err)
	}
	if tx, err := st.GetTransaction(ctx, "p", "tx"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stored %+v %v, want nothing", tx, err)
	}
}
