package enroll_test

import (
	"context"
	"crypto/x509"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
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
