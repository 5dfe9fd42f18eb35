package admin

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/store"
)

// CertView describes an issued certificate.
type CertView struct {
	Serial        string    `json:"serial"`
	Profile       string    `json:"profile"`
	TransactionID string    `json:"transaction_id"`
	Subject       string    `json:"subject"`
	SANs          []string  `json:"sans"`
	NotBefore     time.Time `json:"not_before"`
	NotAfter      time.Time `json:"not_after"`
	Status        string    `json:"status"`
	Created       time.Time `json:"created"`
	// RenewedSerial is the certificate this one renewed.
	RenewedSerial string `json:"renewed_serial,omitempty"`
	// RevokedAt and RevocationReason (the RFC 5280 name, e.g.
	// keyCompromise) once revoked.
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
	RevocationReason string    `json:"revocation_reason,omitempty"`
	// Upstream names the upstream CA that issued the certificate (RA
	// mode); absent for a local CA's.
	Upstream string `json:"upstream,omitempty"`
	// DER is the certificate; the HTTP API serves it through .pem/.der URLs.
	DER []byte `json:"-"`
}

// Listing page sizes: a listing without a limit answers DefaultListLimit
// rows; one asking for more than MaxListLimit is refused, not cut short.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// MaxListOffset bounds an offset: deeper pages are read by cursor,
	// which the database finds by index instead of counting rows.
	MaxListOffset = 100000
	// maxSerialFilters bounds the serials one listing may name.
	maxSerialFilters = 100
)

// CertPage is a page of a certificate listing. Next is the key of its
// last row when more may follow (list again with After: Next), zero on
// the last page.
type CertPage struct {
	Certificates []CertView
	Next         store.CertificateKey
}

// CertExpired is the status of a certificate that is not revoked and
// whose notAfter has passed; listings take it as a filter too (the store
// keeps such a certificate as valid).
const CertExpired = "expired"

// certView describes c at now: an unrevoked certificate past its notAfter
// is CertExpired.
func certView(c store.Certificate, now time.Time) CertView {
	sans := c.SANs
	if sans == nil {
		sans = []string{}
	}
	v := CertView{Serial: c.Serial, Profile: c.ProfileID, TransactionID: c.TransactionID, Subject: c.Subject, SANs: sans,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Status: c.Status, Created: c.Created, DER: c.DER,
		RenewedSerial: c.RenewedSerial, RevokedAt: c.RevokedAt, Upstream: c.Upstream}
	if c.Status == store.CertRevoked {
		v.RevocationReason = ca.ReasonName(c.RevocationReason)
	}
	if c.Status == store.CertValid && !now.Before(c.NotAfter) {
		v.Status = CertExpired
	}
	return v
}

func (b *bound) ListCertificates(ctx context.Context, f store.CertificateFilter) (CertPage, error) {
	switch {
	case f.Limit < 0 || f.Limit > MaxListLimit:
		return CertPage{}, fmt.Errorf("%w: limit %d is over the maximum of %d; follow the next cursor for more", ErrInvalid, f.Limit, MaxListLimit)
	case f.Limit == 0:
		f.Limit = DefaultListLimit
	}
	if f.Offset > 0 && !f.After.IsZero() {
		return CertPage{}, fmt.Errorf("%w: a cursor and an offset together", ErrInvalid)
	}
	if f.Offset < 0 || f.Offset > MaxListOffset {
		return CertPage{}, fmt.Errorf("%w: offset %d is outside 0..%d; follow the next cursor to page deeper", ErrInvalid, f.Offset, MaxListOffset)
	}
	f, err := b.certFilter(ctx, f)
	if err != nil {
		return CertPage{}, err
	}
	// One row more than the page says whether another page follows, so
	// the last page has no cursor (and no empty page after it).
	want := f.Limit
	f.Limit++
	rows, err := b.s.Store.ListCertificates(ctx, f)
	if err != nil {
		return CertPage{}, err
	}
	var page CertPage
	if len(rows) > want {
		rows = rows[:want]
		last := rows[want-1]
		page.Next = store.CertificateKey{Created: last.Created, Serial: last.Serial}
		if f.Order == store.CertOrderExpiry {
			page.Next.Created = last.NotAfter
		}
	}
	now := b.s.Now()
	page.Certificates = make([]CertView, 0, len(rows))
	for _, r := range rows {
		page.Certificates = append(page.Certificates, certView(r, now))
	}
	return page, nil
}

// CountCertificates counts the certificates f selects (as
// ListCertificates does), over all pages.
func (b *bound) CountCertificates(ctx context.Context, f store.CertificateFilter) (int, error) {
	f, err := b.certFilter(ctx, f)
	if err != nil {
		return 0, err
	}
	return b.s.Store.CountCertificates(ctx, f)
}

// certFilter authorises a listing and makes f the store's filter: a
// token limited to profiles lists theirs, in the query, so that pages
// and counts are right; the status expired is valid in the store past
// its notAfter, and valid only before it.
func (b *bound) certFilter(ctx context.Context, f store.CertificateFilter) (store.CertificateFilter, error) {
	if err := b.check(ctx, ActRead, f.ProfileID); err != nil {
		return f, err
	}
	now := b.s.Now()
	switch f.Status {
	case "", store.CertRevoked:
	case CertExpired:
		f.Status = store.CertValid
		if f.ExpiringBefore.IsZero() || now.Before(f.ExpiringBefore) {
			f.ExpiringBefore = now
		}
	case store.CertValid:
		if f.ExpiringAfter.Before(now) {
			f.ExpiringAfter = now
		}
	default:
		return f, fmt.Errorf("%w: status %q: want valid, expired or revoked", ErrInvalid, f.Status)
	}
	switch f.Order {
	case store.CertOrderNewest, store.CertOrderExpiry:
	default:
		return f, fmt.Errorf("%w: sort %q: want newest or expiry", ErrInvalid, f.Order)
	}
	if len(f.SerialPrefixes) > maxSerialFilters {
		return f, fmt.Errorf("%w: %d serials in one listing; at most %d", ErrInvalid, len(f.SerialPrefixes), maxSerialFilters)
	}
	for _, p := range f.SerialPrefixes {
		if p == "" || strings.Trim(p, "0123456789abcdef") != "" {
			return f, fmt.Errorf("%w: serial prefix %q is not lower-case hex", ErrInvalid, p)
		}
	}
	f.Profiles = b.a.Profiles
	return f, nil
}

// certificate authorises act on a certificate and fetches it. One of a
// profile beyond a scoped token's is not found, exactly like an unknown
// serial (same status, same body): the token learns nothing of other
// profiles. A refused change is still audited for the operator.
func (b *bound) certificate(ctx context.Context, act Action, serial string) (store.Certificate, error) {
	if err := b.check(ctx, act, ""); err != nil {
		return store.Certificate{}, err
	}
	c, err := b.s.Store.GetCertificate(ctx, normalSerial(serial))
	if err != nil {
		return store.Certificate{}, err
	}
	if !b.a.Allowed(act, c.ProfileID) {
		if act != ActRead {
			b.audit(ctx, "authz", "profile:"+c.ProfileID, "denied", map[string]string{"action": actionNames[act], "role": string(b.a.Role),
				"serial": c.Serial, "reason": "a certificate of a profile beyond the token's"})
		}
		return store.Certificate{}, fmt.Errorf("certificate %s: %w", c.Serial, ErrNotFound)
	}
	return c, nil
}

func (b *bound) GetCertificate(ctx context.Context, serial string) (CertView, error) {
	c, err := b.certificate(ctx, ActRead, serial)
	if err != nil {
		return CertView{}, err
	}
	return certView(c, b.s.Now()), nil
}

// revocationReason is the RFC 5280 code of a reason name ("": unspecified).
func revocationReason(reason string) (int, error) {
	code, ok := ca.ReasonCode(reason)
	if reason == "" {
		code, ok = ca.ReasonUnspecified, true
	}
	if !ok {
		return 0, fmt.Errorf("%w: reason %q is not an RFC 5280 reason (%s)", ErrInvalid, reason, strings.Join(ca.ReasonNames(), ", "))
	}
	return code, nil
}

func (b *bound) Revoke(ctx context.Context, serial, reason string) (CertView, error) {
	code, err := revocationReason(reason)
	if err != nil {
		return CertView{}, err
	}
	c, err := b.certificate(ctx, ActOperate, serial)
	if err != nil {
		return CertView{}, err
	}
	if b.s.Revocation == nil {
		return CertView{}, b.s.unavailable("revocation is")
	}
	c, err = b.s.Revocation.Revoke(ctx, c.Serial, code, b.a.Name)
	if err != nil {
		return CertView{}, err
	}
	return certView(c, b.s.Now()), nil
}

func (b *bound) RevokeSubject(ctx context.Context, subject, reason string) ([]CertView, error) {
	if subject == "" {
		return nil, fmt.Errorf("%w: a subject is required", ErrInvalid)
	}
	code, err := revocationReason(reason)
	if err != nil {
		return nil, err
	}
	if err := b.check(ctx, ActOperate, ""); err != nil {
		return nil, err
	}
	// A token limited to profiles revokes within them: the query holds
	// only their certificates, so that another profile's neither shows
	// (the answer is the same whether the subject exists there or not)
	// nor blocks the revocation.
	list, err := b.s.Store.ListCertificates(ctx, store.CertificateFilter{Subject: subject, Status: store.CertValid, Profiles: b.a.Profiles, Limit: 100000})
	if err != nil {
		return nil, err
	}
	// The filter matches substrings; revocation needs the exact subject.
	list = slices.DeleteFunc(list, func(c store.Certificate) bool { return c.Subject != subject })
	// All or nothing: every certificate is authorised before the first is
	// revoked.
	for _, c := range list {
		if err := b.check(ctx, ActOperate, c.ProfileID); err != nil {
			return nil, err
		}
	}
	if b.s.Revocation == nil {
		return nil, b.s.unavailable("revocation is")
	}
	out := []CertView{}
	for _, c := range list {
		revoked, err := b.s.Revocation.Revoke(ctx, c.Serial, code, b.a.Name)
		if err != nil {
			return out, err
		}
		out = append(out, certView(revoked, b.s.Now()))
	}
	return out, nil
}

// SerialPrefixes reads a serial as operators paste it, whole or its
// beginning: hex with or without colons, spaces or a 0x prefix, in either
// case, or decimal. It answers the lower-case hex prefixes to search for
// (store.CertificateFilter.SerialPrefixes): digits alone may be hex or
// decimal, so both.
func SerialPrefixes(s string) ([]string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	hexOnly := strings.HasPrefix(s, "0x")
	s = strings.TrimPrefix(s, "0x")
	if strings.ContainsAny(s, ": -") {
		hexOnly = true
		s = strings.NewReplacer(":", "", " ", "", "-", "").Replace(s)
	}
	bad := fmt.Errorf("%w: serial: want hex (with or without colons, spaces or 0x) or decimal digits", ErrInvalid)
	if s == "" || len(s) > 128 {
		return nil, bad
	}
	if strings.Trim(s, "0123456789abcdef") != "" {
		return nil, bad
	}
	hex := strings.TrimLeft(s, "0")
	if hex == "" {
		hex = "0"
	}
	out := []string{hex}
	if !hexOnly && strings.Trim(s, "0123456789") == "" {
		if n, ok := new(big.Int).SetString(s, 10); ok {
			if d := n.Text(16); d != hex {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// normalSerial accepts serials as operators paste them: colons, leading
// zeros, upper case.
func normalSerial(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return s
}
