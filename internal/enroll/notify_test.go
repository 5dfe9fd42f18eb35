package enroll_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
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
