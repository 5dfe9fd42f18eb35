// Package console is the operator web console scepd serves itself:
// server-rendered HTML over the same operations (and role rules) as the
// REST API, with sign-in by API token, database-backed sessions and a
// CSRF token on every form. No build step: templates, CSS and the few
// lines of JavaScript are embedded in the binary.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/admin"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/ratelimit"
	"github.com/scepd/scepd/internal/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Store is what the console needs beyond the admin service.
type Store interface {
	admin.TokenStore
	CreateSession(ctx context.Context, s store.Session) error
	GetSession(ctx context.Context, idHash []byte, now time.Time) (store.Session, error)
	DeleteSessions(ctx context.Context, idHash []byte, now time.Time) error
	TouchSession(ctx context.Context, idHash []byte, at time.Time) error
	PutSessionFlash(ctx context.Context, idHash, flash []byte) error
	TakeSessionFlash(ctx context.Context, idHash []byte) ([]byte, error)
	ListProfiles(ctx context.Context) ([]store.Profile, error)
	IssuedPerDay(ctx context.Context, since time.Time) ([]store.DayCount, error)
	ChallengeCounts(ctx context.Context, profileID string, now time.Time) (pending, used, expired int, err error)
	CertificateStats(ctx context.Context, now time.Time, expiringWithin time.Duration) ([]store.CertificateStat, error)
	LatestCRL(ctx context.Context, caID string) (store.CRL, error)
	EnrollFailures(ctx context.Context, since time.Time, profiles []string) ([]store.FailureCount, error)
	AppendAudit(ctx context.Context, e store.AuditEvent) error
}

// Handler serves the console under /console/.
type Handler struct {
	Admin *admin.Service
	Store Store
	// PublicURL is the base of the SCEP URLs shown; empty means the SCEP
	// listener's address.
	PublicURL string
	// SCEPAddr is the SCEP listener's address ("host:port") when the
	// console is served on another listener (--admin-addr); empty means
	// they share one, and the address the console was reached at is the
	// SCEP listener's.
	SCEPAddr string
	// SessionTTL is how long a sign-in lasts. Default 8h.
	SessionTTL time.Duration
	Now        func() time.Time
	Log        *slog.Logger

	// IdleTimeout ends a session unused this long. Default 30m.
	IdleTimeout time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (client address for limits and the
	// audit log; Secure cookies). Default: none.
	TrustedProxies []netip.Prefix
	// SignInFailures counts failed sign-ins per client address. Default:
	// ten in 15 minutes, as on the NDES page.
	SignInFailures *ratelimit.Window
	// InsecureHTTP lets browsers on other machines sign in over plain
	// HTTP; without it only HTTPS (see secure) and this machine do.
	InsecureHTTP bool

	pages map[string]*template.Template
}

const (
	sessionCookie = "scepd_session"
	loginCookie   = "scepd_login"
	cookiePath    = "/console/"
)

// Routes returns the console's handler; it parses every template first,
// so a broken template fails at start, not on a page view.
func (h *Handler) Routes() (http.Handler, error) {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.SessionTTL <= 0 {
		h.SessionTTL = 8 * time.Hour
	}
	if h.IdleTimeout <= 0 {
		h.IdleTimeout = 30 * time.Minute
	}
	if h.SignInFailures == nil {
		h.SignInFailures = ratelimit.NewWindow(enroll.DefaultMaxFailures, enroll.DefaultFailureWindow)
	}
	if err := h.parse(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(assets, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	mux.Handle("GET /console/{$}", h.authed(func(w http.ResponseWriter, r *http.Request, s *session) {
		http.Redirect(w, r, home(s.Actor), http.StatusSeeOther)
	}))
	mux.HandleFunc("GET /console/login", h.loginPage)
	mux.HandleFunc("POST /console/login", h.login)
	mux.Handle("POST /console/logout", h.authed(h.logout))
	mux.Handle("GET /console/dashboard", h.authed(h.dashboard))
	mux.Handle("GET /console/profiles", h.authed(h.profiles))
	mux.Handle("GET /console/profiles/new", h.authed(h.profileForm))
	mux.Handle("POST /console/profiles", h.authed(h.profileSave))
	mux.Handle("GET /console/profiles/{id}", h.authed(h.profile))
	mux.Handle("GET /console/certificates", h.authed(h.certificates))
	mux.Handle("GET /console/certificates/{serial}", h.authed(h.certificate))
	mux.Handle("GET /console/certificates/{serial}/download", h.authed(h.download))
	mux.Handle("POST /console/certificates/{serial}/revoke", h.authed(h.revoke))
	mux.Handle("GET /console/requests", h.authed(h.requests))
	mux.Handle("GET /console/requests/{profile}/{tx}", h.authed(h.request))
	mux.Handle("POST /console/requests/{profile}/{tx}/{decision}", h.authed(h.decide))
	mux.Handle("GET /console/challenges", h.authed(h.challenges))
	mux.Handle("POST /console/challenges", h.authed(h.challengeCreate))
	mux.Handle("GET /console/cas", h.authed(h.cas))
	mux.Handle("GET /console/tokens", h.authed(h.tokens))
	mux.Handle("POST /console/tokens", h.authed(h.tokenCreate))
	mux.Handle("POST /console/tokens/{id}/revoke", h.authed(h.tokenRevoke))
	mux.Handle("POST /console/challenges/{profile}/{id}/cancel", h.authed(h.challengeCancel))
	mux.Handle("GET /console/audit", h.authed(h.audit))
	return securityHeaders(limitBody(mux)), nil
}

// maxForm bounds a console request's body: the largest form (a profile
// or a CA import with its PEM) is a few KB; without a bound, the
// unauthenticated sign-in form would parse up to 32 MB per request.
const maxForm = 1 << 20

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if r.Method == http.MethodPost {
			// Read now, so a form too large is told as such (a multipart
			// one stops at the bound too, when a handler reads it).
			var tooLarge *http.MaxBytesError
			if err := r.ParseForm(); errors.As(err, &tooLarge) {
				http.Error(w, "the form is too large", http.StatusRequestEntityTooLarge)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Root answers / on a listener that serves the console: a browser is
// sent to it. A request with a query (a SCEP client probing the bare
// host) is not redirected to HTML: 404.
func Root() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin") // "no-referrer" would make browsers send Origin: null on our own forms
		if !strings.HasPrefix(r.URL.Path, "/console/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// session is a signed-in request's context.
type session struct {
	store.Session
	// CSRF is the form token of this session, derived from the cookie
	// (csrfToken); the store holds only its SHA-256.
	CSRF  string
	Actor admin.Actor
	API   admin.API
	// key encrypts the session's flash (flashKey); Flash is the one taken
	// for this page.
	key   []byte
	Flash *flash
}

// csrfToken is a session's form token: HMAC-SHA256 of a fixed label keyed
// by the session's cookie value (256 random bits), so it is as
// unguessable as the cookie, is never stored, and a page can render it
// again without the database holding it.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("scepd console CSRF token"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// hashHex is the hex SHA-256 under which a secret is stored.
func hashHex(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// csrfValid checks a form's token against the session's stored hash, in
// constant time.
func csrfValid(form string, s *session) bool {
	return subtle.ConstantTimeCompare([]byte(hashHex(form)), []byte(s.CSRFHash)) == 1
}

type authedFunc func(w http.ResponseWriter, r *http.Request, s *session)

// authed resolves the session cookie to a live session of a valid token,
// and checks CSRF on every POST; otherwise it sends the browser to sign in.
func (h *Handler) authed(fn authedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := h.session(r)
		if err != nil {
			idle := errors.Is(err, errIdle)
			if !errors.Is(err, errNoSession) && !idle {
				h.Log.Error("console session lookup failed", "error", err.Error())
				h.fail(w, r, nil, http.StatusServiceUnavailable, "The database is unreachable; try again shortly.")
				return
			}
			if r.Method != http.MethodGet {
				msg := "Your session has ended. Sign in again."
				if idle {
					msg = h.idleMessage()
				}
				h.fail(w, r, nil, http.StatusForbidden, msg)
				return
			}
			to := "/console/login?next=" + url.QueryEscape(r.URL.RequestURI())
			if idle {
				to += "&ended=idle"
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) || !csrfValid(r.PostFormValue("csrf"), s) {
				h.Log.Warn("console form refused: CSRF check failed", "path", r.URL.Path, "actor", s.Actor.Name, "origin", r.Header.Get("Origin"))
				h.fail(w, r, s, http.StatusForbidden, "This form did not come from this console (CSRF check failed). Reload the page and try again.")
				return
			}
		}
		if r.Method == http.MethodGet {
			h.takeFlash(r, s)
		}
		fn(w, r, s)
	})
}

var (
	errNoSession = errors.New("no session")
	errIdle      = errors.New("session ended for inactivity")
)

func (h *Handler) idleMessage() string {
	return fmt.Sprintf("Your session ended after %v of inactivity. Sign in again.", h.IdleTimeout)
}

func (h *Handler) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) < 40 || len(c.Value) > 64 {
		return nil, errNoSession
	}
	sum := sha256.Sum256([]byte(c.Value))
	se, err := h.Store.GetSession(r.Context(), sum[:], h.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	now := h.Now()
	if now.Sub(se.LastSeen) >= h.IdleTimeout {
		if err := h.Store.DeleteSessions(r.Context(), sum[:], now); err != nil {
			h.Log.Error("console idle session not deleted", "error", err.Error())
		}
		return nil, errIdle
	}
	// Recording every request would be a write per page view: the last
	// request is recorded when the stored one is over a tenth of the
	// timeout (at most a minute) old, so a session may end that much early.
	if now.Sub(se.LastSeen) > min(h.IdleTimeout/10, time.Minute) {
		if err := h.Store.TouchSession(r.Context(), sum[:], now); err != nil {
			h.Log.Error("console session not touched", "error", err.Error())
		}
	}
	tok, err := h.Store.GetToken(r.Context(), se.TokenID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !tok.Revoked.IsZero()) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	a := admin.ActorOf(tok)
	a.Name += " via console"
	return &session{Session: se, CSRF: csrfToken(c.Value), Actor: a, API: h.Admin.As(a), key: flashKey(c.Value)}, nil
}

// sameOrigin refuses requests a browser marks as coming from elsewhere
// (defence in depth next to the CSRF token). Browsers that send
// Sec-Fetch-Site are believed; otherwise the Origin header, when present,
// must name this host.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// setCookie sets a console cookie: HttpOnly, Secure when the browser came
// over HTTPS. The session cookie is SameSite=Lax, so a link into the
// console (from a ticket, a mail, the SCEP server's /) opens it signed in;
// every form still needs the session's CSRF token. The sign-in nonce
// stays Strict: only the console's own form posts it.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	same := http.SameSiteStrictMode
	if name == sessionCookie {
		same = http.SameSiteLaxMode
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: cookiePath, MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure(r), SameSite: same})
}

// plainSignIn is the refusal of a sign-in that would carry an API token
// over plain HTTP from another machine ("" when it would not): anyone on
// the path would read it. The page says so instead of asking for it.
func (h *Handler) plainSignIn(r *http.Request) string {
	if h.InsecureHTTP || h.encrypted(r) || h.local(r) {
		return ""
	}
	return "Signing in here would send your API token unencrypted across the network. Open the console over HTTPS " +
		"(the admin listener with TLS, or a TLS proxy scepd trusts), or through an SSH tunnel to this machine " +
		"(ssh -L 8080:localhost:8080 HOST, then http://localhost:8080/console/); or start scepd with " +
		"--console-insecure-http on a network you trust."
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if msg := h.plainSignIn(r); msg != "" {
		h.render(w, r, nil, http.StatusForbidden, "login", "Sign in", map[string]any{"Refused": msg})
		return
	}
	nonce := randomToken()
	h.setCookie(w, r, loginCookie, nonce, 600)
	data := map[string]any{"Nonce": nonce, "Next": safeNext(r.URL.Query().Get("next"))}
	if r.URL.Query().Get("ended") == "idle" { // a fixed text; the URL chooses, never writes it
		data["Notice"] = h.idleMessage()
	}
	h.render(w, r, nil, http.StatusOK, "login", "Sign in", data)
}

// safeNext keeps a post-login redirect inside the console; otherwise the
// console's start page, which depends on the role (home).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/console/"
	}
	return next
}

// home is the page a role starts on: the dashboard for those who read, the
// challenges page for a token that only mints (mdm).
func home(a admin.Actor) string {
	if a.Allowed(admin.ActRead, "") {
		return "/console/dashboard"
	}
	return "/console/challenges"
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("nonce"))) != 1 {
		h.fail(w, r, nil, http.StatusForbidden, "The sign-in form expired or did not come from this console. Reload it and try again.")
		return
	}
	if msg := h.plainSignIn(r); msg != "" { // the token came anyway: not looked at, no session
		h.render(w, r, nil, http.StatusForbidden, "login", "Sign in", map[string]any{"Refused": msg})
		return
	}
	// Failed sign-ins are limited per client address as on the NDES page;
	// a locked-out address is refused before its token is looked at.
	client := h.clientIP(r)
	key := ratelimit.Host(client)
	lim := h.SignInFailures
	if lim.Blocked(key, h.Now()) {
		w.Header().Set("Retry-After", ratelimit.RetryAfter(lim.Span()))
		nonce := randomToken()
		h.setCookie(w, r, loginCookie, nonce, 600)
		h.render(w, r, nil, http.StatusTooManyRequests, "login", "Sign in", map[string]any{"Nonce": nonce, "Next": safeNext(r.PostFormValue("next")),
			"Error": fmt.Sprintf("Too many failed sign-ins from your address; try again in %v.", lim.Span())})
		return
	}
	actor, err := admin.Authenticate(ctx, h.Store, strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		if !errors.Is(err, admin.ErrUnauthenticated) {
			h.Log.Error("console sign-in failed", "error", err.Error())
			h.fail(w, r, nil, http.StatusServiceUnavailable, "The database is unreachable; try again shortly.")
			return
		}
		h.Log.Warn("console sign-in refused", "reason", err.Error(), "client_ip", client)
		h.auditEvent(ctx, "console", "console.signin", "denied", map[string]string{"client_ip": client, "reason": err.Error()})
		if lim.Fail(key, h.Now()) {
			h.Log.Warn("repeated failed console sign-ins; address locked out", "client_ip", client, "failures", lim.Max(), "window", lim.Span())
			h.auditEvent(ctx, "console", "console.signin.lockout", "blocked", map[string]string{"client_ip": client,
				"failures": strconv.Itoa(lim.Max()), "window": lim.Span().String()})
		}
		nonce := randomToken()
		h.setCookie(w, r, loginCookie, nonce, 600)
		h.render(w, r, nil, http.StatusUnauthorized, "login", "Sign in", map[string]any{"Nonce": nonce, "Next": safeNext(r.PostFormValue("next")),
			"Error": "That token is not valid (unknown, revoked or mistyped)."})
		return
	}
	id := randomToken()
	sum := sha256.Sum256([]byte(id))
	now := h.Now()
	if err := h.Store.CreateSession(ctx, store.Session{IDHash: sum[:], TokenID: actor.TokenID, CSRFHash: hashHex(csrfToken(id)), Created: now, Expires: now.Add(h.SessionTTL), LastSeen: now}); err != nil {
		h.Log.Error("console session create failed", "error", err.Error())
		h.fail(w, r, nil, http.StatusServiceUnavailable, "The database is unreachable; try again shortly.")
		return
	}
	h.Store.DeleteSessions(ctx, nil, now) // tidy expired ones
	h.auditEvent(ctx, actor.Name, "console.signin", "ok", map[string]string{"client_ip": client, "role": string(actor.Role)})
	h.setCookie(w, r, loginCookie, "", -1)
	h.setCookie(w, r, sessionCookie, id, int(h.SessionTTL/time.Second))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := h.Store.DeleteSessions(r.Context(), s.IDHash, h.Now()); err != nil {
		h.Log.Error("console sign-out failed", "error", err.Error())
	}
	h.auditEvent(r.Context(), s.Actor.Name, "console.signout", "ok", nil)
	h.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

func (h *Handler) auditEvent(ctx context.Context, actor, action, outcome string, details map[string]string) {
	if err := h.Store.AppendAudit(ctx, store.AuditEvent{Time: h.Now(), Actor: actor, Action: action, Object: "console", Outcome: outcome, Details: details}); err != nil {
		h.Log.Error("audit append failed", "action", action, "error", err.Error())
	}
}

// apiError renders an admin error with the status the REST API would use.
func (h *Handler) apiError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var decided *admin.DecidedError
	switch {
	case errors.As(err, &decided):
		h.render(w, r, s, http.StatusConflict, "error", "Already decided", map[string]any{
			"Message": decided.Error() + ". Nothing was changed.", "Back": "/console/requests?status=" + decided.Status, "BackTo": "the " + decided.Status + " requests"})
	case errors.Is(err, admin.ErrForbidden):
		h.fail(w, r, s, http.StatusForbidden, "Your token's role ("+string(s.Actor.Role)+") does not allow this.")
	case errors.Is(err, admin.ErrNotFound):
		h.fail(w, r, s, http.StatusNotFound, "Not found.")
	case errors.Is(err, admin.ErrInvalid):
		h.fail(w, r, s, http.StatusBadRequest, err.Error())
	default:
		h.Log.Error("console operation failed", "path", r.URL.Path, "error", err.Error())
		h.fail(w, r, s, http.StatusInternalServerError, "Something went wrong on the server; the details are in scepd's log.")
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	h.render(w, r, s, status, "error", fmt.Sprintf("%d %s", status, http.StatusText(status)), map[string]any{"Message": msg})
}
