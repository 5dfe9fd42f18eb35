package admin

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/ratelimit"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/store"
)

// maxRequest bounds API request bodies (an imported CA chain fits easily).
const maxRequest = 1 << 20

// route is one API operation: the mux pattern, its OpenAPI description
// and its handler. The mux and the OpenAPI document are both built from
// the same table, so they cannot disagree.
type route struct {
	method, path string
	summary      string
	// body and response name schemas in the OpenAPI document.
	body, response string
	// query lists query parameters.
	query   []string
	handler func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error
}

var routes = []route{
	{"GET", "/api/v1/cas", "List CAs", "", "CAList", nil, func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
		v, err := api.ListCAs(r.Context())
		return reply(w, http.StatusOK, v, err)
	}},
	{"POST", "/api/v1/cas", "Create a root or intermediate CA, or import one (PEM inline)", "CASpec", "CA", nil, func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
		var spec config.CA
		if err := decode(r, &spec); err != nil {
			return err
		}
		v, err := api.CreateCA(r.Context(), spec)
		return reply(w, http.StatusCreated, v, err)
	}},
	{"GET", "/api/v1/cas/{id}", "Show a CA", "", "CA", nil, func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
		v, err := api.GetCA(r.Context(), r.PathValue("id"))
		return reply(w, http.StatusOK, v, err)
	}},
	{"GET", "/api/v1/cas/{id}/chain", "Download the CA chain: format=pem (default) or der (the CA certificate alone)", "", "binary", []string{"format"},
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			chain, err := api.CAChain(r.Context(), r.PathValue("id"))
			if err != nil {
				return err
			}
			return writeCerts(w, r.URL.Query().Get("format"), chain)
		}},
	{"GET", "/api/v1/profiles", "List profiles", "", "ProfileList", nil, func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
		v, err := api.ListProfiles(r.Context())
		return reply(w, http.StatusOK, v, err)
	}},
	{"POST", "/api/v1/profiles", "Create or replace a profile (not one the config file declares)", "ProfileSpec", "Profile", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			var spec config.Profile
			if err := decode(r, &spec); err != nil {
				return err
			}
			v, err := api.PutProfile(r.Context(), spec)
			return reply(w, http.StatusOK, v, err)
		}},
	{"GET", "/api/v1/profiles/{id}", "Show a profile", "", "Profile", nil, func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
		v, err := api.GetProfile(r.Context(), r.PathValue("id"))
		return reply(w, http.StatusOK, v, err)
	}},
	{"PUT", "/api/v1/profiles/{id}", "Replace a profile", "ProfileSpec", "Profile", nil, func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
		var spec config.Profile
		if err := decode(r, &spec); err != nil {
			return err
		}
		if spec.ID == "" {
			spec.ID = r.PathValue("id")
		}
		if spec.ID != r.PathValue("id") {
			return fmt.Errorf("%w: the body's id %q differs from the URL's", errBadRequest, spec.ID)
		}
		v, err := api.PutProfile(r.Context(), spec)
		return reply(w, http.StatusOK, v, err)
	}},
	{"POST", "/api/v1/profiles/{id}/policy-test", "Dry-run the policy on a CSR (PEM or DER body)", "CSR", "PolicyResult", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
			if err != nil {
				return fmt.Errorf("%w: %v", errBadRequest, err)
			}
			if block, _ := pem.Decode(b); block != nil {
				b = block.Bytes
			}
			v, err := api.PolicyTest(r.Context(), r.PathValue("id"), b)
			return reply(w, http.StatusOK, v, err)
		}},
	{"POST", "/api/v1/profiles/{id}/challenges", "Mint a one-time challenge (JSON, or text/plain with Accept: text/plain); bind=CN or SAN value restricts it to that device", "", "Challenge", []string{"bind"},
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			v, err := api.CreateChallenge(r.Context(), r.PathValue("id"), r.URL.Query().Get("bind"))
			if err == nil && strings.Contains(r.Header.Get("Accept"), "text/plain") {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Cache-Control", "no-store")
				_, err = io.WriteString(w, v.Challenge)
				return err
			}
			w.Header().Set("Cache-Control", "no-store")
			return reply(w, http.StatusCreated, v, err)
		}},
	{"GET", "/api/v1/profiles/{id}/challenges", "List the profile's pending one-time challenges: id, bound_to, created, expires, by (never the secret); not for mdm tokens", "", "PendingChallengeList", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			v, err := api.ListChallenges(r.Context(), r.PathValue("id"))
			return reply(w, http.StatusOK, v, err)
		}},
	{"DELETE", "/api/v1/profiles/{id}/challenges/{challenge}", "Cancel a pending one-time challenge by its id (operators and admins)", "", "", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			if err := api.CancelChallenge(r.Context(), r.PathValue("id"), r.PathValue("challenge")); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}},
	{"POST", "/api/v1/profiles/{id}/challenge/rotate", "Replace a static challenge: {\"password\": ... (generated if empty), \"overlap\": \"24h\"}", "RotateRequest", "Challenge", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			var req struct {
				Password string `json:"password"`
				Overlap  string `json:"overlap"`
			}
			if err := decode(r, &req); err != nil {
				return err
			}
			var overlap time.Duration
			if req.Overlap != "" {
				var err error
				if overlap, err = time.ParseDuration(req.Overlap); err != nil {
					return fmt.Errorf("%w: overlap %q", errBadRequest, req.Overlap)
				}
			}
			v, err := api.RotateChallenge(r.Context(), r.PathValue("id"), req.Password, overlap)
			w.Header().Set("Cache-Control", "no-store")
			return reply(w, http.StatusOK, v, err)
		}},
	{"PUT", "/api/v1/profiles/{id}/entities/{username}", "Register an end entity: {\"code\": (generated if empty), \"uses\": 1, \"ttl\": \"168h\"}", "EntityRequest", "Entity", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			var req EntityRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			req.Username = r.PathValue("username")
			v, err := api.PutEntity(r.Context(), r.PathValue("id"), req)
			w.Header().Set("Cache-Control", "no-store")
			return reply(w, http.StatusOK, v, err)
		}},
	{"GET", "/api/v1/profiles/{id}/entities", "List a profile's end entities (never their codes)", "", "EntityList", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			v, err := api.ListEntities(r.Context(), r.PathValue("id"))
			return reply(w, http.StatusOK, v, err)
		}},
	{"GET", "/api/v1/certificates", "List certificates, newest first (sort=expiry: the soonest to expire first), a page at a time: limit (default 100, at most 1000; more is an error) rows, and the " + NextCursorHeader +
		" response header, when present, is the cursor of the next page (repeat the query with cursor=it). status is valid (not expired), expired or revoked; serial is a serial or its beginning, in hex (colons, spaces, 0x allowed) or decimal, and may repeat (up to 100 times); subject and san match a part; offset is at most 100000 (page deeper by cursor)", "", "CertificateList",
		[]string{"profile", "subject", "san", "serial", "status", "expiring_before", "sort", "limit", "cursor", "offset"},
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			q := r.URL.Query()
			f, err := certQuery(q)
			if err != nil {
				return err
			}
			if f.Limit, err = intParam(q.Get("limit")); err != nil {
				return err
			}
			if f.Offset, err = intParam(q.Get("offset")); err != nil {
				return err
			}
			if f.After, err = DecodeCursor(q.Get("cursor")); err != nil {
				return err
			}
			page, err := api.ListCertificates(r.Context(), f)
			if err == nil && !page.Next.IsZero() {
				w.Header().Set(NextCursorHeader, EncodeCursor(page.Next))
			}
			return reply(w, http.StatusOK, page.Certificates, err)
		}},
	{"GET", "/api/v1/certificates/count", "Count the certificates a listing with the same filters (profile, subject, san, serial, status, expiring_before) lists over all its pages: {\"count\": N}", "", "Count",
		[]string{"profile", "subject", "san", "serial", "status", "expiring_before"},
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			f, err := certQuery(r.URL.Query())
			if err != nil {
				return err
			}
			n, err := api.CountCertificates(r.Context(), f)
			return reply(w, http.StatusOK, countView{Count: n}, err)
		}},
	{"GET", "/api/v1/certificates/{serial}", "Show a certificate; append .pem or .der to download it", "", "Certificate", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			serial, ext, _ := strings.Cut(r.PathValue("serial"), ".")
			v, err := api.GetCertificate(r.Context(), serial)
			if err != nil || ext == "" {
				return reply(w, http.StatusOK, v, err)
			}
			return writeCerts(w, ext, [][]byte{v.DER})
		}},
	{"POST", "/api/v1/certificates/{serial}/revoke", "Revoke a certificate: {\"reason\": \"keyCompromise\"}; the CRL is published at once", "RevokeRequest", "Certificate", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			var req revokeRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			v, err := api.Revoke(r.Context(), r.PathValue("serial"), req.Reason)
			return reply(w, http.StatusOK, v, err)
		}},
	{"POST", "/api/v1/certificates/revoke-subject", "Revoke every valid certificate with exactly this subject: {\"subject\": ..., \"reason\": ...}", "RevokeRequest", "CertificateList", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			var req revokeRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			v, err := api.RevokeSubject(r.Context(), req.Subject, req.Reason)
			return reply(w, http.StatusOK, v, err)
		}},
	{"GET", "/api/v1/requests", "List enrollment requests: status=pending (default), issued or rejected", "", "RequestList", []string{"profile", "status"},
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			v, err := api.ListRequests(r.Context(), r.URL.Query().Get("profile"), r.URL.Query().Get("status"))
			return reply(w, http.StatusOK, v, err)
		}},
	{"GET", "/api/v1/requests/newest", "List enrollment requests newest first, a page at a time: status=pending (default), issued or rejected; limit (default 100, at most 1000) rows; the " + NextCursorHeader +
		" response header, when present, is the cursor of the next page (repeat the query with cursor=it)", "", "RequestList", []string{"profile", "status", "limit", "cursor"},
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			q := r.URL.Query()
			f := store.TransactionFilter{ProfileID: q.Get("profile"), Status: q.Get("status")}
			var err error
			if f.Limit, err = intParam(q.Get("limit")); err != nil {
				return err
			}
			if f.Before, err = DecodeRequestCursor(q.Get("cursor")); err != nil {
				return err
			}
			page, err := api.ListRequestPage(r.Context(), f)
			if err == nil && !page.Next.IsZero() {
				w.Header().Set(NextCursorHeader, EncodeRequestCursor(page.Next))
			}
			return reply(w, http.StatusOK, page.Requests, err)
		}},
	{"GET", "/api/v1/requests/{profile}/{transaction}", "Show a request, with its CSR (DER, base64)", "", "Request", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			v, err := api.GetRequest(r.Context(), r.PathValue("profile"), r.PathValue("transaction"))
			return reply(w, http.StatusOK, v, err)
		}},
	{"POST", "/api/v1/requests/{profile}/{transaction}/approve", "Approve a pending request: the certificate is issued; the polling client collects it", "", "Certificate", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			v, err := api.Approve(r.Context(), r.PathValue("profile"), r.PathValue("transaction"))
			return reply(w, http.StatusOK, v, err)
		}},
	{"POST", "/api/v1/requests/{profile}/{transaction}/reject", "Reject a pending request: {\"reason\": ...}", "RejectRequest", "", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			var req revokeRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			if err := api.Reject(r.Context(), r.PathValue("profile"), r.PathValue("transaction"), req.Reason); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}},
	{"GET", "/api/v1/tokens", "List API tokens (never their secrets)", "", "TokenList", nil, func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
		v, err := api.ListTokens(r.Context())
		return reply(w, http.StatusOK, v, err)
	}},
	{"POST", "/api/v1/tokens", "Create an API token; the secret is in this answer only", "TokenRequest", "NewToken", nil,
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			var req TokenRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			v, err := api.CreateToken(r.Context(), req)
			w.Header().Set("Cache-Control", "no-store")
			return reply(w, http.StatusCreated, v, err)
		}},
	{"DELETE", "/api/v1/tokens/{id}", "Revoke an API token", "", "", nil, func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
		if err := api.RevokeToken(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}},
	{"GET", "/api/v1/audit", "Read the audit log, newest first", "", "AuditList", []string{"limit"},
		func(h *Handler, w http.ResponseWriter, r *http.Request, api API) error {
			limit, err := intParam(r.URL.Query().Get("limit"))
			if err != nil {
				return err
			}
			v, err := api.ListAudit(r.Context(), limit)
			return reply(w, http.StatusOK, v, err)
		}},
}

type revokeRequest struct {
	Subject string `json:"subject,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Handler serves the REST API.
type Handler struct {
	Service *Service
	Log     *slog.Logger
}

// Routes returns the API's mux: every route of the table plus the OpenAPI
// document at /api/v1/openapi.json.
func (h *Handler) Routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(OpenAPI())
	})
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			h.serve(w, r, rt)
		})
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such API route: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// RequireToken serves next only to requests with a valid API token of a
// role that reads (admin, operator, auditor: not mdm, the token handed to
// MDM vendors) and is limited to no profiles (what next shows covers every
// profile); others get 401 or 403 in the API's error format.
func (h *Handler) RequireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor, ok := h.bearer(w, r)
		if !ok {
			return
		}
		if !actor.Allowed(ActRead, "") {
			h.fail(w, r, fmt.Errorf("%w: role %s does not read metrics", ErrForbidden, actor.Role))
			return
		}
		if len(actor.Profiles) > 0 {
			h.fail(w, r, fmt.Errorf("%w: this token is limited to profiles %v", ErrForbidden, actor.Profiles))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer authenticates a request's "Authorization: Bearer" token; on
// failure it has answered (401 or 403) and reports false.
func (h *Handler) bearer(w http.ResponseWriter, r *http.Request) (Actor, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scepd"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", ErrUnauthenticated.Error())
		return Actor{}, false
	}
	actor, err := Authenticate(r.Context(), h.Service.Store, strings.TrimSpace(token))
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			// Why goes to the log (a revoked token still in use, a
			// mistyped one), never to the client.
			h.Log.LogAttrs(r.Context(), slog.LevelWarn, "API token refused", slog.String("reason", err.Error()),
				slog.String("remote", r.RemoteAddr), slog.String("method", r.Method), slog.String("path", r.URL.Path))
		}
		h.fail(w, r, err)
		return Actor{}, false
	}
	return actor, true
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rt route) {
	actor, ok := h.bearer(w, r)
	if !ok {
		return
	}
	if err := rt.handler(h, w, r, h.Service.As(actor)); err != nil {
		h.fail(w, r, err)
	}
}

var errBadRequest = errors.New("bad request")

// fail maps an error to a status and a stable code. Internal errors are
// logged and answered without their text.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var cfgErr config.Errors
	var rate *challenge.RateLimited
	var decided *DecidedError
	var upstreamCA *revocation.UpstreamError
	switch {
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="scepd"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", ErrUnauthenticated.Error())
	case errors.Is(err, ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden", err.Error())
	case errors.Is(err, provision.ErrManaged):
		writeError(w, http.StatusConflict, "managed_by_config", err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "not found")
	case errors.As(err, &upstreamCA):
		writeError(w, http.StatusConflict, "upstream_ca", upstreamCA.Error())
	case errors.As(err, &decided):
		writeError(w, http.StatusConflict, "already_decided", decided.Error())
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "already exists")
	case errors.As(err, &rate):
		w.Header().Set("Retry-After", ratelimit.RetryAfter(rate.RetryAfter))
		writeError(w, http.StatusTooManyRequests, "rate_limited", err.Error())
	case errors.Is(err, challenge.ErrCacheFull), errors.Is(err, store.ErrLimit):
		writeError(w, http.StatusTooManyRequests, "limit", err.Error())
	case errors.Is(err, provision.ErrInvalid), errors.Is(err, errBadRequest), errors.As(err, &cfgErr):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, store.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the database is unavailable; retry later")
	default:
		h.Log.Error("API internal error", "method", r.Method, "path", r.URL.Path, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "internal", "internal error; the server log has the details")
	}
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e apiError
	e.Error.Code, e.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

func reply(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// decode reads a JSON body strictly: unknown fields are errors.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", errBadRequest, err)
	}
	return nil
}

// countView is the answer of a count.
type countView struct {
	Count int `json:"count"`
}

// certQuery reads a certificate listing's filters from a query.
func certQuery(q url.Values) (store.CertificateFilter, error) {
	f := store.CertificateFilter{ProfileID: q.Get("profile"), Subject: q.Get("subject"), SAN: q.Get("san"), Status: q.Get("status")}
	switch q.Get("sort") {
	case "", "newest":
	case "expiry":
		f.Order = store.CertOrderExpiry
	default:
		return f, fmt.Errorf("%w: sort must be newest or expiry", errBadRequest)
	}
	if s := q.Get("expiring_before"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return f, fmt.Errorf("%w: expiring_before must be RFC 3339, e.g. 2027-01-31T00:00:00Z", errBadRequest)
		}
		f.ExpiringBefore = t
	}
	for _, s := range q["serial"] {
		ps, err := SerialPrefixes(s)
		if err != nil {
			return f, err
		}
		f.SerialPrefixes = append(f.SerialPrefixes, ps...)
	}
	return f, nil
}

// NextCursorHeader is the response header of a listing that carries the
// cursor of its next page. A header keeps the body the plain array it
// always was.
const NextCursorHeader = "Next-Cursor"

// EncodeCursor is a page key as an opaque URL-safe token: the creation
// time (RFC 3339, nanoseconds, UTC), a space, the serial.
func EncodeCursor(k store.CertificateKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte(k.Created.UTC().Format(time.RFC3339Nano) + " " + k.Serial))
}

// DecodeCursor reads a token of EncodeCursor; empty is the first page.
func DecodeCursor(s string) (store.CertificateKey, error) {
	if s == "" {
		return store.CertificateKey{}, nil
	}
	bad := fmt.Errorf("%w: cursor is not one this server gave out", errBadRequest)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.CertificateKey{}, bad
	}
	ts, serial, ok := strings.Cut(string(b), " ")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || serial == "" {
		return store.CertificateKey{}, bad
	}
	return store.CertificateKey{Created: t, Serial: serial}, nil
}

// EncodeRequestCursor is EncodeCursor of a request page's key.
func EncodeRequestCursor(k store.TransactionKey) string {
	return EncodeCursor(store.CertificateKey{Created: k.Created, Serial: k.TransactionID})
}

// DecodeRequestCursor reads a token of EncodeRequestCursor.
func DecodeRequestCursor(s string) (store.TransactionKey, error) {
	k, err := DecodeCursor(s)
	return store.TransactionKey{Created: k.Created, TransactionID: k.Serial}, err
}

func intParam(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %q is not a non-negative number", errBadRequest, s)
	}
	return n, nil
}

// writeCerts answers certificates as PEM (all) or DER (the first).
func writeCerts(w http.ResponseWriter, format string, ders [][]byte) error {
	switch format {
	case "", "pem":
		w.Header().Set("Content-Type", "application/x-pem-file")
		for _, d := range ders {
			pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: d})
		}
		return nil
	case "der", "crt", "cer":
		w.Header().Set("Content-Type", "application/pkix-cert")
		_, err := w.Write(ders[0])
		return err
	}
	return fmt.Errorf("%w: format %q: want pem or der", errBadRequest, format)
}
