package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// listFilters are the certificate listings operators use: the newest
// first, per profile, expiring soon, renewals of a certificate, revoked,
// and substring searches.
var listFilters = map[string]store.CertificateFilter{
	"newest":         {Limit: 50},
	"profile":        {ProfileID: "laptops", Limit: 50},
	"expiring-30d":   {ExpiringAfter: time.Now(), ExpiringBefore: time.Now().Add(30 * 24 * time.Hour), Limit: 50},
	"renewals":       {RenewedSerial: "0a1b", Limit: 50},
	"revoked":        {Status: store.CertRevoked, Limit: 50},
	"subject-search": {Subject: "laptop-42", Limit: 50},
	"profile-search": {ProfileID: "laptops", Subject: "laptop-42", Limit: 50},
}

// planIndex is the index each listing must use.
var planIndex = map[string]string{
	"newest": "certificates_created", "profile": "certificates_profile", "expiring-30d": "certificates_not_after",
	"renewals": "certificates_renewed", "revoked": "certificates_revoked_created",
	"subject-search": "certificates_created", "profile-search": "certificates_profile",
}

// TestListPlans: every certificate listing is answered from an index (no
// scan of the table, no sort of all of it).
func TestListPlans(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, f := range listFilters {
		q, args := listCertificatesQuery(f)
		rows, err := st.db.Query("EXPLAIN QUERY PLAN "+q, args...)
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
		t.Logf("%-15s %s", name, text)
		want := planIndex[name]
		if !strings.Contains(text, "USING INDEX "+want) {
			t.Errorf("%s does not use %s: %s", name, want, text)
		}
		if name != "expiring-30d" && name != "renewals" && strings.Contains(text, "TEMP B-TREE") { // those sort only their matches
			t.Errorf("%s sorts instead of walking the index newest-first: %s", name, text)
		}
	}
}
