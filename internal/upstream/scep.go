// Package upstream obtains certificates from a CA scepd does not hold (RA
// mode): scepd has authorised the device and forwards its CSR. SCEP is the
// first kind: scepd is a SCEP client of the upstream CA. Each upstream is
// an enroll.Issuer.
package upstream

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/slot"
)

// DefaultTimeout bounds one exchange with an upstream, polling included.
// It stays below the HTTP server's 30s write timeout, so the device
// hears the FAILURE.
const DefaultTimeout = 20 * time.Second

// SCEPConfig describes one SCEP upstream.
type SCEPConfig struct {
	URL string
	// Fingerprint is the SHA-256 of the upstream CA certificate's DER; nil
	// trusts whatever GetCACert returns (loopback tests only: config
	// validation requires a pin elsewhere).
	Fingerprint []byte
	// Timeout bounds one exchange (discovery and a PKCSReq or CertPoll).
	Timeout time.Duration
	// HTTP is the client to use; nil gets one without its own timeout
	// (the request's context bounds each exchange).
	HTTP *http.Client
	// Observe, when set, hears every exchange: outcome is "issued",
	// "failed" or "pending", for metrics.
	Observe func(upstream, outcome string, took time.Duration)
	// Now is the clock of the circuit breaker; nil means time.Now.
	Now func() time.Time
	// Signer signs the PKCSReqs and CertPolls sent upstream; replies are
	// encrypted to it. It is the configured RA credential (LoadCredential)
	// or the profile's requester certificate (RequesterCertificate). An
	// upstream without one discovers but does not issue.
	Signer client.Requester
	// SignerErr, when Signer is missing, says why (a credential the CLI
	// could not read); Issue and Poll fail with it.
	SignerErr error
	// MaxInFlight bounds the exchanges with the upstream at once (a
	// request waiting for the upstream gives back its processing slot, so
	// nothing else bounds them); more wait within their timeout for one
	// to finish. 0 means DefaultMaxInFlight.
	MaxInFlight int
}

// DefaultMaxInFlight is the exchanges with one upstream at once.
const DefaultMaxInFlight = 16

// The circuit breaker: after BreakAfter failures in a row to reach the
// upstream (down, slow, HTTP errors; not a refusal), requests fail at once
// for BreakFor, then one is let through to try again.
const (
	BreakAfter = 5
	BreakFor   = 30 * time.Second
)

// SCEP is an upstream SCEP CA. It signs its requests with the
// configured signer (SCEPConfig.Signer); safe for concurrent use.
type SCEP struct {
	name    string
	cfg     SCEPConfig
	client  *client.Client
	signer  client.Requester
	timeout time.Duration
	// inflight holds a token per exchange in progress (MaxInFlight).
	inflight chan struct{}

	mu sync.Mutex
	// disc is what the last discovery found, at discAt; asked again after
	// DiscoveryTTL, and after an exchange that failed otherwise than by
	// the upstream's answer (it may have renewed its RA certificate).
	disc   *Discovery
	discAt time.Time
	// failures in a row, and until when the breaker is open.
	failures  int
	openUntil time.Time
}

// Discovery is what GetCACaps and GetCACert told of an upstream.
type Discovery struct {
	Caps []string
	// CA is the pinned CA certificate; Chain the CA certificates GetCACert
	// returned, CA first.
	CA        *x509.Certificate
	Chain     []*x509.Certificate
	Recipient *x509.Certificate
	// Signers are GetCACert's other RA certificates that may sign: an
	// NDES signs with one and decrypts with another.
	Signers []*x509.Certificate
}

var _ enroll.Issuer = (*SCEP)(nil)

// NewSCEP prepares an upstream; it does not contact it.
func NewSCEP(cfg SCEPConfig) (*SCEP, error) {
	c := client.New(cfg.URL)
	c.HTTP = cfg.HTTP
	if c.HTTP == nil {
		c.HTTP = &http.Client{}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := cfg.MaxInFlight
	if n <= 0 {
		n = DefaultMaxInFlight
	}
	return &SCEP{name: Name(cfg.URL), cfg: cfg, client: c, signer: cfg.Signer, timeout: timeout, inflight: make(chan struct{}, n)}, nil
}

// Name is how certificates obtained from the SCEP upstream at raw are
// marked.
//
// It is stored with every certificate the upstream issues and labels its
// metrics, so a user and password in the URL (refused in configuration
// since; a profile stored before may still hold them) are left out.
func Name(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		raw = u.String()
	}
	return "scep:" + raw
}

// Name is the upstream's name (see the function Name).
func (u *SCEP) Name() string { return u.name }

// Fingerprint formats a certificate's pin: "sha256:<hex>".
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Discover asks the upstream for its capabilities and CA certificates and
// checks the pin. It caches nothing (see Issue).
func (u *SCEP) Discover(ctx context.Context) (*Discovery, error) {
	caps, err := u.client.GetCACaps(ctx)
	if err != nil {
		return nil, fmt.Errorf("GetCACaps: %w", err)
	}
	certs, err := u.client.GetCACert(ctx)
	if err != nil {
		return nil, fmt.Errorf("GetCACert: %w", err)
	}
	d := &Discovery{Caps: caps}
	for _, c := range certs {
		if !c.IsCA {
			continue
		}
		if u.cfg.Fingerprint != nil {
			sum := sha256.Sum256(c.Raw)
			if !bytes.Equal(sum[:], u.cfg.Fingerprint) {
				continue
			}
		}
		d.CA = c
		break
	}
	if d.CA == nil && u.cfg.Fingerprint == nil && len(certs) == 1 {
		d.CA = certs[0] // a CA answering alone, whatever its basicConstraints
	}
	if d.CA == nil {
		var got []string
		for _, c := range certs {
			got = append(got, fmt.Sprintf("%s (%s)", c.Subject, Fingerprint(c.Raw)))
		}
		if u.cfg.Fingerprint != nil {
			return nil, fmt.Errorf("GetCACert has no CA certificate with the pinned fingerprint sha256:%x; it returned %s", u.cfg.Fingerprint, strings.Join(got, ", "))
		}
		return nil, fmt.Errorf("GetCACert has no CA certificate; it returned %s", strings.Join(got, ", "))
	}
	d.Chain = []*x509.Certificate{d.CA}
	for _, c := range certs {
		if c.IsCA && c != d.CA {
			d.Chain = append(d.Chain, c)
		}
	}
	if d.Recipient, err = client.Recipient(certs); err != nil {
		return nil, err
	}
	d.Signers = client.Signers(certs, d.Recipient)
	return d, nil
}

// DiscoveryTTL is how long an upstream's GetCACaps and GetCACert answers
// are used before they are asked again: an upstream renews its RA
// certificate, and requests must be encrypted to the new one.
const DiscoveryTTL = time.Hour

func (u *SCEP) discovery(ctx context.Context) (*Discovery, error) {
	u.mu.Lock()
	d, at := u.disc, u.discAt
	u.mu.Unlock()
	if d != nil && u.cfg.Now().Sub(at) < DiscoveryTTL {
		return d, nil
	}
	d, err := u.Discover(ctx)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.disc, u.discAt = d, u.cfg.Now()
	u.mu.Unlock()
	return d, nil
}

// forget drops discovery d, so that the next exchange asks again.
func (u *SCEP) forget(d *Discovery) {
	u.mu.Lock()
	if u.disc == d {
		u.disc = nil
	}
	u.mu.Unlock()
}

// Ready checks that the upstream answers (GetCACaps) within ctx.
func (u *SCEP) Ready(ctx context.Context) error {
	if _, err := u.client.GetCACaps(ctx); err != nil {
		return fmt.Errorf("upstream %s is unreachable: %w", u.name, err)
	}
	return nil
}

// Issue forwards the device's CSR as a PKCSReq signed by scepd's upstream
// key, in the strongest cipher and digest the upstream advertises, POSTed
// when it supports that. An upstream answering PENDING gives a Pending
// issuance whose token is the transactionID to poll (Poll). Every failure
// is an *enroll.UpstreamError; all within the timeout.
func (u *SCEP) Issue(ctx context.Context, req enroll.IssueRequest) (enroll.Issuance, error) {
	return u.exchange(ctx, req, nil)
}

// Poll sends one CertPoll for a request Issue answered Pending.
func (u *SCEP) Poll(ctx context.Context, req enroll.IssueRequest, token []byte) (enroll.Issuance, error) {
	return u.exchange(ctx, req, token)
}

// exchange runs a PKCSReq (token nil) or a CertPoll for the transaction
// token names.
func (u *SCEP) exchange(ctx context.Context, req enroll.IssueRequest, token []byte) (out enroll.Issuance, err error) {
	start := time.Now()
	// Waiting on the network is no work of this server's: the request's
	// processing slot serves others meanwhile.
	defer slot.Yield(ctx)()
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	defer func() {
		if u.cfg.Observe != nil {
			outcome := "issued"
			switch {
			case err != nil:
				outcome = "failed"
			case out.Pending:
				outcome = "pending"
			}
			u.cfg.Observe(u.name, outcome, time.Since(start))
		}
	}()
	if until, open := u.open(); open {
		return enroll.Issuance{}, &enroll.UpstreamError{Upstream: u.name,
			Reason: fmt.Sprintf("unavailable after %d failures in a row; not asked again before %s", BreakAfter, until.UTC().Format(time.RFC3339))}
	}
	select {
	case u.inflight <- struct{}{}:
		defer func() { <-u.inflight }()
	case <-ctx.Done():
		// The upstream is busy with others, not failing: the breaker
		// does not count this.
		return enroll.Issuance{}, &enroll.UpstreamError{Upstream: u.name, Err: ctx.Err(),
			Reason: fmt.Sprintf("busy: %d requests in flight to it, none finished in time", cap(u.inflight))}
	}
	acquired := time.Now()
	fail := func(reason string, err error) (enroll.Issuance, error) {
		deadline := errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)
		if deadline {
			reason = fmt.Sprintf("no answer within %s", u.timeout)
		}
		// A timeout mostly spent waiting for a place (MaxInFlight) says
		// little of the upstream: the breaker counts it only when the
		// exchange itself had at least half the timeout.
		if !deadline || time.Since(acquired) >= u.timeout/2 {
			u.outcome(false)
		}
		return enroll.Issuance{}, &enroll.UpstreamError{Upstream: u.name, Reason: reason, Err: err}
	}
	if u.signer.Cert == nil || u.signer.Key == nil {
		reason := "scepd has no signer for this upstream"
		if u.cfg.SignerErr != nil {
			reason += ": " + short(u.cfg.SignerErr)
		}
		return enroll.Issuance{}, &enroll.UpstreamError{Upstream: u.name, Reason: reason, Err: u.cfg.SignerErr}
	}
	d, err := u.discovery(ctx)
	if err != nil {
		return fail("discovery failed: "+short(err), err)
	}
	ciph, digest := Strongest(d.Caps)
	var certs []*x509.Certificate
	txID := UpstreamTransactionID(req.TransactionID)
	cl := *u.client
	cl.ReplySigners = d.Signers
	if token == nil {
		certs, err = cl.Submit(ctx, client.Submission{CSR: req.CSR.Raw, TransactionID: txID, Recipient: d.Recipient,
			Cipher: ciph, Digest: digest, GET: !slices.Contains(d.Caps, "POSTPKIOperation"), Signer: u.signer, AnyReplyCipher: true})
	} else {
		txID = string(token)
		certs, err = cl.PollAnyCipher(ctx, u.signer, d.CA, req.CSR.Subject, txID, d.Recipient, ciph)
	}
	if errors.Is(err, client.ErrPending) {
		u.outcome(true)
		return enroll.Issuance{Pending: true, Token: []byte(txID), Upstream: u.name}, nil
	}
	var f *client.Failure
	if errors.As(err, &f) {
		u.outcome(true) // it answered
		if f.FailInfo == scep.BadMessageCheck || f.FailInfo == scep.BadAlg {
			u.forget(d) // perhaps encrypted to an RA certificate it has replaced
		}
		return enroll.Issuance{}, &enroll.UpstreamError{Upstream: u.name, Reason: "refused: " + f.Error(), Refused: true, Err: err}
	}
	if err != nil {
		u.forget(d)
		return fail(short(err), err)
	}
	for _, c := range certs {
		if !bytes.Equal(c.RawSubjectPublicKeyInfo, req.CSR.RawSubjectPublicKeyInfo) {
			continue
		}
		if err := verifyIssued(c, d.Chain); err != nil {
			return fail("the certificate it returned does not chain to the pinned CA", err)
		}
		u.outcome(true)
		return enroll.Issuance{Issued: ca.IssuedFrom(c), Upstream: u.name}, nil
	}
	return fail("the reply has no certificate for the request's key", nil)
}

// open reports whether the breaker refuses requests now, and until when.
// Once the time is over, one request (the next) is let through: it opens
// the breaker again at once if it fails.
func (u *SCEP) open() (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.cfg.Now()
	if now.Before(u.openUntil) {
		return u.openUntil, true
	}
	if !u.openUntil.IsZero() {
		u.openUntil = time.Time{}
		u.failures = BreakAfter - 1 // half-open: one more failure opens it
	}
	return time.Time{}, false
}

// outcome counts an exchange for the breaker: answered (ok) or not.
func (u *SCEP) outcome(ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if ok {
		u.failures = 0
		return
	}
	u.failures++
	if u.failures >= BreakAfter {
		u.openUntil = u.cfg.Now().Add(BreakFor)
	}
}

// UpstreamTransactionID is the transactionID a request stored under id
// is forwarded with: the hex SHA-256 of id. It is a PrintableString
// whatever the device sent or scepd qualified it with ('@' is not), and
// the same for a retransmission, so the upstream answers it as one.
func UpstreamTransactionID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// verifyIssued checks that c is signed by a CA of chain.
func verifyIssued(c *x509.Certificate, chain []*x509.Certificate) error {
	var last error
	for _, ca := range chain {
		if last = c.CheckSignatureFrom(ca); last == nil {
			return nil
		}
	}
	return last
}

// Strongest picks the content cipher and digest from GetCACaps keywords:
// AES (as AES-256) over 3DES, SHA-512 over SHA-256 over SHA-1.
func Strongest(caps []string) (cms.Cipher, crypto.Hash) {
	has := func(k string) bool {
		return slices.ContainsFunc(caps, func(c string) bool { return strings.EqualFold(c, k) })
	}
	ciph := cms.TripleDES
	if has("AES") || has("SCEPStandard") {
		ciph = cms.AES256
	}
	digest := crypto.SHA1
	switch {
	case has("SHA-512"):
		digest = crypto.SHA512
	case has("SHA-256") || has("SCEPStandard"):
		digest = crypto.SHA256
	}
	return ciph, digest
}

// short is an error's text cut to what a device may hear.
func short(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
