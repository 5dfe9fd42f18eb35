package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store/postgres/pgtest"
	"github.com/scepd/scepd/internal/store/sqlstore"
	"github.com/scepd/scepd/internal/store/storetest"
)

// TestListPlans: every certificate listing can be answered from an index
// (asked with sequential scans disabled, since an empty table makes any
// plan cheap), and the newest-first listings walk their index backwards
// instead of sorting.
func TestListPlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Schema(t), Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	// On an empty table the planner guesses a third of the rows match a
	// page's key range, and a bitmap scan plus a sort looks as cheap as
	// the walk; the walk is what a page of a real table gets, so ask for it.
	if _, err := conn.ExecContext(ctx, "SET enable_bitmapscan = off"); err != nil {
		t.Fatal(err)
	}
	for _, c := range storetest.ListingPlans(time.Now()) {
		q, args := sqlstore.ListCertificatesQuery(Dialect(), c.Filter)
		rows, err := conn.QueryContext(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, strings.TrimSpace(line))
		}
		rows.Close()
		text := strings.Join(plan, " | ")
		t.Logf("%-15s %s", c.Name, text)
		if !strings.Contains(text, "using "+c.Index) || strings.Contains(text, "Seq Scan") {
			t.Errorf("%s does not use %s: %s", c.Name, c.Index, text)
		}
		if !c.SortsMatches && strings.Contains(text, "Sort") {
			t.Errorf("%s sorts instead of walking the index: %s", c.Name, text)
		}
		if !c.Filter.After.IsZero() && !strings.Contains(text, "Index Cond: ") {
			t.Errorf("%s does not start the walk at the page's key: %s", c.Name, text)
		}
	}
}

// TestLatestRequestPlan: CertPoll's lookup reads the rows of one client
// transactionID through transactions_client_id (and the primary key for
// rows without a client ID), never every request of the profile.
func TestLatestRequestPlan(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Schema(t), Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, "EXPLAIN "+sqlstore.LatestRequestQuery(Dialect()), "p", "tx", []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, strings.TrimSpace(line))
	}
	text := strings.Join(plan, " | ")
	if !strings.Contains(text, "transactions_client_id") || strings.Contains(text, "Seq Scan") {
		t.Errorf("LatestRequest plan: %s", text)
	}
}
