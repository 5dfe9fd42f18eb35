package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store/sqlstore"
	"github.com/scepd/scepd/internal/store/storetest"
)

// TestListPlans: every certificate listing is answered from its index
// (EXPLAIN QUERY PLAN), and the newest-first ones walk it instead of
// sorting.
func TestListPlans(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range storetest.ListingPlans(time.Now()) {
		q, args := sqlstore.ListCertificatesQuery(Dialect(), c.Filter)
		rows, err := st.DB().Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "; ")
		t.Logf("%-15s %s", c.Name, text)
		if !strings.Contains(text, "USING INDEX "+c.Index) {
			t.Errorf("%s does not use %s: %s", c.Name, c.Index, text)
		}
		if !c.SortsMatches && strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("%s sorts instead of walking the index newest-first: %s", c.Name, text)
		}
		if !c.Filter.After.IsZero() && !strings.Contains(text, "(created_at,serial)<(?,?)") {
			t.Errorf("%s does not start the walk at the page's key: %s", c.Name, text)
		}
	}
}

// TestLatestRequestPlan: CertPoll's lookup reads the rows of one client
// transactionID through transactions_client_id (and the primary key for
// rows without a client ID), never every request of the profile.
func TestLatestRequestPlan(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.DB().Query("EXPLAIN QUERY PLAN "+sqlstore.LatestRequestQuery(Dialect()), "p", "tx", []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "; ")
	if !strings.Contains(text, "USING INDEX transactions_client_id (profile_id=? AND client_transaction_id=?)") ||
		!strings.Contains(text, "(profile_id=? AND transaction_id=?)") || strings.Contains(text, "SCAN transactions") {
		t.Errorf("LatestRequest plan: %s", text)
	}
}
