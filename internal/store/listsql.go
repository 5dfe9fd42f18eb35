package store

import (
	"fmt"
	"strings"
	"time"
)

// Dialect is how a SQL backend spells what a certificate listing needs.
type Dialect struct {
	// Placeholder is the n-th (1-based) bind parameter: "?1" or "$1".
	Placeholder func(n int) string
	// Time is a time as the backend stores it.
	Time func(time.Time) any
	// Contains is an expression true when the text expression contains the
	// parameter, ignoring case.
	Contains func(expr, param string) string
	// SANs is the SAN column as one text expression.
	SANs string
}

// ListCertificatesSQL builds the listing query for f with only the
// predicates f sets, so the planner can use the indexes
// (certificates_created for the newest-first default,
// certificates_profile, certificates_not_after, certificates_renewed,
// certificates_revoked_created). Substring searches of subject and SANs
// filter the newest-first walk and stop at the page size.
func ListCertificatesSQL(columns string, f CertificateFilter, d Dialect) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	var where []string
	var args []any
	param := func(v any) string {
		args = append(args, v)
		return d.Placeholder(len(args))
	}
	if f.ProfileID != "" {
		where = append(where, "profile_id = "+param(f.ProfileID))
	}
	if len(f.Profiles) > 0 {
		where = append(where, "profile_id IN ("+InList(f.Profiles, param)+")")
	}
	switch f.Status {
	case "":
	case CertValid, CertRevoked:
		// A literal, so the partial index on revoked certificates applies.
		where = append(where, "status = '"+f.Status+"'")
	default:
		where = append(where, "status = "+param(f.Status))
	}
	if !f.ExpiringBefore.IsZero() {
		where = append(where, "not_after < "+param(d.Time(f.ExpiringBefore)))
	}
	if !f.ExpiringAfter.IsZero() {
		where = append(where, "not_after >= "+param(d.Time(f.ExpiringAfter)))
	}
	if f.RenewedSerial != "" {
		// Spelled out so the partial index certificates_renewed applies.
		where = append(where, "renewed_serial <> '' AND renewed_serial = "+param(f.RenewedSerial))
	}
	if f.Subject != "" {
		where = append(where, d.Contains("subject", param(f.Subject)))
	}
	if f.SAN != "" {
		where = append(where, d.Contains(d.SANs, param(f.SAN)))
	}
	if !f.After.IsZero() {
		// A row value, so both backends read it as one range of the
		// (…, created_at, serial) indexes, walked backwards from the key.
		where = append(where, "(created_at, serial) < ("+param(d.Time(f.After.Created))+", "+param(f.After.Serial)+")")
	}
	q := `SELECT ` + columns + ` FROM certificates`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(` ORDER BY created_at DESC, serial DESC LIMIT %s OFFSET %s`, param(limit), param(max(f.Offset, 0)))
	return q, args
}

// LatestRequestSQL is the query of Store.LatestRequest, with the
// parameters profile, client transactionID, key SHA-256 (in that order,
// each used where it is named). The key is compared in SQL, so no row of
// another key is read back, and each half is answered from an index: the
// rows that carry the client's ID (transactions_client_id), and a row
// written before client_transaction_id existed (or by an older replica),
// found by its own ID (the primary key). One OR of both would make
// SQLite read every request of the profile.
func LatestRequestSQL(columns string, d Dialect) string {
	profile, client, key := d.Placeholder(1), d.Placeholder(2), d.Placeholder(3)
	sentBy := `(public_key_sha256 = ` + key + ` OR signer_key_sha256 = ` + key + `)`
	return `SELECT ` + columns + ` FROM (
		SELECT ` + columns + ` FROM transactions WHERE profile_id = ` + profile + ` AND client_transaction_id = ` + client + ` AND ` + sentBy + `
		UNION ALL
		SELECT ` + columns + ` FROM transactions WHERE profile_id = ` + profile + ` AND transaction_id = ` + client + `
			AND client_transaction_id IS NULL AND ` + sentBy + `
	) AS r ORDER BY created_at DESC, transaction_id DESC LIMIT 1`
}

// InList is the placeholders of an SQL IN list of values, each bound
// through param.
func InList(values []string, param func(any) string) string {
	ps := make([]string, len(values))
	for i, v := range values {
		ps[i] = param(v)
	}
	return strings.Join(ps, ", ")
}
