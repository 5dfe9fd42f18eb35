package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/slot"
	"github.com/scepd/scepd/internal/store"
)

// Content types of RFC 8894 §4.
const (
	ctCaps       = "text/plain"
	ctCACert     = "application/x-x509-ca-cert"
	ctCARACert   = "application/x-x509-ca-ra-cert"
	ctPKIMessage = "application/x-pki-message"
)

func (s *Server) scep(w http.ResponseWriter, r *http.Request, profileID string) {
	p := s.Profile(profileID)
	if p == nil {
		s.wrongURL(r, "SCEP request for an unknown profile", s.scepHint(), slog.String("profile", truncate(profileID, 64)))
		http.Error(w, fmt.Sprintf("no SCEP profile %q here", profileID), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "SCEP uses GET and POST", http.StatusMethodNotAllowed)
		return
	}
	// The operation parameter names are case-sensitive in RFC 8894, but some
	// clients vary the case; the value of message= is ignored for
	// GetCACaps/GetCACert (MobileIron, Windows and sscep send fixed strings).
	op := r.URL.Query().Get("operation")
	switch op {
	case "GetCACaps":
		w.Header().Set("Content-Type", ctCaps)
		io.WriteString(w, p.caps)
	case "GetCACert":
		w.Header().Set("Content-Type", p.caCertCT)
		w.Write(p.caCert)
	case "GetNextCACert":
		if p.nextCA == nil {
			s.wrongURL(r, "GetNextCACert without a scheduled CA rollover", nextCAHint, slog.String("profile", p.ID()))
			http.Error(w, "no next CA certificate is scheduled for this profile", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/x-x509-next-ca-cert")
		w.Write(p.nextCA)
	case "PKIOperation":
		s.pkiOperation(w, r, p)
	case "":
		http.Error(w, "missing operation parameter", http.StatusBadRequest)
	default:
		http.Error(w, fmt.Sprintf("operation %q is not supported", truncate(op, 64)), http.StatusBadRequest)
	}
}

// yieldable returns ctx carrying the slot the caller holds (see package
// slot): an upstream CA's exchange gives it back while it waits. The
// request ends with releaseHeld.
func (s *Server) yieldable(ctx context.Context) context.Context {
	held := &heldSlot{s: s, held: true}
	return context.WithValue(slot.With(ctx, held.yield, s.queued), heldKey{}, held)
}

// heldSlot is one request's slot: given back and taken again in its own
// goroutine only.
type heldSlot struct {
	s    *Server
	held bool
}

type heldKey struct{}

func (h *heldSlot) yield() func() {
	if !h.held {
		return func() {}
	}
	h.s.release()
	h.held = false
	return func() {
		h.s.resume()
		h.held = true
	}
}

// releaseHeld releases the slot of a yieldable context, if it holds it.
func (s *Server) releaseHeld(ctx context.Context) {
	if h, ok := ctx.Value(heldKey{}).(*heldSlot); ok && h.held {
		h.held = false
		s.release()
	}
}

func (s *Server) pkiOperation(w http.ResponseWriter, r *http.Request, p *Profile) {
	start := time.Now()
	o := observation{msgType: "unknown", outcome: "http-400"}
	if s.opts.Observe != nil {
		defer func() { s.opts.Observe(p.ID(), o.msgType, o.outcome, time.Since(start)) }()
	}
	if !s.acquire(r.Context()) {
		o.outcome = "overloaded"
		// Fast and explicit beyond capacity: clients retry, nothing queues
		// without bound.
		w.Header().Set("Retry-After", "2")
		http.Error(w, "server busy, retry later", http.StatusServiceUnavailable)
		return
	}
	s.onWorker(func() { s.process(w, r, p, start, &o) })
}

// observation is what Observe is told of a PKIOperation.
type observation struct{ msgType, outcome string }

// process does a PKIOperation that holds a slot: it reads and decodes the
// message, decides and answers. It sets the message type and outcome in o
// as it learns them, so that after a panic Observe is told what was known
// before it (the message type once parsed).
func (s *Server) process(w http.ResponseWriter, r *http.Request, p *Profile, start time.Time, o *observation) {
	r = r.WithContext(s.yieldable(r.Context()))
	defer s.releaseHeld(r.Context())
	body, err := s.readMessage(r)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "unreadable PKIOperation",
			slog.String("profile", p.ID()), slog.String("remote", r.RemoteAddr), slog.String("error", err.Error()))
		http.Error(w, err.Error(), status)
		return
	}
	msg, err := scep.Parse(body)
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "malformed PKIOperation",
			slog.String("profile", p.ID()), slog.String("remote", r.RemoteAddr), slog.String("error", err.Error()))
		http.Error(w, "malformed SCEP message: "+err.Error(), http.StatusBadRequest)
		return
	}
	o.msgType = msg.Type.String()
	ctx, cancel := context.WithDeadline(r.Context(), start.Add(s.opts.AnswerWithin))
	defer cancel()
	reply, err := s.decider.Decide(ctx, p.op, msg, r.RemoteAddr)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
			// Our deadline, not the client's hanging up: what it waited
			// for (the database, a validator, an upstream) is away.
			err = fmt.Errorf("%w: no decision within %v: %w", store.ErrUnavailable, s.opts.AnswerWithin, err)
		}
		o.outcome = "http-5xx"
		if errors.Is(err, store.ErrUnavailable) {
			o.outcome = "unavailable"
		}
		s.internalError(w, r, p, msg, err)
		return
	}
	builder := p.builder
	if reply.ToAlternateRA && p.altBuilder != nil {
		builder = *p.altBuilder
	}
	out, err := builder.CertRep(msg, reply)
	if err != nil {
		o.outcome = "http-5xx"
		s.internalError(w, r, p, msg, fmt.Errorf("building CertRep: %w", err))
		return
	}
	switch reply.Status {
	case scep.StatusSuccess:
		o.outcome = "success"
	case scep.StatusPending:
		o.outcome = "pending"
	case scep.StatusFailure:
		o.outcome = "failure:" + reply.FailInfo.String()
	default:
		o.outcome = ""
	}
	level, attrs := slog.LevelInfo, []slog.Attr{
		slog.String("profile", p.ID()), slog.String("transaction_id", msg.TransactionID),
		slog.String("message_type", msg.Type.String()), slog.String("method", r.Method),
		slog.String("digest", msg.Digest.String()), slog.String("cipher", cipherName(reply.Cipher)),
		slog.String("status", statusName(reply.Status)), slog.String("remote", r.RemoteAddr),
		slog.Duration("duration", time.Since(start)),
	}
	if reply.Status == scep.StatusFailure {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("fail_info", reply.FailInfo.String()), slog.String("reason", reply.FailText))
	}
	s.log.LogAttrs(r.Context(), level, "PKIOperation", attrs...)
	w.Header().Set("Content-Type", ctPKIMessage)
	w.Write(out)
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, p *Profile, msg *scep.Message, err error) {
	if errors.Is(err, store.ErrUnavailable) {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "PKIOperation: database unavailable",
			slog.String("profile", p.ID()), slog.String("transaction_id", msg.TransactionID), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "5")
		http.Error(w, "temporarily unavailable, retry later (transaction "+msg.TransactionID+")", http.StatusServiceUnavailable)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelError, "PKIOperation internal error",
		slog.String("profile", p.ID()), slog.String("transaction_id", msg.TransactionID), slog.String("error", err.Error()))
	http.Error(w, "internal error (transaction "+msg.TransactionID+")", http.StatusInternalServerError)
}

// readMessage returns the PKIOperation message: the POST body, or the
// base64 message parameter of a GET.
func (s *Server) readMessage(r *http.Request) ([]byte, error) {
	if r.Method == http.MethodPost {
		b, err := readAll(http.MaxBytesReader(nil, r.Body, s.opts.MaxBody), r.ContentLength, s.opts.MaxBody)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, s.opts.MaxBody)
		}
		if err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
		if len(b) == 0 {
			return nil, errors.New("empty PKIOperation body")
		}
		return b, nil
	}
	if int64(len(r.URL.RawQuery)) > s.opts.MaxBody*4/3+1024 {
		return nil, fmt.Errorf("%w: query string of %d bytes", errTooLarge, len(r.URL.RawQuery))
	}
	return DecodeGETMessage(r.URL.RawQuery)
}

// readAll is io.ReadAll with the buffer sized from the request's
// Content-Length (when it declares one within max and presizeLimit), so a
// body is read into one allocation rather than into buffers doubling from
// 512 bytes. What it returns and its errors are io.ReadAll's. A larger
// declared length is not allocated ahead: a client that declares much and
// sends little would hold that memory.
func readAll(r io.Reader, declared, max int64) ([]byte, error) {
	if declared <= 0 || declared > max || declared > presizeLimit {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, declared+1) // +1: the read that sees EOF needs room
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // more than declared: grow as io.ReadAll would
		}
	}
}

// presizeLimit bounds the buffer readAll allocates from a declared length:
// a declared length up to presizeLimit gets a buffer of that length and a
// byte (for the read that sees EOF), so presizeLimit+1 bytes at most; a
// longer one gets none ahead (real PKIOperation bodies are a few KB).
const presizeLimit = 64 << 10

// DecodeGETMessage extracts and base64-decodes the message parameter of a
// GET PKIOperation from a raw query string. Clients differ: Apple sends
// '+' and '/' unescaped (a form decoder would turn '+' into a space),
// others percent-encode, some wrap lines. All of these decode.
func DecodeGETMessage(rawQuery string) ([]byte, error) {
	var value string
	found := false
	for _, kv := range strings.Split(rawQuery, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "message" {
			value, found = v, true
			break
		}
	}
	if !found || value == "" {
		return nil, errors.New("GET PKIOperation without a message parameter")
	}
	// PathUnescape decodes %XX but leaves '+' alone.
	unescaped, err := url.PathUnescape(value)
	if err != nil {
		return nil, fmt.Errorf("message parameter: %w", err)
	}
	cleaned := strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', '\t':
			return -1
		case ' ': // a '+' that something decoded as a space
			return '+'
		}
		return r
	}, unescaped)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(cleaned); err == nil && len(b) > 0 {
			return b, nil
		}
	}
	return nil, errors.New("message parameter is not base64")
}

func statusName(s scep.PKIStatus) string {
	switch s {
	case scep.StatusSuccess:
		return "SUCCESS"
	case scep.StatusFailure:
		return "FAILURE"
	case scep.StatusPending:
		return "PENDING"
	}
	return string(s)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func cipherName(c cms.Cipher) string {
	if c == 0 {
		return "-"
	}
	return c.String()
}

// onWorker runs f on a goroutine of its own and waits for it. The work
// of a PKIOperation (decoding, RSA, SQLite) grows the stack of the
// goroutine running it; run on the connection's goroutine, each
// connection kept that stack while it waited in the queue for its next
// request's slot (256 clients: 5.3-5.8 MiB of stacks, against 3.0-3.9
// MiB this way, and a quarter of the collections under the same memory
// limit). A goroutine that ends with the work holds such a stack only
// while a request is in progress. A panic in f is raised again in the
// caller with the same value, as if f had run there; since the stack
// net/http logs is then the caller's, the panic is logged here first,
// with the value and f's stack (except http.ErrAbortHandler, which
// net/http does not log either). A runtime.Goexit in f ends the caller
// with runtime.Goexit.
func (s *Server) onWorker(f func()) {
	var p any
	returned, panicked := false, false
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if returned {
				return
			}
			// A panic, or runtime.Goexit: recover returns nil for that
			// only (a panic(nil) panics with a *runtime.PanicNilError).
			if p = recover(); p == nil {
				return
			}
			panicked = true
			if p != http.ErrAbortHandler && s.log != nil {
				s.log.LogAttrs(context.Background(), slog.LevelError, "PKIOperation panicked",
					slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
			}
		}()
		f()
		returned = true
	}()
	<-done
	switch {
	case panicked:
		panic(p)
	case !returned:
		runtime.Goexit()
	}
}
