// Package server is scepd's SCEP HTTP surface (RFC 8894 §4): routing,
// request decoding and the mapping of outcomes to HTTP. PKIOperations are
// decided by the pkiop package (with enroll); wire formats are the scep
// package's.
package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/pkiop"
	"github.com/scepd/scepd/internal/ratelimit"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/store"
)

// DefaultMaxBody bounds a PKIOperation body. Real requests are a few KB.
const DefaultMaxBody = 1 << 20

// Enroller is the enrollment use case PKIOperations are decided with.
type Enroller = pkiop.Enroller

// Revocation publishes CRLs and answers OCSP (caID "": for the CA the
// request names).
type Revocation interface {
	CRL(ctx context.Context, caID string) (store.CRL, error)
	OCSP(ctx context.Context, caID string, req []byte) (revocation.OCSPResponse, error)
}

// ProfileConfig is everything needed to serve one profile.
type ProfileConfig struct {
	Enroll *enroll.Profile
	// RACert and RAKey are the identity clients encrypt to and that signs
	// replies. The key must be RSA.
	RACert *x509.Certificate
	RAKey  crypto.Signer
	// AltRACert and AltRAKey are the profile's other RA while a CA
	// rollover is scheduled (see pkiop.Profile.AltRA).
	AltRACert *x509.Certificate
	AltRAKey  crypto.Signer
	// CAMode: the CA answers SCEP itself; RACert is the CA certificate.
	CAMode bool
	// AllowDES accepts single-DES requests (legacy devices, micromdm's scepclient).
	AllowDES bool
	// IncludeCACert adds the CA chain to CertRep replies (after the issued
	// certificate); GetCACert carries it always.
	IncludeCACert bool
	// FullChain makes that chain go up to the root; otherwise it is the
	// issuing CA alone.
	FullChain bool
	// Next is the CA a scheduled rollover moves to, with its RA; nil when
	// none is scheduled.
	Next *NextCA
	// Dynamic mints one-time challenges for the MDM endpoints below.
	Dynamic *challenge.Dynamic
	// NDES serves the NDES-compatible admin page; Jamf the Jamf webhook.
	NDES *NDESPage
	Jamf bool
	// Upstream is the CA a profile in RA mode obtains certificates from
	// (Enroll.Issuer); /readyz asks it. UpstreamChain, its CA chain, then
	// takes the place of the local CA's in GetCACert and CertRep.
	Upstream      Upstream
	UpstreamChain [][]byte
}

// Upstream is an upstream CA as the server sees it.
type Upstream interface {
	Name() string
	// Ready reports whether the upstream answers.
	Ready(ctx context.Context) error
}

// NextCA is what GetNextCACert hands out before a rollover.
type NextCA struct {
	CA     *ca.CA
	RACert *x509.Certificate
}

// Profile is a profile prepared for serving: everything derivable is
// computed once here, not per request.
type Profile struct {
	cfg     ProfileConfig
	op      *pkiop.Profile // what PKIOperations are decided with
	builder scep.Builder
	// altBuilder signs replies to requests encrypted to the other RA of a
	// rollover (nil without one).
	altBuilder *scep.Builder
	caCert     []byte // GetCACert body
	caCertCT   string // its content type
	nextCA     []byte // GetNextCACert body, nil without a scheduled rollover
	caps       string
	// caThumb is the SHA-1 thumbprint of the CA that issues the devices'
	// certificates (in RA mode the upstream's), hex, upper case: the NDES
	// page names it.
	caThumb string
}

// raIdentity is an RA as requests meet it: the key that decrypts them,
// the certificate they name, and the builder that signs the replies.
func raIdentity(cert *x509.Certificate, key crypto.Signer) (crypto.Decrypter, *cms.Certificate, scep.Builder, error) {
	dec, ok := key.(crypto.Decrypter)
	if _, isRSA := key.Public().(*rsa.PublicKey); !ok || !isRSA {
		return nil, nil, scep.Builder{}, errors.New("must be an RSA key")
	}
	c := cms.FromX509(cert)
	return dec, c, scep.Builder{Cert: cert, CMSCert: c, Key: key}, nil
}

// NewProfile prepares a profile.
func NewProfile(cfg ProfileConfig) (*Profile, error) {
	dec, raCMS, builder, err := raIdentity(cfg.RACert, cfg.RAKey)
	if err != nil {
		return nil, fmt.Errorf("server: profile %q: the RA key %w", cfg.Enroll.ID, err)
	}
	// The CA chain, up to the root with full_chain: always in GetCACert
	// (RFC 8894 §4.2.1.1.2: the RA certificates and the CA certificate;
	// clients authenticate the CA there), in CertReps with include_ca_cert.
	chain := cfg.Enroll.CA.ChainDER()
	if cfg.UpstreamChain != nil {
		chain = cfg.UpstreamChain
	}
	if !cfg.FullChain {
		chain = chain[:1]
	}
	var repChain [][]byte
	if cfg.IncludeCACert {
		repChain = chain
	}
	thumb := sha1.Sum(chain[0])
	if cfg.Enroll.HoldWhenUpstreamDown {
		cfg.Enroll.Sealer = raSealer{cert: raCMS, key: dec}
	}
	p := &Profile{
		cfg:     cfg,
		caThumb: strings.ToUpper(hex.EncodeToString(thumb[:])),
		op:      &pkiop.Profile{Enroll: cfg.Enroll, Decrypter: dec, RA: raCMS, AllowDES: cfg.AllowDES, Chain: repChain},
	}
	p.builder = builder
	if cfg.AltRACert != nil {
		altDec, altCMS, altBuilder, err := raIdentity(cfg.AltRACert, cfg.AltRAKey)
		if err != nil {
			return nil, fmt.Errorf("server: profile %q: the rollover's other RA key %w", cfg.Enroll.ID, err)
		}
		p.op.AltDecrypter, p.op.AltRA, p.altBuilder = altDec, altCMS, &altBuilder
	}
	caps := []scep.Capability{scep.CapAES, scep.CapDES3}
	if cfg.Next != nil {
		// RFC 8894 §4.7: a signed certs-only PKCS#7 of the next CA (and its
		// RA), signed by the current RA so clients can trust it.
		certs := cfg.Next.CA.ChainDER()
		if !cfg.CAMode {
			certs = append([][]byte{cfg.Next.RACert.Raw}, certs...)
		}
		inner, err := cms.Degenerate(certs)
		if err != nil {
			return nil, err
		}
		signer := cms.Signer{Cert: cms.FromX509(cfg.RACert), Key: cfg.RAKey, Hash: crypto.SHA256, Certificates: [][]byte{cfg.RACert.Raw}}
		if p.nextCA, err = signer.Sign(inner, nil, nil); err != nil {
			return nil, fmt.Errorf("server: profile %q: GetNextCACert body: %w", cfg.Enroll.ID, err)
		}
		caps = append(caps, scep.CapGetNextCACert)
	}
	caps = append(caps, scep.CapPOSTPKIOperation)
	if !cfg.Enroll.Renewal.Disabled {
		// Apple's profile client needs Renewal advertised to renew at all.
		caps = append(caps, scep.CapRenewal)
	}
	p.caps = scep.FormatCaps(append(caps, scep.CapSCEPStandard, scep.CapSHA1, scep.CapSHA256, scep.CapSHA512))
	// GetCACert (RFC 8894 §4.2.1): a CA answering alone is one DER
	// certificate; otherwise a certs-only PKCS#7 with the RA first.
	certs := append([][]byte{cfg.RACert.Raw}, chain...)
	if cfg.CAMode {
		// The CA is its own RA: without include_ca_cert it answers alone,
		// one DER certificate (Apple's client, given a PKCS#7, looks for
		// RA certificates besides the CA).
		certs = chain
		if !cfg.IncludeCACert {
			certs = chain[:1]
		}
	}
	if len(certs) == 1 && cfg.CAMode {
		p.caCert, p.caCertCT = certs[0], ctCACert
	} else {
		der, err := cms.Degenerate(certs)
		if err != nil {
			return nil, fmt.Errorf("server: profile %q: GetCACert body: %w", cfg.Enroll.ID, err)
		}
		p.caCert, p.caCertCT = der, ctCARACert
	}
	return p, nil
}

// ID is the profile's URL segment.
func (p *Profile) ID() string { return p.cfg.Enroll.ID }

// Enroll is the profile as enrollment sees it.
func (p *Profile) Enroll() *enroll.Profile { return p.cfg.Enroll }

// Options configure a Server.
type Options struct {
	Profiles []*Profile
	// CAs are served at /ca/{id}.crt (DER) and /ca/{id}.pem.
	CAs map[string]*ca.CA
	// DefaultProfile serves the compatibility paths /cgi-bin/pkiclient.exe
	// and /certsrv/mscep/mscep.dll.
	DefaultProfile string
	Enroller       Enroller
	Revocation     Revocation
	Logger         *slog.Logger
	// MaxBody bounds request bodies; 0 means DefaultMaxBody.
	MaxBody int64
	// Ready reports whether the server can take requests (for /readyz):
	// typically the store's readiness (the database answers and takes
	// writes). A *store.NotReadyError's Reason is shown in the answer.
	Ready func(ctx context.Context) error
	// MaxConcurrent bounds PKIOperations in progress (0: one per CPU:
	// enrollment is CPU-bound, and more in flight only adds contention).
	// Beyond it up to MaxQueue requests wait, each at most QueueWait; a
	// request that finds the queue full, or waits longer, gets 503 with
	// Retry-After at once. A closed population of clients (each waiting
	// for its answer) is served without refusals as long as it fits the
	// queue; an open flood is refused fast. 0 means 1024 and 10 s.
	MaxConcurrent int
	MaxQueue      int
	QueueWait     time.Duration
	// AnswerWithin bounds a PKIOperation from its arrival: a decision
	// still waiting then (a stalled database, a slow validator or
	// upstream) is given up and answered 503 with Retry-After, which
	// clients retry, instead of the connection closing under the
	// HTTP server's write timeout. 0 means DefaultAnswerWithin.
	AnswerWithin time.Duration
	// Authorize checks API tokens on the MDM challenge endpoints.
	Authorize Authorizer
	// Audit records MDM challenge requests and lockouts.
	Audit func(ctx context.Context, action, object, outcome string, details map[string]string)
	// Observe, when set, is told about every PKIOperation answered
	// (outcome: success, pending, failure:<failInfo>, overloaded, http-4xx/5xx).
	Observe func(profile, messageType, outcome string, d time.Duration)
	// OnChallenge, when set, is told about every challenge an MDM endpoint hands out.
	OnChallenge func(profile, via string)
	// MDMAuthFailures bounds failed authentications on the challenge
	// endpoints (NDES page, Jamf webhook) per profile and client address;
	// nil means enrollment's limit (enroll.DefaultMaxFailures per
	// enroll.DefaultFailureWindow). A locked-out address is answered 429
	// without its credentials being checked (no argon2 work for it).
	MDMAuthFailures *ratelimit.Window
	// OnLimit, when set, is told when a client is locked out (kind
	// "lockout"), refused while locked out ("blocked") or refused a
	// challenge for the profile's minting rate ("rate").
	OnLimit func(profile, endpoint, kind string)
}

// Server serves SCEP.
type Server struct {
	set     atomic.Pointer[profileSet]
	opts    Options
	decider pkiop.Decider
	log     *slog.Logger
	// slots bounds concurrent PKIOperations: enrollment is CPU-bound, so
	// queueing beyond a few per core only adds latency and memory.
	slots chan struct{}
	// handoff passes a released slot straight to a request taking its slot
	// again (package slot): one that gave it back while it waited and has
	// done most of its work goes before requests not yet started, so
	// requests in progress stay few. resumers counts those waiting for
	// one; mu makes a release and a resume agree on it.
	mu       sync.Mutex
	resumers int
	handoff  chan struct{}
	waiting  atomic.Int64
	overload atomic.Int64
	// urlWarn throttles the warnings about wrong URLs (wrongurl.go).
	urlWarn urlWarnings
}

// profileSet is replaced whole when profiles change, so a request sees
// one consistent set without locks.
type profileSet struct {
	byID map[string]*Profile
	cas  map[string]*ca.CA
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = runtime.NumCPU()
	}
	if opts.QueueWait <= 0 {
		opts.QueueWait = 10 * time.Second
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 1024
	}
	if opts.AnswerWithin <= 0 {
		opts.AnswerWithin = DefaultAnswerWithin
	}
	if opts.MDMAuthFailures == nil {
		opts.MDMAuthFailures = ratelimit.NewWindow(enroll.DefaultMaxFailures, enroll.DefaultFailureWindow)
	}
	s := &Server{opts: opts, log: opts.Logger, slots: make(chan struct{}, opts.MaxConcurrent),
		handoff: make(chan struct{}, opts.MaxConcurrent)}
	s.decider = pkiop.Decider{Enroller: opts.Enroller}
	if opts.Revocation != nil {
		s.decider.CRLs = opts.Revocation
	}
	if err := s.SetProfiles(opts.Profiles, opts.CAs); err != nil {
		return nil, err
	}
	return s, nil
}

// SetProfiles replaces the served profiles and CAs (after an operator
// changed them); requests in flight finish with the old set.
func (s *Server) SetProfiles(profiles []*Profile, cas map[string]*ca.CA) error {
	set := &profileSet{byID: map[string]*Profile{}, cas: cas}
	for _, p := range profiles {
		if _, dup := set.byID[p.ID()]; dup {
			return fmt.Errorf("server: profile %q configured twice", p.ID())
		}
		set.byID[p.ID()] = p
	}
	s.set.Store(set)
	return nil
}

// Profile returns a served profile by id.
func (s *Server) Profile(id string) *Profile { return s.set.Load().byID[id] }

// Handler returns the HTTP handler for every route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// /healthz: the process is alive. /readyz: it can serve (the database
	// answers and takes writes); load balancers route on it.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeOK(w) })
	mux.HandleFunc("GET /readyz", s.readyz)
	byName := func(w http.ResponseWriter, r *http.Request) { s.scep(w, r, r.PathValue("profile")) }
	// Cisco IOS appends /pkiclient.exe to whatever URL it is given, and
	// others use the bare profile URL: accept any subpath.
	mux.HandleFunc("/scep/{profile}", byName)
	mux.HandleFunc("/scep/{profile}/{rest...}", byName)
	byDefault := func(w http.ResponseWriter, r *http.Request) { s.scep(w, r, s.opts.DefaultProfile) }
	mux.HandleFunc("/cgi-bin/pkiclient.exe", byDefault)
	mux.HandleFunc("/certsrv/mscep/mscep.dll", byDefault)
	mux.HandleFunc("/certsrv/mscep/mscep.dll/{rest...}", byDefault)
	mux.HandleFunc("GET /scep/{profile}/mscep_admin/", func(w http.ResponseWriter, r *http.Request) { s.ndesAdmin(w, r, s.Profile(r.PathValue("profile"))) })
	mux.HandleFunc("GET /scep/{profile}/mscep_admin", func(w http.ResponseWriter, r *http.Request) { s.ndesAdmin(w, r, s.Profile(r.PathValue("profile"))) })
	mux.HandleFunc("GET /certsrv/mscep_admin/", func(w http.ResponseWriter, r *http.Request) { s.ndesAdmin(w, r, s.Profile(s.opts.DefaultProfile)) })
	mux.HandleFunc("POST /scep/{profile}/jamf-challenge", s.jamfChallenge)
	mux.HandleFunc("GET /ca/{file}", s.caDownload)
	mux.HandleFunc("GET /crl/{file}", s.crl)
	// /ocsp/{ca} answers for one CA, /ocsp for the one the request names.
	// GET carries the request in the path, /ocsp/{ca}/{request} or
	// /ocsp/{request}; one pattern, since the base64 may hold '/'.
	mux.HandleFunc("POST /ocsp/{ca}", s.ocsp)
	mux.HandleFunc("POST /ocsp", s.ocsp)
	mux.HandleFunc("GET /ocsp/{request...}", s.ocsp)
	return s.rawOCSP(s.logUnrouted(mux))
}

// rawOCSP sends an OCSP GET whose path holds "//" to the responder as it
// is: the request is base64 in the path (RFC 6960 §A.1), where "/" is a
// character of the encoding, and a client that does not escape it may
// send "//", which ServeMux would clean into another request (a redirect
// to a path one character short).
func (s *Server) rawOCSP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/ocsp/") && strings.Contains(r.URL.Path, "//") {
			r.SetPathValue("request", strings.TrimPrefix(r.URL.EscapedPath(), "/ocsp/"))
			s.ocsp(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Overloaded counts PKIOperations refused with 503 since start.
func (s *Server) Overloaded() int64 { return s.overload.Load() }

// acquire takes an enrollment slot, waiting at most QueueWait behind at
// most MaxQueue others.
func (s *Server) acquire(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	if s.waiting.Add(1) > int64(s.opts.MaxQueue) {
		s.waiting.Add(-1)
		s.overload.Add(1)
		return false
	}
	defer s.waiting.Add(-1)
	t := time.NewTimer(s.opts.QueueWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	s.overload.Add(1)
	return false
}

// release gives a slot back: to a request taking its slot again, if one
// waits, else to whoever takes it next.
func (s *Server) release() {
	s.mu.Lock()
	if s.resumers > 0 {
		// The slot stays taken and passes to that request (handoff holds
		// at most one token per slot: it never blocks).
		s.resumers--
		s.mu.Unlock()
		s.handoff <- struct{}{}
		return
	}
	s.mu.Unlock()
	<-s.slots
}

// resume takes a slot again for a request that gave its slot back: a free
// one, or the next released one before any request not yet started.
func (s *Server) resume() {
	s.mu.Lock()
	select {
	case s.slots <- struct{}{}:
		s.mu.Unlock()
		return
	default:
	}
	s.resumers++
	s.mu.Unlock()
	<-s.handoff
}

// queued reports whether requests wait for a slot.
func (s *Server) queued() bool { return s.waiting.Load() > 0 }

// waitingToResume is how many requests wait in resume (tests).
func (s *Server) waitingToResume() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumers
}

// CAs returns the loaded CAs (for CRL refreshing).
func (s *Server) CAs() map[string]*ca.CA { return s.set.Load().cas }

// crl serves a CA's current CRL: /crl/{id}.crl DER, /crl/{id}.pem PEM.
func (s *Server) crl(w http.ResponseWriter, r *http.Request) {
	// Nothing for caches but the CRL itself (a 404 is cacheable by default).
	w.Header().Set("Cache-Control", "no-store")
	id, ext, _ := strings.Cut(r.PathValue("file"), ".")
	if s.set.Load().cas[id] == nil || (ext != "crl" && ext != "pem") || s.opts.Revocation == nil {
		http.Error(w, "no such CRL", http.StatusNotFound)
		return
	}
	c, err := s.opts.Revocation.CRL(r.Context(), id)
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "CRL unavailable", slog.String("ca", id), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "5")
		http.Error(w, "CRL temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	body, ctype := c.DER, "application/pkix-crl"
	if ext == "pem" {
		body, ctype = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.DER}), "application/x-pem-file"
	}
	// A CRL number is used once per CA (at least the signing time in
	// milliseconds), so it tags the CRL without hashing megabytes of it.
	w.Header().Set("Content-Type", ctype)
	serveCached(w, r, body, fmt.Sprintf(`"%x.%s"`, c.Number, ext), c.ThisUpdate, c.NextUpdate)
}

// serveCached answers with body, valid from thisUpdate to nextUpdate (a
// CRL, an OCSP response to GET), under the caching headers of RFC 5019
// §6.2: HTTP caches (a CDN, a relying party's) keep it until nextUpdate,
// not longer. A CRL signed again before then (a revocation, half its life
// gone) reaches those caches' clients at nextUpdate, as it reaches a
// relying party that keeps CRLs until theirs. A conditional GET naming
// this etag is answered 304 Not Modified without the body
// (http.ServeContent, which also answers HEAD and ranges). If-Modified-Since
// is not: two CRLs signed within one second share their Last-Modified, and
// a client holding the first would be told it still has the newest.
func serveCached(w http.ResponseWriter, r *http.Request, body []byte, etag string, thisUpdate, nextUpdate time.Time) {
	h := w.Header()
	h.Set("Last-Modified", thisUpdate.UTC().Format(http.TimeFormat))
	h.Set("Expires", nextUpdate.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", max(int64(time.Until(nextUpdate)/time.Second), 0)))
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body)) // no modification time: If-Modified-Since is not answered
}

// ocsp answers RFC 6960 requests: POST with the DER body, or GET with it
// base64 in the path (§A.1); at /ocsp/{ca} for one CA, at /ocsp for any
// CA loaded (the one the request's issuer hashes name).
func (s *Server) ocsp(w http.ResponseWriter, r *http.Request) {
	// Only a signed answer to GET is for caches (below). Not an error
	// (HTTP, or an OCSP error response: malformed, unauthorized), nor
	// an answer to POST: RFC 5019's caching is GET's, and an HTTP cache
	// keys on the URL, which for POST does not hold the request.
	w.Header().Set("Cache-Control", "no-store")
	id, request := r.PathValue("ca"), r.PathValue("request")
	if first, rest, ok := strings.Cut(request, "/"); ok && s.set.Load().cas[first] != nil {
		id, request = first, rest
	}
	if (id != "" && s.set.Load().cas[id] == nil) || s.opts.Revocation == nil {
		http.Error(w, "no such OCSP responder", http.StatusNotFound)
		return
	}
	var req []byte
	var err error
	if r.Method == http.MethodPost {
		req, err = io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	} else {
		var raw string
		if raw, err = url.PathUnescape(request); err == nil {
			req, err = base64.StdEncoding.DecodeString(raw)
		}
	}
	if err != nil {
		http.Error(w, "malformed OCSP request", http.StatusBadRequest)
		return
	}
	resp, err := s.opts.Revocation.OCSP(r.Context(), id, req)
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "OCSP failed", slog.String("ca", id), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "5")
		http.Error(w, "OCSP temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	if r.Method != http.MethodPost && !resp.NextUpdate.IsZero() {
		serveCached(w, r, resp.DER, resp.ETag, resp.ThisUpdate, resp.NextUpdate)
		return
	}
	w.Write(resp.DER)
}

// Mount adds extra routes (the admin API when it shares the listener).
func Mount(h http.Handler, prefix string, extra http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle(prefix, extra)
	return mux
}

// caDownload serves CA certificates for AIA caIssuers URLs and for relying
// parties (an IdP wants the intermediate): /ca/{id}.crt is DER, .pem PEM.
func (s *Server) caDownload(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	id, ext, _ := strings.Cut(file, ".")
	c := s.set.Load().cas[id]
	if c == nil || (ext != "crt" && ext != "pem" && ext != "der") {
		http.Error(w, "no such CA certificate", http.StatusNotFound)
		return
	}
	if ext == "pem" {
		w.Header().Set("Content-Type", "application/x-pem-file")
		pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
		return
	}
	w.Header().Set("Content-Type", "application/pkix-cert")
	w.Write(c.Cert.Raw)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "readiness check failed", slog.String("error", err.Error()))
			// Anyone may ask: only a reason meant for them is shown, the
			// driver's error (an address, a path) only in the log.
			why := "database unavailable"
			if nr, ok := errors.AsType[*store.NotReadyError](err); ok {
				why = "database: " + nr.Reason
			}
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
	}
	if down := s.upstreamsDown(r.Context()); len(down) > 0 {
		// Anyone may ask: the answer names profiles, and the log why
		// (an upstream's URL and address are for the operator).
		http.Error(w, "not ready: the upstream CA of profile "+strings.Join(down, ", ")+" does not answer (the log says why)", http.StatusServiceUnavailable)
		return
	}
	writeOK(w)
}

// upstreamsDown asks every profile's upstream (RA mode) whether it
// answers, all at once and each within 2s; it logs why those that do not
// do not, and returns their profiles.
func (s *Server) upstreamsDown(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	type down struct{ profile, err string }
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		downs []down
	)
	for id, p := range s.set.Load().byID {
		if p.cfg.Upstream == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.cfg.Upstream.Ready(ctx); err != nil {
				mu.Lock()
				downs = append(downs, down{id, err.Error()})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(downs, func(a, b down) int { return strings.Compare(a.profile, b.profile) })
	var out []string
	for _, d := range downs {
		s.log.LogAttrs(ctx, slog.LevelWarn, "readiness check failed", slog.String("profile", d.profile), slog.String("error", d.err))
		out = append(out, d.profile)
	}
	return out
}

func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// writeTimeout bounds writing an answer, from the end of its request's
// header (http.Server.WriteTimeout).
const writeTimeout = 30 * time.Second

// DefaultAnswerWithin is Options.AnswerWithin's default: time to write
// the 503 before writeTimeout.
const DefaultAnswerWithin = writeTimeout - 5*time.Second

// NewHTTPServer wraps h in an http.Server with timeouts, so slow or idle
// clients cannot hold connections open indefinitely.
func NewHTTPServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

var errTooLarge = errors.New("request body too large")
