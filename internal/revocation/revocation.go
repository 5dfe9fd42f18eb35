// Package revocation keeps revocation status published: it revokes,
// signs numbered CRLs, and answers OCSP (RFC 6960) from the store.
//
// A CRL is signed when it is asked for and the stored one is stale: none
// yet, half its lifetime gone, or older than the CA's revocation
// generation, which every revocation bumps in the database (whoever
// revokes: the API, the CLI, the console, renewal's revoke_old). So every
// replica serves a new revocation on its next request, without any path
// having to publish.
package revocation

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/store"
)

// Store is the persistence revocation needs.
type Store interface {
	GetCertificate(ctx context.Context, serial string) (store.Certificate, error)
	RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time, keySHA256 []byte, audit store.AuditEvent) error
	ListRevoked(ctx context.Context, caID string) ([]store.Revoked, error)
	NextCRLNumber(ctx context.Context, caID string, gen, floor int64) (int64, error)
	SaveCRL(ctx context.Context, c store.CRL) error
	LatestCRL(ctx context.Context, caID string) (store.CRL, error)
	RevocationGeneration(ctx context.Context, caID string) (int64, error)
}

// Service publishes revocation status.
type Service struct {
	Store Store
	// CAs returns the CAs currently loaded (with their keys).
	CAs func() map[string]*ca.CA
	Now func() time.Time
	Log *slog.Logger
	// Lifetime of a CRL (nextUpdate - thisUpdate). Default 24h; a new one
	// is signed once half of it has passed.
	Lifetime time.Duration

	// signing lets one request per replica sign a stale CRL while the
	// others wait for it instead of signing the same list again.
	signing sync.Mutex
	// answers are the OCSP answers of the current period (answerPeriod).
	answers answers
	// last is the CRL served last per CA, served again while the
	// database is unavailable, until its nextUpdate.
	lastMu sync.Mutex
	last   map[string]store.CRL
}

// UpstreamError refuses revoking a certificate an upstream CA issued (RA
// mode): only that CA can revoke it.
type UpstreamError struct {
	Serial, Upstream string
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("certificate %s was issued by the upstream CA %s: scepd cannot revoke it; revoke it at that CA (see docs/guides/ra-mode.md)", e.Serial, e.Upstream)
}

// ErrUnknownCA names a CA that is not loaded.
var ErrUnknownCA = errors.New("revocation: unknown CA")

func (s *Service) lifetime() time.Duration {
	if s.Lifetime <= 0 {
		return 24 * time.Hour
	}
	return s.Lifetime
}

// Revoke revokes a certificate. The CA's next CRL request, on any
// replica, publishes it (see the package comment).
func (s *Service) Revoke(ctx context.Context, serial string, reason int, actor string) (store.Certificate, error) {
	c, err := s.Store.GetCertificate(ctx, serial)
	if err != nil {
		return c, err
	}
	if c.Upstream != "" {
		// Nothing is recorded: a revocation here would be on no CRL or
		// OCSP answer anyone checks (the upstream CA publishes those).
		return c, &UpstreamError{Serial: serial, Upstream: c.Upstream}
	}
	now := s.Now()
	details := map[string]string{"profile": c.ProfileID, "reason": ca.ReasonName(reason), "subject": c.Subject}
	var compromised []byte
	if reason == ca.ReasonKeyCompromise {
		// No certificate is issued for the key again (enroll refuses
		// it), also when this one was revoked already for another reason.
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return c, fmt.Errorf("revoke %s: its certificate: %w", serial, err)
		}
		if compromised = ca.KeyDigest(cert.PublicKey); compromised == nil {
			return c, fmt.Errorf("revoke %s: its key cannot be recorded as compromised (%T)", serial, cert.PublicKey)
		}
		details["key_sha256"] = hex.EncodeToString(compromised)
	}
	if err := s.Store.RevokeCertificate(ctx, serial, reason, now, compromised, store.AuditEvent{Time: now, Actor: actor, Action: "certificate.revoke",
		Object: "certificate:" + serial, Outcome: "ok", Details: details}); err != nil {
		return c, err
	}
	return s.Store.GetCertificate(ctx, serial)
}

// maxCRLAttempts bounds how often Refresh reads the revoked list again
// because revocations kept committing meanwhile.
const maxCRLAttempts = 5

// Refresh signs and stores a new CRL for a CA.
func (s *Service) Refresh(ctx context.Context, caID string) (store.CRL, error) {
	issuer := s.CAs()[caID]
	if issuer == nil {
		return store.CRL{}, fmt.Errorf("%w %q", ErrUnknownCA, caID)
	}
	// The generation is read before the list: the list holds at least the
	// revocations it counts, so a CRL is never taken for newer than it is.
	// Its number is taken only while the generation is still the one read
	// (else read again): numbers follow generations, so a CRL with a
	// higher number never lists less than one with a lower (two replicas
	// signing at once; a revocation committing between a list read and
	// its number).
	var gen, num int64
	var entries []ca.Revoked
	for attempt := 0; ; attempt++ {
		var err error
		if gen, err = s.Store.RevocationGeneration(ctx, caID); err != nil {
			return store.CRL{}, err
		}
		revoked, err := s.Store.ListRevoked(ctx, caID)
		if err != nil {
			return store.CRL{}, err
		}
		entries = make([]ca.Revoked, 0, len(revoked))
		for _, r := range revoked {
			n, ok := new(big.Int).SetString(r.Serial, 16)
			if !ok {
				return store.CRL{}, fmt.Errorf("revocation: stored serial %q is not hex", r.Serial)
			}
			entries = append(entries, ca.Revoked{Serial: n, At: r.At, Reason: r.Reason})
		}
		// At least the time in milliseconds: numbers keep rising past those
		// published after a backup the database was restored from (unless
		// a thousand CRLs a second ran the counter ahead of the clock).
		num, err = s.Store.NextCRLNumber(ctx, caID, gen, s.Now().UnixMilli())
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) || attempt == maxCRLAttempts-1 {
			return store.CRL{}, err
		}
	}
	now := s.Now()
	next := now.Add(s.lifetime())
	// thisUpdate a minute back, as OCSP answers and certificates' notBefore
	// are: a CRL fetched right after a revocation is not "not yet valid"
	// to a relying party whose clock is a little behind.
	this := now.Add(-time.Minute)
	der, err := issuer.CRL(entries, num, this, next)
	if err != nil {
		return store.CRL{}, err
	}
	c := store.CRL{CAID: caID, Number: num, ThisUpdate: this, NextUpdate: next, DER: der, Generation: gen}
	if err := s.Store.SaveCRL(ctx, c); err != nil {
		return store.CRL{}, err
	}
	s.Log.Info("CRL published", "ca", caID, "number", num, "revoked", len(entries))
	return c, nil
}

// CRL returns a CA's current CRL, signing a new one when there is none,
// half its lifetime has passed, or a certificate was revoked since it was
// signed. The check costs two indexed reads. When signing fails (the key's
// token is unreachable, say), the stored CRL is served until its
// nextUpdate: still valid, and better than none. So is the last CRL this
// replica served while the database is unavailable.
func (s *Service) CRL(ctx context.Context, caID string) (store.CRL, error) {
	c, err := s.crl(ctx, caID)
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	if err == nil {
		if s.last == nil {
			s.last = make(map[string]store.CRL)
		}
		s.last[caID] = c
		return c, nil
	}
	if last, ok := s.last[caID]; ok && errors.Is(err, store.ErrUnavailable) && s.Now().Before(last.NextUpdate) {
		s.Log.Warn("the database is unavailable; serving the last CRL this replica served", "ca", caID, "number", last.Number,
			"next_update", last.NextUpdate, "error", err.Error())
		return last, nil
	}
	return c, err
}

func (s *Service) crl(ctx context.Context, caID string) (store.CRL, error) {
	c, fresh, err := s.latest(ctx, caID)
	if err != nil || fresh {
		return c, err
	}
	s.signing.Lock()
	defer s.signing.Unlock()
	// Another request may have signed it while this one waited.
	if c, fresh, err = s.latest(ctx, caID); err != nil || fresh {
		return c, err
	}
	signed, err := s.Refresh(ctx, caID)
	if err != nil && c.DER != nil && s.Now().Before(c.NextUpdate) {
		s.Log.Error("signing a new CRL failed; serving the last one", "ca", caID, "number", c.Number, "error", err.Error())
		return c, nil
	}
	return signed, err
}

// latest returns the stored CRL and whether it may still be served.
func (s *Service) latest(ctx context.Context, caID string) (store.CRL, bool, error) {
	gen, err := s.Store.RevocationGeneration(ctx, caID)
	if err != nil {
		return store.CRL{}, false, err
	}
	c, err := s.Store.LatestCRL(ctx, caID)
	if errors.Is(err, store.ErrNotFound) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	return c, c.Generation >= gen && s.Now().Before(c.ThisUpdate.Add(s.lifetime()/2)), nil
}

// Run refreshes every loaded CA's CRL before it goes stale, until ctx ends.
// Several replicas may run it: CRL numbers come from the database, so they
// stay monotonic whoever signs.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for id := range s.CAs() {
			if _, err := s.CRL(ctx, id); err != nil && ctx.Err() == nil {
				s.Log.Error("CRL refresh failed", "ca", id, "error", err.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// OCSPResponse is a DER OCSP response and the validity it states: the
// times are zero for an error response (malformed, unauthorized), which
// states none.
type OCSPResponse struct {
	DER                    []byte
	ThisUpdate, NextUpdate time.Time
	// ETag is a weak validator of a signed answer: the same on every
	// replica for the same answer (see answerPeriod).
	ETag string
}

// OCSP answers a DER OCSP request for a CA (RFC 6960), signed by the CA.
// With caID "" the CA is the loaded one the request's issuer hashes name;
// for none the answer is unauthorized (§2.3: not a CA we answer for).
func (s *Service) OCSP(ctx context.Context, caID string, req []byte) (OCSPResponse, error) {
	r, err := ocsp.ParseRequest(req)
	if err != nil {
		return OCSPResponse{DER: ocsp.MalformedRequestErrorResponse}, nil
	}
	// The certificate, read once: picking among IDs of one CA needs it
	// too.
	certificate := sync.OnceValues(func() (store.Certificate, error) {
		return s.Store.GetCertificate(ctx, r.SerialNumber.Text(16))
	})
	if caID == "" {
		var ids []string
		for id, c := range s.CAs() {
			if r.HashAlgorithm.Available() && matchesIssuer(r, c) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return OCSPResponse{DER: ocsp.UnauthorizedErrorResponse}, nil
		}
		slices.Sort(ids)
		caID = ids[0]
		if len(ids) > 1 {
			// One CA, subject and key, under several IDs (imported twice,
			// certified again with its key): the one the certificate is
			// stored under answers for it.
			if c, err := certificate(); err == nil && slices.Contains(ids, c.CAID) {
				caID = c.CAID
			}
		}
	}
	issuer := s.CAs()[caID]
	if issuer == nil {
		return OCSPResponse{}, fmt.Errorf("%w %q", ErrUnknownCA, caID)
	}
	thisUpdate := answerThisUpdate(s.Now())
	tmpl := ocsp.Response{SerialNumber: r.SerialNumber, ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(time.Hour), Certificate: nil}
	if r.HashAlgorithm.Available() {
		// The CertID answered is the one asked (SHA-256 and others, not
		// always SHA-1): relying parties match it by its hash algorithm too.
		tmpl.IssuerHash = r.HashAlgorithm
	}
	// The request must name this CA (hash of its name and key).
	if !r.HashAlgorithm.Available() || !matchesIssuer(r, issuer) {
		tmpl.Status = ocsp.Unknown
	} else {
		c, err := certificate()
		switch {
		case errors.Is(err, store.ErrNotFound) || (err == nil && (c.CAID != caID || c.Upstream != "")):
			// Not this CA's: a certificate an upstream issued (RA mode)
			// is stored under the local issuer of the profile's RA, which
			// never signed it.
			tmpl.Status = ocsp.Unknown
		case err != nil:
			return OCSPResponse{}, err
		case c.Status == store.CertRevoked:
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, c.RevokedAt, c.RevocationReason
			if at := c.RevokedAt.UTC().Truncate(time.Second); at.After(thisUpdate) {
				// Revoked within this period: the answer is as of the
				// revocation, later than the period's good answer (a
				// cache keeping the newer of two keeps this one), and
				// the same on every replica (the time is the database's).
				thisUpdate = at
				tmpl.ThisUpdate, tmpl.NextUpdate = at, at.Add(time.Hour)
			}
		default:
			tmpl.Status = ocsp.Good
		}
	}
	key := newAnswerKey(issuer, r.SerialNumber, tmpl.IssuerHash, tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason, thisUpdate)
	if resp, ok := s.answers.get(key); ok {
		return resp, nil
	}
	der, err := ocsp.CreateResponse(issuer.Cert, issuer.Cert, tmpl, issuer.Signer)
	if err != nil {
		return OCSPResponse{}, err
	}
	resp := OCSPResponse{DER: der, ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate, ETag: key.etag()}
	s.answers.put(key, resp)
	return resp, nil
}

func matchesIssuer(r *ocsp.Request, issuer *ca.CA) bool {
	h := r.HashAlgorithm.New()
	h.Write(issuer.Cert.RawSubject)
	if string(h.Sum(nil)) != string(r.IssuerNameHash) {
		return false
	}
	spki, err := subjectPublicKeyBits(issuer.Cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return false
	}
	h = r.HashAlgorithm.New()
	h.Write(spki)
	return string(h.Sum(nil)) == string(r.IssuerKeyHash)
}
