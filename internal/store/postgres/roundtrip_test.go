package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// roundTrips records what a connection sends: each query outside a batch
// and each batch is one round trip (once its statements are prepared).
type roundTrips struct {
	mu   sync.Mutex
	sent []string
}

func (r *roundTrips) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, s)
}

func (r *roundTrips) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

func oneLine(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	return q[:min(60, len(q))]
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.add(oneLine(d.SQL))
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var qs []string
	for _, q := range d.Batch.QueuedQueries {
		qs = append(qs, oneLine(q.SQL))
	}
	r.add("batch[" + strings.Join(qs, "; ") + "]")
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestEnrollmentRoundTrips: an enrollment's write (certificate,
// transaction, one-time challenge, audit event) is BEGIN, one batch of the
// writes with the audit chain's lock and head read, the audit insert and
// COMMIT: four round trips, not one per statement (seven and more).
func TestEnrollmentRoundTrips(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &roundTrips{}
	cfg.Tracer = tr
	s, err := open(ctx, cfg, Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	if err := s.CreateCA(ctx, store.CA{ID: "ca1", CertDER: []byte{1}, KeyRef: "file:k", Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateProfile(ctx, store.Profile{ID: "p1", CAID: "ca1", RACertDER: []byte{9}, RAKeyRef: "file:ra",
		ChallengeMode: store.ChallengeDynamic, Created: now}); err != nil {
		t.Fatal(err)
	}
	enroll := func(i int) {
		t.Helper()
		hash := []byte(fmt.Sprintf("challenge-%02d-0123456789abcdef0123", i))
		if err := s.CreateChallenge(ctx, store.Challenge{Hash: hash, ProfileID: "p1", Created: now, Expires: now.Add(time.Hour)}, 100); err != nil {
			t.Fatal(err)
		}
		serial, txid := fmt.Sprintf("%02x", i+1), fmt.Sprint("tx-", i)
		tr.take()
		if err := s.RecordIssued(ctx, store.Issued{
			Certificate: store.Certificate{Serial: serial, ProfileID: "p1", TransactionID: txid, Subject: "CN=dev", CAID: "ca1",
				NotBefore: now, NotAfter: now.Add(time.Hour), DER: []byte{byte(i)}, Status: store.CertValid, Created: now},
			Transaction: store.Transaction{ProfileID: "p1", TransactionID: txid, Status: store.StatusIssued, PublicKeySHA256: []byte{7},
				CSRDER: []byte{8}, CertSerial: serial, Created: now, Updated: now},
			ChallengeHash: hash,
			Audit:         store.AuditEvent{Time: now, Actor: "device", Action: "enroll", Object: serial, Outcome: "issued"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	enroll(0) // prepares the statements
	enroll(1)
	sent := tr.take()
	t.Logf("round trips:\n%s", strings.Join(sent, "\n"))
	if len(sent) > 4 {
		t.Errorf("an enrollment's write took %d round trips, want at most 4:\n%s", len(sent), strings.Join(sent, "\n"))
	}
	if r, err := s.CheckIntegrity(ctx); err != nil || len(r.Problems) > 0 || r.AuditEvents != 2 {
		t.Errorf("CheckIntegrity = %+v, %v", r, err)
	}
}
