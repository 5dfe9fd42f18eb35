package postgres

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
	"github.com/scepd/scepd/internal/store/sqlstore"
	"github.com/scepd/scepd/internal/store/storetest"
)

// planConn is a connection to a fresh schema that plans with the given
// settings.
func planConn(t *testing.T, settings ...string) *sql.Conn {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Schema(t), Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	for _, set := range settings {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// TestListPlans: every certificate listing can be answered from an index
// (asked with sequential scans disabled, since an empty table makes any
// plan cheap), and the newest-first listings walk their index backwards
// instead of sorting.
func TestListPlans(t *testing.T) {
	// On an empty table the planner guesses a third of the rows match a
	// page's key range, and a bitmap scan plus a sort looks as cheap as
	// the walk; the walk is what a page of a real table gets, so ask for it.
	conn := planConn(t, "SET enable_seqscan = off", "SET enable_bitmapscan = off")
	words := storetest.PlanWords{Explain: "EXPLAIN ", Index: "using ", FullScan: "Seq Scan", Sort: "Sort", KeyRange: "Index Cond: "}
	storetest.CheckListingPlans(t, conn, words, func(f store.CertificateFilter) (string, []any) {
		return sqlstore.ListCertificatesQuery(Dialect(), f)
	})
}

// TestLatestRequestPlan: CertPoll's lookup reads the rows of one client
// transactionID through transactions_client_id (and the primary key for
// rows without a client ID), never every request of the profile.
func TestLatestRequestPlan(t *testing.T) {
	conn := planConn(t, "SET enable_seqscan = off")
	text := storetest.Explain(t, conn, "EXPLAIN ", sqlstore.LatestRequestQuery(Dialect()), "p", "tx", []byte{1})
	if !strings.Contains(text, "transactions_client_id") || strings.Contains(text, "Seq Scan") {
		t.Errorf("LatestRequest plan: %s", text)
	}
}

// TestAuditPlans: the console's audit queries can be answered from their
// partial indexes, which issued enrollments do not write.
func TestAuditPlans(t *testing.T) {
	conn := planConn(t, "SET enable_seqscan = off", "SET enable_bitmapscan = off")
	words := storetest.PlanWords{Explain: "EXPLAIN ", Index: "using ", FullScan: "Seq Scan"}
	storetest.CheckPlans(t, conn, words, storetest.AuditPlans(Dialect().List, time.Now()))
}

// TestRevokedPlan: a CRL's certificates come from the covering partial
// index in serial order, without a sort.
func TestRevokedPlan(t *testing.T) {
	conn := planConn(t, "SET enable_seqscan = off", "SET enable_bitmapscan = off")
	text := storetest.Explain(t, conn, "EXPLAIN ", sqlstore.ListRevokedQuery, "ca")
	if !strings.Contains(text, "Index Only Scan using certificates_revoked") || strings.Contains(text, "Sort") {
		t.Errorf("ListRevoked plan: %s", text)
	}
}
