package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
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
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for name, c := range map[string]struct {
		f     store.CertificateFilter
		index string
		sorts bool // sorting only the matches is fine
	}{
		"newest":         {store.CertificateFilter{Limit: 50}, "certificates_created", false},
		"profile":        {store.CertificateFilter{ProfileID: "laptops", Limit: 50}, "certificates_profile", false},
		"expiring-30d":   {store.CertificateFilter{ExpiringAfter: now, ExpiringBefore: now.Add(30 * 24 * time.Hour), Limit: 50}, "certificates_not_after", true},
		"renewals":       {store.CertificateFilter{RenewedSerial: "0a1b", Limit: 50}, "certificates_renewed", true},
		"revoked":        {store.CertificateFilter{Status: store.CertRevoked, Limit: 50}, "certificates_revoked_created", false},
		"subject-search": {store.CertificateFilter{Subject: "laptop-42", Limit: 50}, "certificates_created", false},
	} {
		q, args := listCertificatesQuery(c.f)
		rows, err := conn.Query(ctx, "EXPLAIN "+q, args...)
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
		t.Logf("%-15s %s", name, text)
		if !strings.Contains(text, "using "+c.index) || strings.Contains(text, "Seq Scan") {
			t.Errorf("%s does not use %s: %s", name, c.index, text)
		}
		if !c.sorts && strings.Contains(text, "Sort") {
			t.Errorf("%s sorts instead of walking the index: %s", name, text)
		}
	}
}
