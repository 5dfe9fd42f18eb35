package enroll_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/store"
)

// lookups counts the transaction look-ups enrollment makes.
type lookups struct {
	store.Store
	n atomic.Int64
}

func (l *lookups) GetTransaction(ctx context.Context, profileID, transactionID string) (store.Transaction, error) {
	l.n.Add(1)
	return l.Store.GetTransaction(ctx, profileID, transactionID)
}

// TestRetransmissionFoundByInsert: a first enrollment looks no
// transaction up before it stores one (the unique constraint finds a
// repeat); a retransmission, with the same senderNonce, still gets the
// stored certificate, also when the one-time challenge it carries was spent
// by its first copy; a changed CSR under a used ID is still a new request.
func TestRetransmissionFoundByInsert(t *testing.T) {
	_, p, st := setup(t)
	ctx := context.Background()
	counted := &lookups{Store: st}
	svc := enroll.New(counted, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	nonce := []byte("0123456789abcdef")
	req := enroll.Request{TransactionID: "tx", CSR: csr(t, 2048, "dev"), Password: password, SenderNonce: nonce}
	req.SignerKey = req.CSR.PublicKey
	first, err := svc.PKCSReq(ctx, p, req)
	if err != nil {
		t.Fatal(err)
	}
	if n := counted.n.Load(); n != 0 {
		t.Fatalf("a first enrollment looked its transaction up %d times", n)
	}
	again, err := svc.PKCSReq(ctx, p, req)
	if err != nil || !again.Replayed || !certOf(t, again).Equal(certOf(t, first)) {
		t.Fatalf("retransmission: %v, replayed %v", err, again.Replayed)
	}

	// One-time challenges: the retransmission's challenge is spent.
	dyn := &challenge.Dynamic{ProfileID: "p", Store: st, TTL: time.Hour, MaxPending: 10, Now: time.Now}
	secret, _, err := dyn.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := *p
	q.Challenge = dyn
	once := enroll.Request{TransactionID: "once", CSR: csr(t, 2048, "once"), Password: secret, SenderNonce: []byte("fedcba9876543210")}
	once.SignerKey = once.CSR.PublicKey
	one, err := svc.PKCSReq(ctx, &q, once)
	if err != nil {
		t.Fatal(err)
	}
	two, err := svc.PKCSReq(ctx, &q, once)
	if err != nil || !two.Replayed || !certOf(t, two).Equal(certOf(t, one)) {
		t.Fatalf("retransmission with a spent one-time challenge: %v, replayed %v", err, two.Replayed)
	}

	// The same ID and key with another request (certmonger adding a SAN).
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	a, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "same", CSR: keyCSR(t, key, "dev", "a.example"), Password: password, SignerKey: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.PKCSReq(ctx, p, enroll.Request{TransactionID: "same", CSR: keyCSR(t, key, "dev", "a.example", "b.example"), Password: password, SignerKey: &key.PublicKey})
	if err != nil || b.Replayed || certOf(t, b).Equal(certOf(t, a)) || len(certOf(t, b).DNSNames) != 2 {
		t.Fatalf("changed CSR under a used ID: %v, replayed %v", err, b.Replayed)
	}
	if n := count(t, st); n != 4 {
		t.Fatalf("%d certificates, want 4", n)
	}
}
