package storetest

import (
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
