package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// Reopen closes nothing: it opens the store's database again, running the
// migrations not yet recorded as applied.
type Reopen func(t *testing.T) store.Store

// RunRenewalClientIDMigration checks migration 0010: rows of renewals
// issued before migration 0006, whose client_transaction_id 0006 copied
// from the qualified ID ("T@<old serial>"), get the client's T back, and
// CertPoll's lookup for T then finds the renewal. Rows whose client ID
// was written as sent (a client ID with '@' of its own, requests written
// since 0006) are left alone. newStore returns an empty store, raw access
// to its database and a way to open it again.
func RunRenewalClientIDMigration(t *testing.T, newStore func(t *testing.T) (store.Store, Exec, Reopen)) {
	s, exec, reopen := newStore(t)
	seed(t, s)
	first := issued("0a", "T")
	renewal := issued("0b", "T@0a")
	renewal.Certificate.RenewedSerial = "0a"
	renewal.Transaction.Created = when.Add(time.Hour)
	// A client whose own ID has '@', issued a first certificate.
	own := issued("0c", "user@0a")
	// A renewal written since 0006: client ID as sent.
	since := issued("0d", "T2@0c")
	since.Certificate.RenewedSerial = "0c"
	since.Transaction.ClientTransactionID = "T2"
	// A renewal whose ID does not end with the serial it renews.
	odd := issued("0e", "T3@ff")
	odd.Certificate.RenewedSerial = "0a"
	// A renewal whose ID is the qualifier alone.
	bare := issued("0f", "@0c")
	bare.Certificate.RenewedSerial = "0c"
	for _, rec := range []store.Issued{first, renewal, own, since, odd, bare} {
		if err := s.RecordIssued(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	// What 0006 left for rows written before it: the stored ID copied.
	exec(t, `UPDATE transactions SET client_transaction_id = transaction_id WHERE transaction_id IN ('T', 'T@0a', 'user@0a', 'T3@ff', '@0c')`)
	exec(t, `DELETE FROM schema_migrations WHERE version = '0010_renewal_client_id'`)
	s.Close()
	s = reopen(t)
	defer s.Close()
	for txid, want := range map[string]string{"T": "T", "T@0a": "T", "user@0a": "user@0a", "T2@0c": "T2", "T3@ff": "T3@ff", "@0c": "@0c"} {
		tx, err := s.GetTransaction(ctx, "p1", txid)
		if err != nil || tx.ClientID() != want {
			t.Errorf("after 0010, %q has client ID %q (%v), want %q", txid, tx.ClientID(), err, want)
		}
	}
	got, err := s.LatestRequest(ctx, "p1", "T", []byte{7})
	if err != nil || got.TransactionID != "T@0a" {
		t.Errorf("the newest request under T: %q, %v; want the renewal T@0a", got.TransactionID, err)
	}
	if _, err := s.LatestRequest(ctx, "p1", "T@0a", []byte{7}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a lookup by the qualified ID: %v, want ErrNotFound", err)
	}
}

// RunChallengeEnvHashMigration checks migration 0017: a profile row
// written before it (no challenge_env_hash column) reads as recording no
// environment hash, and one can be recorded after it. newStore returns an
// empty store, raw access to its database and a way to open it again.
func RunChallengeEnvHashMigration(t *testing.T, newStore func(t *testing.T) (store.Store, Exec, Reopen)) {
	s, exec, reopen := newStore(t)
	seed(t, s)
	// The database as an earlier scepd left it.
	exec(t, `ALTER TABLE profiles DROP COLUMN challenge_env_hash`)
	exec(t, `DELETE FROM schema_migrations WHERE version = '0017_challenge_env_hash'`)
	s.Close()
	s = reopen(t)
	defer s.Close()
	p, err := s.GetProfile(ctx, "p1")
	if err != nil || p.ChallengeEnvHash != "" || p.ChallengeHash != "$argon2id$x" {
		t.Fatalf("after 0017, a profile from before reads environment hash %q, challenge %q (%v); want none, the challenge kept", p.ChallengeEnvHash, p.ChallengeHash, err)
	}
	p.ChallengeEnvHash = "$argon2id$env"
	if err := s.UpdateProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p, err := s.GetProfile(ctx, "p1"); err != nil || p.ChallengeEnvHash != "$argon2id$env" {
		t.Errorf("after 0017, the recorded environment hash reads %q, %v", p.ChallengeEnvHash, err)
	}
}
