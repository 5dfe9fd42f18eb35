package enroll_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/storetest"
)

// slowNotifier allows every request and reports outcomes slowly, like an
// Intune or webhook round trip; a report cut short by its context counts
// as cancelled.
type slowNotifier struct {
	delay             time.Duration
	issued, cancelled atomic.Int32
}

func (n *slowNotifier) Validate(context.Context, challenge.Request) (challenge.Grant, error) {
	return challenge.Grant{}, nil
}

func (n *slowNotifier) Issued(ctx context.Context, _ challenge.Request, _ *x509.Certificate) {
	select {
	case <-time.After(n.delay):
		n.issued.Add(1)
	case <-ctx.Done():
		n.cancelled.Add(1)
	}
}

func (n *slowNotifier) Failed(context.Context, challenge.Request, string) {}

// TestCloseWaitsForNotifications: the outcome notifications sent after
// the answer are not fire-and-forget: Close returns only once each was
// delivered.
func TestCloseWaitsForNotifications(t *testing.T) {
	svc, p, _ := setup(t)
	n := &slowNotifier{delay: 300 * time.Millisecond}
	p.Challenge = n
	const reqs = 4
	for i := range reqs {
		if _, err := svc.PKCSReq(context.Background(), p, enroll.Request{TransactionID: "n" + string(rune('a'+i)), CSR: csr(t, 2048, "n")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.issued.Load(); got == reqs {
		t.Fatal("notifications were sent on the client's path; the test shows nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.issued.Load(); got != reqs {
		t.Fatalf("Close returned with %d of %d notifications delivered", got, reqs)
	}
}

// TestCloseCancelsLateNotifications: past Close's deadline the remaining
// notifications are cancelled and waited for, and Close says so.
func TestCloseCancelsLateNotifications(t *testing.T) {
	svc, p, _ := setup(t)
	n := &slowNotifier{delay: time.Hour}
	p.Challenge = n
	if _, err := svc.PKCSReq(context.Background(), p, enroll.Request{TransactionID: "late", CSR: csr(t, 2048, "late")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := svc.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if n.cancelled.Load() != 1 {
		t.Fatal("the late notification was not cancelled before Close returned")
	}
}

// checkingNotifier is a remote validator that records, while it is
// asked, how many announcements are still open.
type checkingNotifier struct {
	slowNotifier
	st   *storetest.Announcing
	open int64
}

func (n *checkingNotifier) Validate(context.Context, challenge.Request) (challenge.Grant, error) {
	n.open = n.st.Open()
	return challenge.Grant{}, nil
}

// TestRemoteCheckWithdrawsTheAnnouncement: an enrollment announced for
// the group commit withdraws the announcement while a remote validator
// (Intune, a webhook) answers, so commits do not wait for that, and
// announces the write again once granted; every announcement is settled.
func TestRemoteCheckWithdrawsTheAnnouncement(t *testing.T) {
	_, p, st := setup(t)
	a := &storetest.Announcing{Store: st}
	svc := enroll.New(a, testNow, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { svc.Close(context.Background()) })
	n := &checkingNotifier{st: a, open: -1}
	p.Challenge = n
	ctx, done := svc.Expect(context.Background(), p)
	if _, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "remote", CSR: csr(t, 2048, "remote")}); err != nil {
		t.Fatal(err)
	}
	done()
	if n.open != 0 {
		t.Errorf("%d announcements open while the remote validator answered, want 0", n.open)
	}
	if made, settled := a.Made.Load(), a.Settled.Load(); made != 2 || settled != 2 {
		t.Errorf("%d announced, %d settled; want 2 (before decryption, after the grant), both settled", made, settled)
	}
}

// recordingNotifier allows every request and records the outcomes it is
// told.
type recordingNotifier struct {
	mu      sync.Mutex
	issued  []string // serials
	reasons []string // of Failed
}

func (n *recordingNotifier) Validate(context.Context, challenge.Request) (challenge.Grant, error) {
	return challenge.Grant{}, nil
}

func (n *recordingNotifier) Issued(_ context.Context, _ challenge.Request, cert *x509.Certificate) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.issued = append(n.issued, cert.SerialNumber.Text(16))
}

func (n *recordingNotifier) Failed(_ context.Context, _ challenge.Request, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reasons = append(n.reasons, reason)
}

// failingRecord fails RecordIssued with err, having committed first when
// commit is set (the acknowledgement lost), until fails runs out.
type failingRecord struct {
	enroll.Store
	err    error
	commit bool
	fails  atomic.Int32
}

func (f *failingRecord) RecordIssued(ctx context.Context, rec store.Issued) error {
	if f.fails.Add(-1) < 0 {
		return f.Store.RecordIssued(ctx, rec)
	}
	if f.commit {
		if err := f.Store.RecordIssued(ctx, rec); err != nil {
			return err
		}
	}
	return f.err
}

func notifying(t *testing.T, f *failingRecord) (*enroll.Service, *enroll.Profile, *recordingNotifier) {
	t.Helper()
	_, p, st := setup(t)
	f.Store = st
	svc := enroll.New(f, testNow, slog.New(slog.NewTextHandler(io.Discard, nil)))
	n := &recordingNotifier{}
	p.Challenge = n
	return svc, p, n
}

// TestUnavailableIsNotFailed: a granted request whose certificate cannot
// be stored because the database is unavailable is no final outcome (the
// device retries): its validator is not told Failed, nor the database's
// error.
func TestUnavailableIsNotFailed(t *testing.T) {
	f := &failingRecord{err: fmt.Errorf("postgres: dial tcp db.internal:5432: user scepd: SQLSTATE 57P03: %w", store.ErrUnavailable)}
	f.fails.Store(1)
	svc, p, n := notifying(t, f)
	if _, err := svc.PKCSReq(context.Background(), p, enroll.Request{TransactionID: "down", CSR: csr(t, 2048, "down")}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("PKCSReq: %v, want the store unavailable", err)
	}
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(n.reasons) != 0 || len(n.issued) != 0 {
		t.Fatalf("told Failed %q, Issued %q; want nothing", n.reasons, n.issued)
	}
}

// TestRejectionFailedWithItsReason: a granted request refused for good
// (here its senderNonce was used by another transaction) is reported
// Failed with the reason the device hears, and nothing internal.
func TestRejectionFailedWithItsReason(t *testing.T) {
	f := &failingRecord{err: store.ErrNonceReused}
	f.fails.Store(1)
	svc, p, n := notifying(t, f)
	_, err := svc.PKCSReq(context.Background(), p, enroll.Request{TransactionID: "replayed", CSR: csr(t, 2048, "replayed")})
	var rej *enroll.Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("PKCSReq: %v, want a rejection", err)
	}
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(n.reasons) != 1 || n.reasons[0] != rej.Reason {
		t.Fatalf("told Failed %q, want once with %q", n.reasons, rej.Reason)
	}
	for _, internal := range []string{"enrollment rejected", "store:", "enroll:"} {
		if strings.Contains(n.reasons[0], internal) {
			t.Errorf("the Failed reason %q holds %q", n.reasons[0], internal)
		}
	}
}

// TestIssuedAfterLostAcknowledgement: when the commit went through but
// its acknowledgement was lost, the device's retry is answered with the
// stored certificate and the validator is told Issued for it, once
// however often the device asks again. When the commit did not go
// through, the retry issues afresh and Issued is sent once too.
func TestIssuedAfterLostAcknowledgement(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(map[bool]string{true: "committed", false: "not committed"}[commit], func(t *testing.T) {
			f := &failingRecord{err: store.ErrUnavailable, commit: commit}
			f.fails.Store(1)
			svc, p, n := notifying(t, f)
			r := enroll.Request{TransactionID: "lost-ack", CSR: csr(t, 2048, "lost")}
			r.SignerKey = r.CSR.PublicKey // self-signed with the CSR's key, as clients do
			if _, err := svc.PKCSReq(context.Background(), p, r); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("first attempt: %v, want the store unavailable", err)
			}
			var serial string
			for i := range 3 {
				res, err := svc.PKCSReq(context.Background(), p, r)
				if err != nil || res.DER == nil {
					t.Fatalf("retry %d: %v, no certificate", i+1, err)
				}
				cert, _ := res.Certificate()
				serial = cert.SerialNumber.Text(16)
			}
			if err := svc.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(n.issued) != 1 || n.issued[0] != serial || len(n.reasons) != 0 {
				t.Fatalf("told Issued %q, Failed %q; want Issued once for %s", n.issued, n.reasons, serial)
			}
		})
	}
}
