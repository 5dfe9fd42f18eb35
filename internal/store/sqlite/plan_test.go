package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlstore"
	"github.com/scepd/scepd/internal/store/storetest"
)

func openPlans(t *testing.T) *Store {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestListPlans: every certificate listing is answered from its index
// (EXPLAIN QUERY PLAN), and the newest-first ones walk it instead of
// sorting.
func TestListPlans(t *testing.T) {
	words := storetest.PlanWords{Explain: "EXPLAIN QUERY PLAN ", Index: "USING INDEX ", Sort: "TEMP B-TREE", KeyRange: "(created_at,serial)<(?,?)"}
	storetest.CheckListingPlans(t, openPlans(t).DB(), words, func(f store.CertificateFilter) (string, []any) {
		return sqlstore.ListCertificatesQuery(Dialect(), f)
	})
}

// TestLatestRequestPlan: CertPoll's lookup reads the rows of one client
// transactionID through transactions_client_id (and the primary key for
// rows without a client ID), never every request of the profile.
func TestLatestRequestPlan(t *testing.T) {
	text := storetest.Explain(t, openPlans(t).DB(), "EXPLAIN QUERY PLAN ", sqlstore.LatestRequestQuery(Dialect()), "p", "tx", []byte{1})
	if !strings.Contains(text, "USING INDEX transactions_client_id (profile_id=? AND client_transaction_id=?)") ||
		!strings.Contains(text, "(profile_id=? AND transaction_id=?)") || strings.Contains(text, "SCAN transactions") {
		t.Errorf("LatestRequest plan: %s", text)
	}
}

// TestAuditPlans: the console's audit queries read their partial
// indexes, which issued enrollments do not write.
func TestAuditPlans(t *testing.T) {
	words := storetest.PlanWords{Explain: "EXPLAIN QUERY PLAN ", Index: "USING INDEX ", FullScan: "SCAN audit_events"}
	storetest.CheckPlans(t, openPlans(t).DB(), words, storetest.AuditPlans(Dialect().List, time.Now()))
}

// TestIntegrityPlans: CheckIntegrity's look-ups of a certificate's
// transaction (no index on transactions.cert_serial since migration 0015)
// build an automatic index once instead of reading every transaction for
// each certificate.
func TestIntegrityPlans(t *testing.T) {
	db := openPlans(t).DB()
	for _, q := range store.IntegrityQueries {
		text := storetest.Explain(t, db, "EXPLAIN QUERY PLAN ", q.Query)
		t.Logf("%s: %s", q.Problem, text)
		if strings.Count(text, "SCAN ") > 1 && !strings.Contains(text, "AUTOMATIC") {
			t.Errorf("%s: nested scans: %s", q.Problem, text)
		}
	}
}

// TestRevokedPlan: a CRL's certificates come from the covering partial
// index in serial order: no row read (their revocation columns follow the
// DER, in an overflow page), no sort.
func TestRevokedPlan(t *testing.T) {
	text := storetest.Explain(t, openPlans(t).DB(), "EXPLAIN QUERY PLAN ", sqlstore.ListRevokedQuery, "ca")
	if !strings.Contains(text, "USING COVERING INDEX certificates_revoked (ca_id=?)") || strings.Contains(text, "TEMP B-TREE") {
		t.Errorf("ListRevoked plan: %s", text)
	}
}
