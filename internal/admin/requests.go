package admin

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/store"
)

// RequestView describes an enrollment request (transaction).
type RequestView struct {
	Profile       string   `json:"profile"`
	TransactionID string   `json:"transaction_id"`
	Status        string   `json:"status"`
	Subject       string   `json:"subject"`
	SANs          []string `json:"sans"`
	Serial        string   `json:"serial,omitempty"`
	DecidedBy     string   `json:"decided_by,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	// WaitsFor says, while it is pending, what for: "approval" (an
	// operator's) or "upstream" (the profile's upstream CA: held while it
	// could not be asked, or pending there; the device's polls ask it).
	WaitsFor string    `json:"waits_for,omitempty"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	// KeyType is the requested key's algorithm and size, e.g. RSA-2048.
	KeyType string `json:"key_type,omitempty"`
	// Extensions names the extensions the request asks for (OIDs when
	// unknown).
	Extensions []string `json:"extensions"`
	// RequestedBy is who sent the request: the client's address as scepd
	// saw it (device:ADDRESS), from the audit trail.
	RequestedBy string `json:"requested_by,omitempty"`
	// CSR is the PKCS#10 request (DER) and Preview, while it is pending,
	// what approving it would issue now; only GetRequest answers them.
	CSR     []byte        `json:"csr,omitempty"`
	Preview *PolicyResult `json:"preview,omitempty"`
}

// RequestPage is a page of a newest-first request listing; Next, when
// set, continues it.
type RequestPage struct {
	Requests []RequestView
	Next     store.TransactionKey
}

// extensionNames names the extensions requests commonly carry.
var extensionNames = map[string]string{
	"2.5.29.17": "subjectAltName", "2.5.29.15": "keyUsage", "2.5.29.37": "extKeyUsage", "2.5.29.19": "basicConstraints",
	"2.5.29.14": "subjectKeyIdentifier", "1.3.6.1.4.1.311.20.2": "msCertificateTemplateName", "1.3.6.1.4.1.311.21.7": "msCertificateTemplate",
}

func requestView(t store.Transaction) RequestView {
	v := RequestView{Profile: t.ProfileID, TransactionID: t.TransactionID, Status: t.Status, Serial: t.CertSerial, DecidedBy: t.DecidedBy,
		Reason: t.Reason, Created: t.Created, Expires: t.Expires, SANs: []string{}, Extensions: []string{}}
	switch {
	case t.Status != store.StatusPending:
	case t.UpstreamPoll != nil:
		v.WaitsFor = "upstream"
	default:
		v.WaitsFor = "approval"
	}
	if csr, err := x509.ParseCertificateRequest(t.CSRDER); err == nil {
		v.Subject = csr.Subject.String()
		v.SANs = ca.CSRSANs(csr)
		if v.SANs == nil {
			v.SANs = []string{}
		}
		v.KeyType = ca.PublicKeyAlgorithm(csr.PublicKey)
		for _, e := range csr.Extensions {
			name := extensionNames[e.Id.String()]
			if name == "" {
				name = e.Id.String()
			}
			v.Extensions = append(v.Extensions, name)
		}
	}
	return v
}

// ListRequestPage lists requests newest first, f.Limit (default
// DefaultListLimit, at most MaxListLimit) at a time from f.Before.
func (b *bound) ListRequestPage(ctx context.Context, f store.TransactionFilter) (RequestPage, error) {
	if err := b.check(ctx, ActRead, f.ProfileID); err != nil {
		return RequestPage{}, err
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxListLimit:
		return RequestPage{}, fmt.Errorf("%w: limit %d is over the maximum of %d; follow the next cursor for more", ErrInvalid, f.Limit, MaxListLimit)
	case f.Limit == 0:
		f.Limit = DefaultListLimit
	}
	if f.Status == "" {
		f.Status = store.StatusPending
	}
	f.Newest, f.Profiles, f.ClientTransactionID = true, b.a.Profiles, ""
	want := f.Limit
	f.Limit++
	list, err := b.s.Store.ListTransactions(ctx, f)
	if err != nil {
		return RequestPage{}, err
	}
	page := RequestPage{Requests: []RequestView{}}
	if len(list) > want {
		list = list[:want]
		page.Next = store.TransactionKey{Created: list[want-1].Created, TransactionID: list[want-1].TransactionID}
	}
	for _, t := range list {
		v := requestView(t)
		if v.RequestedBy, err = b.s.Store.RequestedBy(ctx, t.ProfileID, t.TransactionID); err != nil {
			return RequestPage{}, err
		}
		page.Requests = append(page.Requests, v)
	}
	return page, nil
}

// GetRequest shows one request with its CSR.
func (b *bound) GetRequest(ctx context.Context, profile, transactionID string) (RequestView, error) {
	if err := b.check(ctx, ActRead, profile); err != nil {
		return RequestView{}, err
	}
	t, err := b.s.Store.GetTransaction(ctx, profile, transactionID)
	if err != nil {
		return RequestView{}, err
	}
	v := requestView(t)
	v.CSR = t.CSRDER
	if v.RequestedBy, err = b.s.Store.RequestedBy(ctx, t.ProfileID, t.TransactionID); err != nil {
		return RequestView{}, err
	}
	if t.Status == store.StatusPending {
		csr, err := x509.ParseCertificateRequest(t.CSRDER)
		if err != nil {
			return RequestView{}, fmt.Errorf("admin: stored CSR of %q: %w", transactionID, err)
		}
		res, err := b.preview(ctx, profile, csr, true)
		if err != nil {
			return RequestView{}, err
		}
		v.Preview = &res
	}
	return v, nil
}

func (b *bound) ListRequests(ctx context.Context, profile, status string) ([]RequestView, error) {
	if err := b.check(ctx, ActRead, profile); err != nil {
		return nil, err
	}
	if status == "" {
		status = store.StatusPending
	}
	list, err := b.s.Store.ListTransactions(ctx, store.TransactionFilter{ProfileID: profile, Profiles: b.a.Profiles, Status: status, Limit: 1000})
	if err != nil {
		return nil, err
	}
	out := []RequestView{}
	for _, t := range list {
		if b.a.Allowed(ActRead, t.ProfileID) {
			out = append(out, requestView(t))
		}
	}
	return out, nil
}

func (b *bound) decider(ctx context.Context, profile string) (*enroll.Profile, error) {
	if err := b.check(ctx, ActOperate, profile); err != nil {
		return nil, err
	}
	if b.s.Profile == nil || b.s.Enroll == nil {
		return nil, b.s.unavailable("approvals are")
	}
	p := b.s.Profile(profile)
	if p == nil {
		return nil, fmt.Errorf("profile %q: %w", profile, store.ErrNotFound)
	}
	return p, nil
}

func (b *bound) Approve(ctx context.Context, profile, transactionID string) (CertView, error) {
	p, err := b.decider(ctx, profile)
	if err != nil {
		return CertView{}, err
	}
	cert, err := b.s.Enroll.Approve(ctx, p, transactionID, b.a.Name)
	if err != nil {
		if errors.Is(err, enroll.ErrNotApprovable) || errors.Is(err, enroll.ErrUpstreamHeld) {
			return CertView{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if errors.Is(err, store.ErrConflict) {
			return CertView{}, b.decided(ctx, profile, transactionID, err)
		}
		return CertView{}, err
	}
	c, err := b.s.Store.GetCertificate(ctx, cert.SerialNumber.Text(16))
	if err != nil {
		return CertView{}, err
	}
	return certView(c, b.s.Now()), nil
}

func (b *bound) Reject(ctx context.Context, profile, transactionID, reason string) error {
	if err := checkLen("the reason", reason, maxFreeText); err != nil {
		return err
	}
	p, err := b.decider(ctx, profile)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "rejected by an operator"
	}
	err = b.s.Enroll.Reject(ctx, p, transactionID, b.a.Name, reason)
	if errors.Is(err, store.ErrNotFound) { // no such request, or not pending
		return b.decided(ctx, profile, transactionID, err)
	}
	return err
}

// DecidedError is the answer to deciding a request that is no longer
// pending: another operator, a second click or a stale page came first.
// It is a store.ErrConflict.
type DecidedError struct {
	TransactionID string
	// Status is the request's state: issued or rejected.
	Status string
	// By is who decided, empty when scepd did (an expired request).
	By     string
	At     time.Time
	Reason string
}

func (e *DecidedError) Error() string {
	verb := "approved"
	if e.Status == store.StatusRejected {
		verb = "rejected"
	}
	msg := fmt.Sprintf("request %s was already %s", e.TransactionID, verb)
	if e.By != "" {
		msg += " by " + e.By
	}
	msg += " at " + e.At.UTC().Format("2006-01-02 15:04:05 UTC")
	if e.Status == store.StatusRejected && e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

func (e *DecidedError) Unwrap() error { return store.ErrConflict }

// decided explains why deciding a request failed with err: when the
// request exists and is no longer pending, a DecidedError naming who
// decided it and when; otherwise err.
func (b *bound) decided(ctx context.Context, profile, transactionID string, err error) error {
	tx, gerr := b.s.Store.GetTransaction(ctx, profile, transactionID)
	if gerr != nil || tx.Status == store.StatusPending {
		return err
	}
	return &DecidedError{TransactionID: transactionID, Status: tx.Status, By: tx.DecidedBy, At: tx.Updated, Reason: tx.Reason}
}
