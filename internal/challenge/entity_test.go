package challenge

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/slot"
	"github.com/scepd/scepd/internal/store"
)

type entities map[string]store.Entity

func (m entities) GetEntity(_ context.Context, _, username string) (store.Entity, error) {
	e, ok := m[username]
	if !ok {
		return store.Entity{}, store.ErrNotFound
	}
	return e, nil
}

// TestEntity: codes verify against their argon2id hash, and against the
// SHA-256 digest that versions before stored; a wrong code, an unknown
// user, a used-up or an expired code do not.
func TestEntity(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	hash := func(code string) []byte {
		h, err := HashEntityCode(code)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	alice := hash("summer2026")
	if bytes.Contains(alice, []byte("summer2026")) || bytes.Equal(alice, hash("summer2026")) {
		t.Fatalf("hash %q: holds the code, or is unsalted", alice)
	}
	if _, err := HashEntityCode("short"); err == nil {
		t.Error("a 5-character code was hashed")
	}
	later := now.Add(time.Hour)
	st := entities{
		"alice":  {Username: "alice", CodeHash: alice, UsesLeft: 1, Expires: later},
		"legacy": {Username: "legacy", CodeHash: Hash("registered-before"), UsesLeft: 1, Expires: later},
		"spent":  {Username: "spent", CodeHash: hash("spent-code"), UsesLeft: 0, Expires: later},
		"old":    {Username: "old", CodeHash: hash("old-code-1"), UsesLeft: 1, Expires: now},
	}
	v, err := NewEntity("kiosks", st, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	var rejected *Rejected
	for _, tt := range []struct {
		user, code string
		ok, reject bool
	}{
		{"alice", "summer2026", true, false},
		{"alice", "summer2027", false, false},
		{"alice", "", false, false},
		{"legacy", "registered-before", true, false},
		{"legacy", "registered-after", false, false},
		{"nobody", "summer2026", false, false},
		{"spent", "spent-code", false, true},
		{"old", "old-code-1", false, true},
	} {
		g, err := v.Validate(context.Background(), Request{CSR: &x509.CertificateRequest{Subject: pkix.Name{CommonName: tt.user}}, Password: tt.code})
		switch {
		case tt.ok && (err != nil || g.EntityUser != tt.user):
			t.Errorf("%s with %q: %+v %v, want granted as a use of %s's code", tt.user, tt.code, g, err, tt.user)
		case tt.reject && !errors.As(err, &rejected):
			t.Errorf("%s with %q: %v, want rejected", tt.user, tt.code, err)
		case !tt.ok && !tt.reject && !errors.Is(err, ErrInvalid):
			t.Errorf("%s with %q: %+v %v, want ErrInvalid", tt.user, tt.code, g, err)
		}
	}
}

// TestKDFQueueGivesBackTheSlot: a check waiting for its turn at the
// profile's argon2id gives the server's processing slot back while it
// waits (other profiles' requests use it), takes it again for the KDF, and
// gives up with its request.
func TestKDFQueueGivesBackTheSlot(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	h, err := HashEntityCode("summer2026")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewEntity("kiosks", entities{"alice": {Username: "alice", CodeHash: h, UsesLeft: 1, Expires: now.Add(time.Hour)}},
		func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	var yielded, resumed atomic.Int32
	ctx := slot.With(context.Background(), func() func() {
		yielded.Add(1)
		return func() { resumed.Add(1) }
	}, nil)
	req := Request{CSR: &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice"}}, Password: "summer2026"}

	v.kdf <- struct{}{} // another check's turn
	done := make(chan error, 1)
	go func() { _, err := v.Validate(ctx, req); done <- err }()
	for yielded.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if resumed.Load() != 0 {
		t.Fatal("the slot was taken again before the turn came")
	}
	<-v.kdf
	if err := <-done; err != nil || resumed.Load() != 1 {
		t.Fatalf("Validate: %v; slot taken again %d times, want 1", err, resumed.Load())
	}

	v.kdf <- struct{}{}
	cctx, cancel := context.WithCancel(ctx)
	go func() { _, err := v.Validate(cctx, req); done <- err }()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a request that gave up while waiting was granted")
	}
	<-v.kdf
}
