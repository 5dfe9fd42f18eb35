package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/ratelimit"
)

// NDESPage configures the NDES-compatible admin page of a profile.
type NDESPage struct {
	// Username and Password (an argon2id validator) authenticate callers
	// besides API tokens; Password nil means tokens only.
	Username string
	Password *challenge.Static
	// UTF8 serves the page in UTF-8 instead of NDES's UTF-16LE.
	UTF8 bool
}

// Authorizer checks an API token: whether it is a valid token at all (and
// whose: actor), and whether it may mint challenges for the profile. An
// error means the token could not be checked (the store is unavailable):
// the caller is answered 503 and no failed authentication is counted, as
// a valid token must not lock its MDM out during an outage.
type Authorizer func(ctx context.Context, token, profile string) (actor string, valid, allowed bool, err error)

// credentials returns the secret a caller presented: a Bearer token, or the
// password of HTTP Basic (with its user name).
// Auth schemes are case-insensitive (RFC 9110 §11.1), as net/http's
// BasicAuth reads Basic.
func credentials(r *http.Request) (user, secret string, ok bool) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if strings.EqualFold(scheme, "Bearer") {
		return "", strings.TrimSpace(tok), true
	}
	return r.BasicAuth()
}

// gate authenticates a caller of a challenge endpoint and answers for it
// when it may not go on: 429 for a locked-out address (password not
// checked), 401 (via unauthenticated), 403, or 503 with Retry-After when
// the credential could not be checked (a token while the store is
// unavailable: not a failed authentication). It reports whether to mint.
//
// The lockout guards the password path only: a request with a valid API
// token is served even from a locked-out address, so ten bad passwords
// from a NAT address an MDM shares cannot lock that MDM out for the
// window (a 256-bit token is not guessed by retrying anyway).
//
// Only credentials presented and wrong count: a handshake's first leg
// (no Authorization header, or a scheme other than Basic or Bearer: some
// MDMs wait for the 401 before sending Basic, others start with NTLM or
// Negotiate, NDES running behind IIS, and fall back to the Basic the 401
// offers) is answered 401 without counting, or every
// fetch by an MDM with the right password would count one failure. A
// success does not forgive earlier failures: the key is an address, not
// an account, and a guesser sharing a NAT with an MDM could otherwise
// guess on between the MDM's fetches for ever; failures age out of the
// window instead.
func (s *Server) gate(w http.ResponseWriter, r *http.Request, p *Profile, endpoint string, unauthenticated, forbidden func()) bool {
	key := p.ID() + "|" + ratelimit.Host(r.RemoteAddr)
	lim := s.opts.MDMAuthFailures
	now := time.Now()
	user, secret, ok := credentials(r)
	if ok && secret != "" && !p.ndesUser(user) && s.opts.Authorize != nil {
		actor, valid, allowed, err := s.opts.Authorize(r.Context(), secret, p.ID())
		if err != nil {
			s.uncheckable(w, r, p, endpoint, "API token", err)
			return false
		}
		if valid {
			if !allowed {
				// Audited as the REST API audits a refusal: a valid token
				// reaching beyond its role or profiles.
				s.audit(r.Context(), "authz", "profile:"+p.ID(), "denied", map[string]string{"profile": p.ID(), "action": endpoint,
					"token": actor, "client_ip": r.RemoteAddr, "reason": "the token may not mint challenges for this profile"})
				forbidden()
			}
			return allowed
		}
	}
	if lim.Blocked(key, now) {
		s.limited(p, endpoint, "blocked")
		retryAfter(w, lim.Span())
		http.Error(w, "too many failed authentications from this address; retry later", http.StatusTooManyRequests)
		return false
	}
	if !ok {
		unauthenticated()
		return false
	}
	if valid, err := s.passwordOK(r, p, user, secret); err != nil {
		s.uncheckable(w, r, p, endpoint, "password", err)
		return false
	} else if !valid {
		if lim.Fail(key, now) {
			s.limited(p, endpoint, "lockout")
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "repeated failed authentications on a challenge endpoint; address locked out",
				slog.String("profile", p.ID()), slog.String("endpoint", endpoint), slog.String("remote", r.RemoteAddr),
				slog.Int("failures", lim.Max()), slog.Duration("window", lim.Span()))
			s.audit(r.Context(), endpoint+".lockout", "profile:"+p.ID(), "blocked", map[string]string{
				"profile": p.ID(), "endpoint": endpoint, "client_ip": r.RemoteAddr, "failures": strconv.Itoa(lim.Max()), "window": lim.Span().String()})
		}
		unauthenticated()
		return false
	}
	return true
}

// uncheckable answers 503 for a credential that could not be checked
// (err: the store unavailable, the request cancelled), counting nothing:
// the caller retries.
func (s *Server) uncheckable(w http.ResponseWriter, r *http.Request, p *Profile, endpoint, what string, err error) {
	if r.Context().Err() == nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "challenge endpoint: the "+what+" could not be checked",
			slog.String("profile", p.ID()), slog.String("endpoint", endpoint), slog.String("remote", r.RemoteAddr), slog.String("error", err.Error()))
	}
	w.Header().Set("Retry-After", "5")
	http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
}

func (s *Server) limited(p *Profile, endpoint, kind string) {
	if s.opts.OnLimit != nil {
		s.opts.OnLimit(p.ID(), endpoint, kind)
	}
}

// retryAfter sets Retry-After for a wait of d.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", ratelimit.RetryAfter(d))
}

// rateLimited answers a mint refused for its rate with 429.
func (s *Server) rateLimited(w http.ResponseWriter, p *Profile, endpoint string, err error) bool {
	var rl *challenge.RateLimited
	if !errors.As(err, &rl) {
		return false
	}
	s.limited(p, endpoint, "rate")
	retryAfter(w, rl.RetryAfter)
	http.Error(w, "challenges are requested too fast for this profile; retry later", http.StatusTooManyRequests)
	return true
}

// ndesUser reports whether user is the profile's NDES page user: its
// Basic password is checked against the page's password, not as a token.
func (p *Profile) ndesUser(user string) bool {
	n := p.cfg.NDES
	return n != nil && n.Password != nil && n.Username != "" && user == n.Username
}

// passwordOK checks the NDES page password (anything else that reaches it
// is a missing or invalid credential). The password is checked in memory,
// not in the store; an error is a check that did not happen (the request
// was cancelled waiting for its turn at the KDF), not a wrong password.
func (s *Server) passwordOK(r *http.Request, p *Profile, user, secret string) (bool, error) {
	if secret == "" || !p.ndesUser(user) {
		return false, nil
	}
	_, err := p.cfg.NDES.Password.Validate(r.Context(), challenge.Request{Password: secret})
	if errors.Is(err, challenge.ErrInvalid) {
		return false, nil
	}
	return err == nil, err
}

// mint creates a one-time challenge for an MDM.
func (s *Server) mint(ctx context.Context, p *Profile, note string) (string, time.Time, error) {
	if p.cfg.Dynamic == nil {
		return "", time.Time{}, errors.New("this profile does not hand out one-time challenges")
	}
	secret, exp, err := p.cfg.Dynamic.CreateFor(ctx, "", note)
	if err == nil && s.opts.OnChallenge != nil {
		via := note
		if i := strings.IndexByte(via, ' '); i > 0 {
			via = via[:i]
		}
		s.opts.OnChallenge(p.ID(), via)
	}
	if err == nil {
		s.audit(ctx, "challenge.create", "profile:"+p.ID(), "ok", map[string]string{"via": note, "expires_at": exp.UTC().Format(time.RFC3339)})
	}
	return secret, exp, err
}

// ndesAdmin serves the page NDES serves at /certsrv/mscep_admin/: Jamf Pro
// ("Dynamic-Microsoft CA"), Okta's generic dynamic SCEP, Workspace ONE and
// Ivanti fetch it and extract the password from
// "The enrollment challenge password is: <B> ... </B>".
func (s *Server) ndesAdmin(w http.ResponseWriter, r *http.Request, p *Profile) {
	if p == nil || p.cfg.NDES == nil {
		if p == nil {
			s.wrongURL(r, "NDES admin page request for an unknown profile", ndesHint)
		} else {
			s.wrongURL(r, "NDES admin page request for a profile without one", ndesHint, slog.String("profile", p.ID()))
		}
		http.Error(w, "no NDES admin page for this profile", http.StatusNotFound)
		return
	}
	const denied = "<P> You do not have sufficient permission to enroll with SCEP. Please contact your system administrator. </P>"
	if !s.gate(w, r, p, "ndes", func() {
		w.Header().Set("WWW-Authenticate", `Basic realm="scepd NDES admin"`)
		s.ndesPage(w, p, http.StatusUnauthorized, denied)
	}, func() {
		s.ndesPage(w, p, http.StatusForbidden, denied)
	}) {
		return
	}
	secret, exp, err := s.mint(r.Context(), p, "ndes")
	if s.rateLimited(w, p, "ndes", err) {
		return
	}
	if errors.Is(err, challenge.ErrCacheFull) {
		// NDES answers a full cache with this page and 200.
		s.ndesPage(w, p, http.StatusOK, "<P> The password cache is full. </P>")
		return
	}
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "NDES admin: minting a challenge failed", slog.String("profile", p.ID()), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "5")
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	body := fmt.Sprintf(`<P> To complete certificate enrollment for your network device you will need the following information: `+
		`<P> The thumbprint (hash value) for the CA certificate is: <B> %s </B> `+
		`<P> The enrollment challenge password is: <B> %s </B> `+
		`<P> This password can be used only once and will expire within %s. `+
		`<P> Each enrollment requires a new challenge password. You can refresh this web page to obtain a new challenge password. </P>`,
		p.caThumb, secret, expiresWithin(time.Until(exp)))
	s.ndesPage(w, p, http.StatusOK, body)
}

// expiresWithin words a challenge's remaining life as NDES does ("60
// minutes"), in seconds when it is under a minute.
func expiresWithin(d time.Duration) string {
	n, unit := int(d.Round(time.Minute)/time.Minute), "minute"
	if d < time.Minute {
		n, unit = int(d.Round(time.Second)/time.Second), "second"
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s", n, unit)
}

func (s *Server) ndesPage(w http.ResponseWriter, p *Profile, status int, body string) {
	charset := "UTF-16"
	if p.cfg.NDES != nil && p.cfg.NDES.UTF8 {
		charset = "UTF-8"
	}
	page := `<HTML><Head><Meta HTTP-Equiv="Content-Type" Content="text/html; charset=` + charset + `">` +
		`<Title>Network Device Enrollment Service</Title></Head><Body BgColor=#FFFFFF><Font ID=locPageFont Face="Arial">` +
		`<P ID=locPageTitle><B> Network Device Enrollment Service </B></P>` +
		`<P> Network Device Enrollment Service allows you to obtain certificates for routers or other network devices using the Simple Certificate Enrollment Protocol (SCEP). </P>` +
		body + `</Font></Body></HTML>`
	w.Header().Set("Cache-Control", "no-store")
	if charset == "UTF-8" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, page)
		return
	}
	// UTF-16LE without a BOM, as Windows NDES answers.
	units := utf16.Encode([]rune(page))
	out := make([]byte, 2*len(units))
	for i, u := range units {
		out[2*i], out[2*i+1] = byte(u), byte(u>>8)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-16le")
	w.WriteHeader(status)
	w.Write(out)
}

// jamfWebhook is the body of Jamf Pro's SCEPChallenge webhook.
type jamfWebhook struct {
	Webhook struct {
		ID             int    `json:"id"`
		Name           string `json:"name"`
		WebhookEvent   string `json:"webhookEvent"`
		EventTimestamp int64  `json:"eventTimestamp"`
	} `json:"webhook"`
	Event struct {
		ScepServerURL     string   `json:"scepServerUrl"`
		PayloadIdentifier string   `json:"payloadIdentifier"`
		PayloadTypes      []string `json:"payloadTypes"`
		Device            struct {
			SerialNumber string `json:"serialNumber"`
			UDID         string `json:"udid"`
			DeviceName   string `json:"deviceName"`
		} `json:"device"`
	} `json:"event"`
}

// parseJamfWebhook reads Jamf Pro's SCEPChallenge webhook and returns the
// note recorded with the challenge: the device's serial number and UDID,
// printable and cut to 64 characters each.
func parseJamfWebhook(r io.Reader) (string, error) {
	var hook jamfWebhook
	if err := json.NewDecoder(r).Decode(&hook); err != nil {
		return "", fmt.Errorf("jamf webhook: %w", err)
	}
	if hook.Webhook.WebhookEvent != "SCEPChallenge" {
		return "", fmt.Errorf("jamf webhook: event %q, want SCEPChallenge", challenge.Printable(hook.Webhook.WebhookEvent, 64))
	}
	d := hook.Event.Device
	if d.SerialNumber == "" && d.UDID == "" {
		return "jamf", nil
	}
	return "jamf serial=" + challenge.Printable(d.SerialNumber, 64) + " udid=" + challenge.Printable(d.UDID, 64), nil
}

// jamfChallenge answers Jamf Pro's "Dynamic" SCEP challenge webhook: the
// response body, as plain text, is the challenge Jamf puts in the profile.
func (s *Server) jamfChallenge(w http.ResponseWriter, r *http.Request) {
	p := s.Profile(r.PathValue("profile"))
	if p == nil || !p.cfg.Jamf {
		s.wrongURL(r, "Jamf webhook for an unknown profile or one without the webhook", jamfHint, slog.String("profile", truncate(r.PathValue("profile"), 64)))
		http.Error(w, "no Jamf challenge endpoint for this profile", http.StatusNotFound)
		return
	}
	if !s.gate(w, r, p, "jamf", func() {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scepd"`)
		http.Error(w, "missing or invalid credentials", http.StatusUnauthorized)
	}, func() {
		http.Error(w, "this token may not mint challenges for this profile", http.StatusForbidden)
	}) {
		return
	}
	note, err := parseJamfWebhook(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		http.Error(w, "expected a Jamf SCEPChallenge webhook", http.StatusBadRequest)
		return
	}
	secret, _, err := s.mint(r.Context(), p, note)
	if s.rateLimited(w, p, "jamf", err) {
		return
	}
	switch {
	case errors.Is(err, challenge.ErrCacheFull):
		w.Header().Set("Retry-After", "60")
		http.Error(w, "the pending challenge limit is reached", http.StatusTooManyRequests)
		return
	case err != nil:
		s.log.LogAttrs(r.Context(), slog.LevelError, "Jamf webhook: minting a challenge failed", slog.String("profile", p.ID()), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "5")
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, secret)
}

func (s *Server) audit(ctx context.Context, action, object, outcome string, details map[string]string) {
	if s.opts.Audit != nil {
		s.opts.Audit(ctx, action, object, outcome, details)
	}
}
