// Package events tells operators' systems what happened: certificates
// issued, renewed, revoked or about to expire, requests waiting for
// approval, and devices failing repeatedly.
//
// Events are derived from the hash-chained audit log, which every
// replica already writes inside the transaction that makes the change.
// Each sink follows the log with a cursor kept in the database; one
// replica at a time holds a sink's lease and delivers in order. The
// cursor moves only after a delivery succeeded, so delivery is
// at-least-once; every event carries a stable ID for the receiver to
// drop duplicates.
package events

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/store"
)

// Event types.
const (
	CertificateIssued   = "certificate.issued"
	CertificateRenewed  = "certificate.renewed"
	CertificateRevoked  = "certificate.revoked"
	CertificateExpiring = "certificate.expiring"
	RequestPending      = "request.pending"
	RequestRejected     = "request.rejected"
	EnrollmentFailed    = "enrollment.failed"
	RepeatedFailures    = "enrollment.repeated_failures"
	// AuditCheckpoint carries a signed checkpoint of the audit log (see
	// package audit): the copy a sink keeps is what shows events later cut
	// from the end of the log.
	AuditCheckpoint = "audit.checkpoint"
)

// Types lists every event type, for validating configuration.
var Types = []string{CertificateIssued, CertificateRenewed, CertificateRevoked, CertificateExpiring,
	RequestPending, RequestRejected, EnrollmentFailed, RepeatedFailures, AuditCheckpoint}

// Event is what a sink receives.
type Event struct {
	// ID is stable across retries and replicas: the idempotency key.
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Profile string    `json:"profile,omitempty"`
	// Serial is the certificate's serial number in hex, when one is concerned.
	Serial        string            `json:"serial,omitempty"`
	Subject       string            `json:"subject,omitempty"`
	TransactionID string            `json:"transaction_id,omitempty"`
	Actor         string            `json:"actor,omitempty"`
	Details       map[string]string `json:"details,omitempty"`
}

// FromAudit maps an audit event to the event it announces; ok is false
// for audit events that are not announced (token changes, sign-ins...).
func FromAudit(a store.AuditEvent) (Event, bool) {
	var typ string
	switch {
	case a.Action == "enroll" && a.Outcome == "issued":
		typ = CertificateIssued
		if a.Details["renewed"] != "" {
			typ = CertificateRenewed
		}
	case a.Action == "enroll" && a.Outcome == "pending":
		typ = RequestPending
	case a.Action == "enroll" && a.Outcome == "rejected":
		typ = EnrollmentFailed
	case a.Action == "enroll.lockout", a.Action == "ndes.lockout", a.Action == "jamf.lockout":
		// Failed challenges (enroll) or failed MDM authentications (the
		// NDES page, the Jamf webhook) used up an address's budget.
		typ = RepeatedFailures
	case a.Action == "certificate.revoke" && a.Outcome == "ok":
		typ = CertificateRevoked
	case a.Action == "certificate.expiring":
		typ = CertificateExpiring
	case a.Action == "request.reject" && a.Outcome == "ok":
		typ = RequestRejected
	case a.Action == AuditCheckpoint: // the audit action has the same name
		typ = AuditCheckpoint
	default:
		return Event{}, false
	}
	id := fmt.Sprintf("evt-%d", a.Seq)
	if len(a.Hash) >= 6 {
		// The hash prefix keeps IDs distinct across deployments.
		id += "-" + hex.EncodeToString(a.Hash[:6])
	}
	e := Event{ID: id, Type: typ, Time: a.Time, Actor: a.Actor, Details: map[string]string{}}
	for k, v := range a.Details {
		switch k {
		case "profile":
			e.Profile = v
		case "subject":
			e.Subject = v
		case "transaction_id", "tx":
			e.TransactionID = v
		case "reason":
			if n, err := strconv.Atoi(v); err == nil && typ == CertificateRevoked {
				// Revocations audited before reasons were written by name.
				v = ca.ReasonName(n)
			}
			e.Details[k] = v
		default:
			e.Details[k] = v
		}
	}
	if kind, v, ok := strings.Cut(a.Object, ":"); ok {
		switch kind {
		case "certificate":
			e.Serial = v
		case "transaction":
			e.TransactionID = v
		}
	}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	return e, true
}

// Filter selects the events a sink receives.
type Filter struct {
	// Types to deliver; empty means all.
	Types []string
	// Profiles to deliver for; empty means all (events without a profile
	// always pass).
	Profiles []string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e Event) bool {
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
		return false
	}
	if len(f.Profiles) > 0 && e.Profile != "" && !slices.Contains(f.Profiles, e.Profile) {
		return false
	}
	return true
}
