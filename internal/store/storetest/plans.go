package storetest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// ListingPlan is a certificate listing operators use and the index that
// must answer it; each backend's TestListPlans asks its planner.
type ListingPlan struct {
	Name   string
	Filter store.CertificateFilter
	Index  string
	// SortsMatches: the plan may sort the rows the index found (a range
	// or a handful), never the table.
	SortsMatches bool
}

// ListingPlans are the newest first, per profile, expiring soon, renewals
// of a certificate, revoked, and substring searches.
func ListingPlans(now time.Time) []ListingPlan {
	return []ListingPlan{
		{"newest", store.CertificateFilter{Limit: 50}, "certificates_created", false},
		{"profile", store.CertificateFilter{ProfileID: "laptops", Limit: 50}, "certificates_profile", false},
		{"expiring-30d", store.CertificateFilter{ExpiringAfter: now, ExpiringBefore: now.Add(30 * 24 * time.Hour), Limit: 50}, "certificates_not_after", true},
		{"renewals", store.CertificateFilter{RenewedSerial: "0a1b", Limit: 50}, "certificates_renewed", true},
		{"revoked", store.CertificateFilter{Status: store.CertRevoked, Limit: 50}, "certificates_revoked_created", false},
		{"subject-search", store.CertificateFilter{Subject: "laptop-42", Limit: 50}, "certificates_created", false},
		{"newest-next-page", store.CertificateFilter{After: store.CertificateKey{Created: now, Serial: "0a1b"}, Limit: 50}, "certificates_created", false},
		{"profile-next-page", store.CertificateFilter{ProfileID: "laptops", After: store.CertificateKey{Created: now, Serial: "0a1b"}, Limit: 50}, "certificates_profile", false},
		{"scoped-next-page", store.CertificateFilter{Profiles: []string{"laptops"}, After: store.CertificateKey{Created: now, Serial: "0a1b"}, Limit: 50}, "certificates_profile", false},
		{"profile-search", store.CertificateFilter{ProfileID: "laptops", Subject: "laptop-42", Limit: 50}, "certificates_profile", false},
	}
}

// Querier runs a query: a *sql.DB, or a *sql.Conn with session settings.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Explain asks for the plan of q (explain is the backend's "EXPLAIN ...
// " prefix) and returns it as one line: the last column of each row,
// trimmed, joined by " | ".
func Explain(t *testing.T, db Querier, explain, q string, args ...any) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), explain+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		dst := make([]any, len(cols))
		for i := range dst {
			dst[i] = new(any)
		}
		var line string
		dst[len(dst)-1] = &line
		if err := rows.Scan(dst...); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, strings.TrimSpace(line))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, " | ")
}

// PlanWords are how a planner's text says what CheckListingPlans looks for.
type PlanWords struct {
	// Explain prefixes a query to get its plan.
	Explain string
	// Index precedes an index's name when the plan reads it.
	Index string
	// FullScan, when set, is in a plan that reads the whole table.
	FullScan string
	// Sort is in a plan that sorts rows.
	Sort string
	// KeyRange is in a plan that starts the index walk at a page's key.
	KeyRange string
}

// CheckListingPlans asks the planner for every ListingPlans query (built
// by query) and checks each is answered from its index, walked rather than
// sorted, and started at the page's key when it continues a listing.
func CheckListingPlans(t *testing.T, db Querier, w PlanWords, query func(store.CertificateFilter) (string, []any)) {
	for _, c := range ListingPlans(time.Now()) {
		q, args := query(c.Filter)
		text := Explain(t, db, w.Explain, q, args...)
		t.Logf("%-17s %s", c.Name, text)
		if !strings.Contains(text, w.Index+c.Index) || (w.FullScan != "" && strings.Contains(text, w.FullScan)) {
			t.Errorf("%s does not use %s: %s", c.Name, c.Index, text)
		}
		if !c.SortsMatches && strings.Contains(text, w.Sort) {
			t.Errorf("%s sorts instead of walking the index newest-first: %s", c.Name, text)
		}
		if !c.Filter.After.IsZero() && !strings.Contains(text, w.KeyRange) {
			t.Errorf("%s does not start the walk at the page's key: %s", c.Name, text)
		}
	}
}

// QueryPlan is a query (with its arguments) and the index that must
// answer it.
type QueryPlan struct {
	Name, Query, Index string
	Args               []any
}

// AuditPlans are the console's audit queries: who sent a request
// (RequestedBy) and the refused enrollments of the last days
// (EnrollFailures), each answered from a partial index that leaves out
// issued enrollments (migration 0015).
func AuditPlans(d store.Dialect, now time.Time) []QueryPlan {
	failures, args := store.EnrollFailuresSQL(now.Add(-7*24*time.Hour), nil, d)
	scoped, scopedArgs := store.EnrollFailuresSQL(now.Add(-7*24*time.Hour), []string{"laptops"}, d)
	return []QueryPlan{
		{"requested-by", store.RequestedBySQL(d), "audit_events_requests", []any{"transaction:tx", "laptops"}},
		{"enroll-failures", failures, "audit_events_rejected", args},
		{"enroll-failures-scoped", scoped, "audit_events_rejected", scopedArgs},
	}
}

// CheckPlans asks the planner for each query and checks it reads its
// index and not the whole table.
func CheckPlans(t *testing.T, db Querier, w PlanWords, plans []QueryPlan) {
	for _, c := range plans {
		text := Explain(t, db, w.Explain, c.Query, c.Args...)
		t.Logf("%-22s %s", c.Name, text)
		if !strings.Contains(text, w.Index+c.Index) || (w.FullScan != "" && strings.Contains(text, w.FullScan)) {
			t.Errorf("%s does not use %s: %s", c.Name, c.Index, text)
		}
	}
}
