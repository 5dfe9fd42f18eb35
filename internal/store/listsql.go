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
	// JSONText is the text of a key of a JSON object held in a text column.
	JSONText func(column, key string) string
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
	b := &binder{d: d}
	param := b.bind
	where := certWhere(f, d, param)
	order := ` ORDER BY created_at DESC, serial DESC`
	if !f.After.IsZero() {
		// A row value, so both backends read it as one range of the
		// (…, created_at, serial) indexes, walked backwards from the key.
		cmp := "(created_at, serial) < ("
		if f.Order == CertOrderExpiry {
			cmp = "(not_after, serial) > ("
		}
		where = append(where, cmp+param(d.Time(f.After.Created))+", "+param(f.After.Serial)+")")
	}
	if f.Order == CertOrderExpiry {
		order = ` ORDER BY not_after, serial`
	}
	q := `SELECT ` + columns + ` FROM certificates`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += order + fmt.Sprintf(` LIMIT %s OFFSET %s`, param(limit), param(max(f.Offset, 0)))
	return q, b.args
}

// CountCertificatesSQL counts what ListCertificatesSQL lists, over all
// pages.
func CountCertificatesSQL(f CertificateFilter, d Dialect) (string, []any) {
	b := &binder{d: d}
	where := certWhere(f, d, b.bind)
	q := `SELECT count(*) FROM certificates`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	return q, b.args
}

// binder collects a query's parameters in order.
type binder struct {
	d    Dialect
	args []any
}

// bind adds v and returns its placeholder.
func (b *binder) bind(v any) string {
	b.args = append(b.args, v)
	return b.d.Placeholder(len(b.args))
}

// certWhere is the predicates of f but its page (Limit, Offset, After),
// each parameter bound through param.
func certWhere(f CertificateFilter, d Dialect, param func(any) string) []string {
	var where []string
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
	if len(f.SerialPrefixes) > 0 {
		var or []string
		for _, p := range f.SerialPrefixes {
			// Hex digits only (the caller's promise), so no LIKE
			// wildcard can be in p.
			or = append(or, "serial LIKE "+param(p+"%"))
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	return where
}

// ListTransactionsSQL builds the query of Store.ListTransactions for f.
func ListTransactionsSQL(columns string, f TransactionFilter, d Dialect) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	b := &binder{d: d}
	var where []string
	if f.ProfileID != "" || f.ClientTransactionID != "" {
		where = append(where, "profile_id = "+b.bind(f.ProfileID))
	}
	if f.Status != "" {
		where = append(where, "status = "+b.bind(f.Status))
	}
	if f.ClientTransactionID != "" {
		// A row written before client_transaction_id existed (or by an
		// older replica) is found by its own ID.
		id := b.bind(f.ClientTransactionID)
		where = append(where, "(client_transaction_id = "+id+" OR (client_transaction_id IS NULL AND transaction_id = "+id+"))")
	}
	if len(f.Profiles) > 0 {
		where = append(where, "profile_id IN ("+InList(f.Profiles, b.bind)+")")
	}
	order := ` ORDER BY created_at, transaction_id`
	if f.Newest {
		order = ` ORDER BY created_at DESC, transaction_id DESC`
		if !f.Before.IsZero() {
			where = append(where, "(created_at, transaction_id) < ("+b.bind(d.Time(f.Before.Created))+", "+b.bind(f.Before.TransactionID)+")")
		}
	}
	q := `SELECT ` + columns + ` FROM transactions`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	return q + order + ` LIMIT ` + b.bind(limit), b.args
}

// PendingChallengesSQL lists pending one-time challenges: parameters
// profile, now, limit; columns hash, created_at, expires_at, reserved_by,
// bound_to, note.
func PendingChallengesSQL(d Dialect) string {
	return `SELECT hash, created_at, expires_at, reserved_by, bound_to, note FROM challenges
		WHERE profile_id = ` + d.Placeholder(1) + ` AND used_at IS NULL AND expires_at > ` + d.Placeholder(2) + `
		ORDER BY created_at DESC LIMIT ` + d.Placeholder(3)
}

// CancelChallengeSQL deletes a pending challenge no request holds:
// parameters profile, hash.
func CancelChallengeSQL(d Dialect) string {
	return `DELETE FROM challenges WHERE profile_id = ` + d.Placeholder(1) + ` AND hash = ` + d.Placeholder(2) + `
		AND used_at IS NULL AND reserved_by IS NULL`
}

// EnrollFailuresSQL counts the enrollments refused since a time, by
// failInfo name and reason, most first; of these profiles when any are
// given. Columns fail_info, reason, count.
func EnrollFailuresSQL(since time.Time, profiles []string, d Dialect) (string, []any) {
	b := &binder{d: d}
	q := `SELECT COALESCE(` + d.JSONText("details", "fail_info") + `, ''), COALESCE(` + d.JSONText("details", "reason") + `, ''), count(*)
		FROM audit_events WHERE action = 'enroll' AND outcome = 'rejected' AND at >= ` + b.bind(d.Time(since))
	if len(profiles) > 0 {
		q += ` AND profile IN (` + InList(profiles, b.bind) + `)`
	}
	return q + ` GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 100`, b.args
}

// RequestedBySQL finds the actor of a request's first enrollment audit
// event (device:ADDRESS): parameters object (transaction:ID), profile. An
// issued enrollment's event names its certificate, never a transaction;
// saying so lets the partial index audit_events_requests, which leaves
// issued enrollments out, answer.
func RequestedBySQL(d Dialect) string {
	return `SELECT actor FROM audit_events WHERE object = ` + d.Placeholder(1) + ` AND action = 'enroll' AND outcome <> 'issued'
		AND profile = ` + d.Placeholder(2) + ` ORDER BY seq LIMIT 1`
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
