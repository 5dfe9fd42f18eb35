package console

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/scepd/scepd/internal/admin"
	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/store"
)

// redirectMsg sends the browser to path with a message for that page,
// kept in the session (never in the URL, where anyone could write one).
func (h *Handler) redirectMsg(w http.ResponseWriter, r *http.Request, s *session, path, msg string) {
	h.redirectFlash(w, r, s, path, flash{Msg: msg})
}

// ---- dashboard ----

type profileStat struct {
	ID                          string
	Valid, Revoked, Exp7, Exp30 int
}

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	if !s.Actor.Allowed(admin.ActRead, "") {
		h.apiError(w, r, s, admin.ErrForbidden)
		return
	}
	days := 30
	if r.URL.Query().Get("days") == "90" {
		days = 90
	}
	now := h.Now().UTC()
	since := now.Truncate(24*time.Hour).AddDate(0, 0, -days+1)
	perDay, err := h.Store.IssuedPerDay(ctx, since)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	perDay = slices.DeleteFunc(perDay, func(d store.DayCount) bool { return !s.Actor.Allowed(admin.ActRead, d.ProfileID) })
	stats := map[string]*profileStat{}
	for _, within := range []time.Duration{7 * 24 * time.Hour, 30 * 24 * time.Hour} {
		list, err := h.Store.CertificateStats(ctx, now, within)
		if err != nil {
			h.apiError(w, r, s, err)
			return
		}
		for _, st := range list {
			if !s.Actor.Allowed(admin.ActRead, st.ProfileID) {
				continue
			}
			p := stats[st.ProfileID]
			if p == nil {
				p = &profileStat{ID: st.ProfileID, Valid: st.Valid, Revoked: st.Revoked}
				stats[st.ProfileID] = p
			}
			if within == 7*24*time.Hour {
				p.Exp7 = st.Expiring
			} else {
				p.Exp30 = st.Expiring
			}
		}
	}
	var profs []profileStat
	total := profileStat{ID: "all"}
	for _, p := range stats {
		profs = append(profs, *p)
		total.Valid += p.Valid
		total.Revoked += p.Revoked
		total.Exp7 += p.Exp7
		total.Exp30 += p.Exp30
	}
	slices.SortFunc(profs, func(a, b profileStat) int { return cmp.Compare(a.ID, b.ID) })
	pending, err := s.API.ListRequests(ctx, "", store.StatusPending)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	// Failures come from the audit trail, which not every role may read
	// (operators act, auditors and admins read), counted in the database
	// over the whole week.
	var failures []store.FailureCount
	auditVisible := s.Actor.ReadsAudit()
	if auditVisible {
		if failures, err = h.Store.EnrollFailures(ctx, now.Add(-7*24*time.Hour), s.Actor.Profiles); err != nil {
			h.apiError(w, r, s, err)
			return
		}
	}
	h.render(w, r, s, http.StatusOK, "dashboard", "Dashboard", map[string]any{
		"Days": days, "Chart": buildChart(perDay, since, days), "PerDay": perDay, "Profiles": profs, "Total": total,
		"Pending": len(pending), "Failures": failures, "AuditVisible": auditVisible,
	})
}

// chart is a server-drawn stacked bar chart (SVG, no script).
type chart struct {
	Width, Height int
	Max           int
	Bars          []bar
	Legend        []legend
	Total         int
}

type bar struct {
	X, W  int
	Day   string
	Total int
	Segs  []seg
}

type seg struct {
	Y, H  int
	Color string
	Title string
}

type legend struct{ Profile, Color string }

var palette = []string{"#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563"}

func buildChart(perDay []store.DayCount, since time.Time, days int) chart {
	c := chart{Width: 720, Height: 160}
	byDay := map[string]map[string]int{}
	colors := map[string]string{}
	for _, d := range perDay {
		if byDay[d.Day] == nil {
			byDay[d.Day] = map[string]int{}
		}
		byDay[d.Day][d.ProfileID] += d.Count
		if _, ok := colors[d.ProfileID]; !ok {
			colors[d.ProfileID] = palette[len(colors)%len(palette)]
			c.Legend = append(c.Legend, legend{d.ProfileID, colors[d.ProfileID]})
		}
	}
	slices.SortFunc(c.Legend, func(a, b legend) int { return cmp.Compare(a.Profile, b.Profile) })
	for i := range days {
		day := since.AddDate(0, 0, i).Format("2006-01-02")
		n := 0
		for _, v := range byDay[day] {
			n += v
		}
		c.Max = max(c.Max, n)
		c.Total += n
	}
	scale := float64(c.Height-20) / float64(max(c.Max, 1))
	w := c.Width / days
	for i := range days {
		day := since.AddDate(0, 0, i).Format("2006-01-02")
		b := bar{X: i * w, W: max(w-2, 1), Day: day}
		y := c.Height
		for _, l := range c.Legend {
			n := byDay[day][l.Profile]
			if n == 0 {
				continue
			}
			hgt := max(int(float64(n)*scale), 1)
			y -= hgt
			b.Segs = append(b.Segs, seg{Y: y, H: hgt, Color: l.Color, Title: fmt.Sprintf("%s: %d issued on %s", l.Profile, n, day)})
			b.Total += n
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// ---- profiles ----

// scepBase is the base of the SCEP URLs the console shows and what it is:
// the public URL when set, else the SCEP listener's address (with the
// host the console was reached at when the listener has none, or is the
// console's own).
func (h *Handler) scepBase(r *http.Request) (base, source string) {
	if h.PublicURL != "" {
		return strings.TrimSuffix(h.PublicURL, "/"), "public"
	}
	if h.SCEPAddr == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return scheme + "://" + r.Host, "listener"
	}
	host, port, err := net.SplitHostPort(h.SCEPAddr)
	if err != nil {
		return "http://" + h.SCEPAddr, "listener"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// Listening on every address: the name the operator reached this
		// host by is the best guess of one devices can reach too.
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		} else {
			host = r.Host
		}
	}
	// The SCEP listener is plain HTTP (RFC 8894 §2.1: the messages are
	// protected by CMS, not by the transport).
	return "http://" + net.JoinHostPort(host, port), "listener"
}

func (h *Handler) profiles(w http.ResponseWriter, r *http.Request, s *session) {
	list, err := s.API.ListProfiles(r.Context())
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	base, source := h.scepBase(r)
	h.render(w, r, s, http.StatusOK, "profiles", "Profiles", map[string]any{"Profiles": list, "Base": base, "BaseSource": source})
}

func (h *Handler) profile(w http.ResponseWriter, r *http.Request, s *session) {
	p, err := s.API.GetProfile(r.Context(), r.PathValue("id"))
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	policy, _ := yaml.Marshal(p.Policy)
	base, source := h.scepBase(r)
	if len(bytes.TrimSpace(policy)) == 0 || string(bytes.TrimSpace(policy)) == "{}" {
		policy = []byte("# nothing set: every default applies (listed above)\n")
	}
	h.render(w, r, s, http.StatusOK, "profile", "Profile "+p.ID, map[string]any{"P": p, "URL": base + p.Path, "BaseSource": source, "Policy": string(policy),
		"Settings": profileSettings(p)})
}

const profileTemplate = `id: new-profile
ca: CA-ID
challenge:
  mode: dynamic
  ttl: 60m
policy:
  validity: 8760h
  ext_key_usage: [clientAuth]
`

func (h *Handler) profileForm(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.Actor.Allowed(admin.ActManage, "") {
		h.apiError(w, r, s, admin.ErrForbidden)
		return
	}
	spec := profileTemplate
	// "Replace this profile" names it; only an ID, never text of the
	// link's choosing, goes into the form.
	if id := r.URL.Query().Get("id"); config.ValidID(id) {
		spec = strings.Replace(spec, "new-profile", id, 1)
	}
	h.render(w, r, s, http.StatusOK, "profile_form", "Create or replace a profile", map[string]any{"Spec": spec})
}

func (h *Handler) profileSave(w http.ResponseWriter, r *http.Request, s *session) {
	spec := r.PostFormValue("spec")
	var p config.Profile
	dec := yaml.NewDecoder(strings.NewReader(spec))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		h.render(w, r, s, http.StatusBadRequest, "profile_form", "Create or replace a profile", map[string]any{"Spec": spec, "Error": "YAML: " + err.Error()})
		return
	}
	v, err := s.API.PutProfile(r.Context(), p)
	if err != nil {
		if errors.Is(err, admin.ErrInvalid) {
			h.render(w, r, s, http.StatusBadRequest, "profile_form", "Create or replace a profile", map[string]any{"Spec": spec, "Error": err.Error()})
			return
		}
		h.apiError(w, r, s, err)
		return
	}
	h.redirectMsg(w, r, s, "/console/profiles/"+v.ID, "Profile "+v.ID+" saved.")
}

// ---- certificates ----

const pageSize = 50

func (h *Handler) certificates(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := store.CertificateFilter{ProfileID: q.Get("profile"), Subject: strings.TrimSpace(q.Get("subject")), SAN: strings.TrimSpace(q.Get("san")),
		Status: q.Get("status"), Limit: pageSize}
	var problems []string
	if v := q.Get("expires_from"); v != "" {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			problems = append(problems, "expires from: want a date")
		}
		f.ExpiringAfter = t
	}
	if v := q.Get("expires_to"); v != "" {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			problems = append(problems, "expires to: want a date")
		}
		f.ExpiringBefore = t.AddDate(0, 0, 1)
	}
	if v := strings.TrimSpace(q.Get("serial")); v != "" {
		ps, err := admin.SerialPrefixes(v)
		if err != nil {
			problems = append(problems, "serial: want hex (with or without colons, spaces or 0x) or decimal digits")
		}
		f.SerialPrefixes = ps
	}
	if v := q.Get("within"); v != "" {
		// The dashboard's "expiring within N days": valid, notAfter
		// before now plus N days.
		days, err := strconv.Atoi(v)
		if err != nil || days < 1 || days > 3650 {
			problems = append(problems, "within: want a number of days")
		}
		f.ExpiringBefore = h.Now().AddDate(0, 0, days)
	}
	if q.Get("sort") == "expiry" {
		f.Order = store.CertOrderExpiry
	}
	switch f.Status {
	case "", store.CertValid, store.CertRevoked, admin.CertExpired:
	default:
		problems = append(problems, "status: want valid, expired or revoked")
		f.Status = ""
	}
	after, err := admin.DecodeCursor(q.Get("after"))
	if err != nil {
		problems = append(problems, "this page's link is not one the console made; showing the first page")
	}
	f.After = after
	data := map[string]any{"Q": q, "Problems": problems, "Certs": []admin.CertView{}}
	if len(problems) == 0 {
		page, err := s.API.ListCertificates(r.Context(), f)
		if err != nil {
			h.apiError(w, r, s, err)
			return
		}
		data["Certs"] = page.Certificates
		if !page.Next.IsZero() {
			data["Next"] = certPageURL(q, admin.EncodeCursor(page.Next))
		}
		if !after.IsZero() {
			data["First"] = certPageURL(q, "")
		}
		total, err := s.API.CountCertificates(r.Context(), f)
		if err != nil {
			h.apiError(w, r, s, err)
			return
		}
		data["Total"] = total
	}
	profiles, _ := s.API.ListProfiles(r.Context())
	data["Profiles"] = profiles
	h.render(w, r, s, http.StatusOK, "certificates", "Certificates", data)
}

// certPageURL is the certificate search q from a cursor (keyset paging:
// a page is as quick to find deep in 100,000 certificates as at the
// start); "" is the first page.
func certPageURL(q url.Values, after string) string {
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	v.Del("after")
	if after != "" {
		v.Set("after", after)
	}
	return "/console/certificates?" + v.Encode()
}

func (h *Handler) certificate(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	c, err := s.API.GetCertificate(ctx, r.PathValue("serial"))
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	// The renewal chain: what this certificate renewed, back to the
	// first, and what renewed it, forward to the newest.
	var chain []admin.CertView
	for prev, i := c.RenewedSerial, 0; prev != "" && i < 20; i++ {
		p, err := s.API.GetCertificate(ctx, prev)
		if err != nil {
			break
		}
		chain = append([]admin.CertView{p}, chain...)
		prev = p.RenewedSerial
	}
	chain = append(chain, c)
	for cur, i := c.Serial, 0; i < 20; i++ {
		next, err := s.API.ListCertificates(ctx, store.CertificateFilter{RenewedSerial: cur, ProfileID: c.Profile, Limit: 1})
		if err != nil || len(next.Certificates) == 0 {
			break
		}
		chain = append(chain, next.Certificates[0])
		cur = next.Certificates[0].Serial
	}
	sum := sha256.Sum256(c.DER)
	h.render(w, r, s, http.StatusOK, "certificate", "Certificate "+c.Serial, map[string]any{
		"C": c, "Decoded": decode(c.DER), "SHA256": strings.ToUpper(hex.EncodeToString(sum[:])), "Chain": chain,
		"Reasons": ca.ReasonNames(),
	})
}

func (h *Handler) download(w http.ResponseWriter, r *http.Request, s *session) {
	c, err := s.API.GetCertificate(r.Context(), r.PathValue("serial"))
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	if r.URL.Query().Get("format") == "der" {
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Header().Set("Content-Disposition", `attachment; filename="`+c.Serial+`.cer"`)
		w.Write(c.DER)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="`+c.Serial+`.pem"`)
	pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, s *session) {
	serial := r.PathValue("serial")
	if r.PostFormValue("confirm") != "yes" {
		h.fail(w, r, s, http.StatusBadRequest, "Tick the confirmation box to revoke.")
		return
	}
	c, err := s.API.Revoke(r.Context(), serial, r.PostFormValue("reason"))
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	h.redirectMsg(w, r, s, "/console/certificates/"+c.Serial, "Certificate revoked; the CRL was published again.")
}

// ---- pending requests ----

func (h *Handler) requests(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	status := q.Get("status")
	if status == "" {
		status = store.StatusPending
	}
	f := store.TransactionFilter{ProfileID: q.Get("profile"), Status: status, Limit: pageSize}
	data := map[string]any{"Status": status, "Requests": []admin.RequestView{}}
	if k, err := admin.DecodeRequestCursor(q.Get("after")); err != nil {
		data["Problem"] = "this page's link is not one the console made; showing the first page"
	} else {
		f.Before = k
	}
	page, err := s.API.ListRequestPage(r.Context(), f)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	data["Requests"] = page.Requests
	if !page.Next.IsZero() {
		v := url.Values{"status": {status}, "after": {admin.EncodeRequestCursor(page.Next)}}
		if f.ProfileID != "" {
			v.Set("profile", f.ProfileID)
		}
		data["Next"] = "/console/requests?" + v.Encode()
	}
	if !f.Before.IsZero() {
		v := url.Values{"status": {status}}
		if f.ProfileID != "" {
			v.Set("profile", f.ProfileID)
		}
		data["First"] = "/console/requests?" + v.Encode()
	}
	h.render(w, r, s, http.StatusOK, "requests", "Requests", data)
}

// request shows one request and, while it is pending, what approving it
// would issue (the profile's policy applied to its CSR, signed by a
// throw-away key).
func (h *Handler) request(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	v, err := s.API.GetRequest(ctx, r.PathValue("profile"), r.PathValue("tx"))
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	data := map[string]any{"R": v}
	if res := v.Preview; res != nil {
		data["Preview"] = res
		if block, _ := pem.Decode([]byte(res.Certificate)); block != nil {
			data["Decoded"] = decode(block.Bytes)
		}
	}
	h.render(w, r, s, http.StatusOK, "request", "Request "+v.TransactionID, data)
}

func (h *Handler) decide(w http.ResponseWriter, r *http.Request, s *session) {
	profile, tx := r.PathValue("profile"), r.PathValue("tx")
	switch r.PathValue("decision") {
	case "approve":
		c, err := s.API.Approve(r.Context(), profile, tx)
		if err != nil {
			h.apiError(w, r, s, err)
			return
		}
		h.redirectMsg(w, r, s, "/console/requests", "Approved: certificate "+c.Serial+" issued; the device receives it when it polls.")
	case "reject":
		reason := strings.TrimSpace(r.PostFormValue("comment"))
		if reason == "" {
			reason = "rejected by an operator"
		}
		if err := s.API.Reject(r.Context(), profile, tx, reason); err != nil {
			h.apiError(w, r, s, err)
			return
		}
		h.redirectMsg(w, r, s, "/console/requests", "Rejected request "+tx+".")
	default:
		h.fail(w, r, s, http.StatusNotFound, "No such decision.")
	}
}

// ---- dynamic challenges ----

type challengeRow struct {
	Profile                string
	Pending, Used, Expired int
	// CanMint: the actor may mint challenges for this profile.
	CanMint bool
}

// challengeRows lists the dynamic-challenge profiles the actor may read or
// mint for: an mdm token reads nothing else, yet mints for its profiles.
func (h *Handler) challengeRows(r *http.Request, s *session) ([]challengeRow, error) {
	list, err := h.Store.ListProfiles(r.Context())
	if err != nil {
		return nil, err
	}
	var rows []challengeRow
	for _, p := range list {
		mint := s.Actor.Allowed(admin.ActChallenge, p.ID)
		if p.ChallengeMode != store.ChallengeDynamic || !(mint || s.Actor.Allowed(admin.ActRead, p.ID)) {
			continue
		}
		row := challengeRow{Profile: p.ID, CanMint: mint}
		if row.Pending, row.Used, row.Expired, err = h.Store.ChallengeCounts(r.Context(), p.ID, h.Now()); err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (h *Handler) challenges(w http.ResponseWriter, r *http.Request, s *session) {
	rows, err := h.challengeRows(r, s)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	pending := []admin.PendingChallengeView{}
	for _, row := range rows {
		if !s.Actor.Allowed(admin.ActRead, row.Profile) {
			continue // an MDM's token mints; the list is for readers
		}
		list, err := s.API.ListChallenges(r.Context(), row.Profile)
		if err != nil {
			h.apiError(w, r, s, err)
			return
		}
		pending = append(pending, list...)
	}
	data := map[string]any{"Rows": rows, "Pending": pending}
	if s.Flash != nil && s.Flash.Challenge != nil {
		// Shown once: the flash is gone from the session already.
		data["New"] = s.Flash.Challenge
	}
	h.render(w, r, s, http.StatusOK, "challenges", "One-time challenges", data)
}

// challengeCreate mints and redirects (POST/redirect/GET): a reload of
// the page showing the challenge must not mint another. The value goes
// to that page through the session, never the URL.
func (h *Handler) challengeCreate(w http.ResponseWriter, r *http.Request, s *session) {
	profile, bind := r.PostFormValue("profile"), strings.TrimSpace(r.PostFormValue("bind"))
	v, err := s.API.CreateChallenge(r.Context(), profile, bind)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	h.redirectFlash(w, r, s, "/console/challenges", flash{Challenge: &shownChallenge{Profile: profile, Value: v.Challenge, Bind: bind, Expires: v.ExpiresAt}})
}

// challengeCancel withdraws a pending one-time challenge.
func (h *Handler) challengeCancel(w http.ResponseWriter, r *http.Request, s *session) {
	profile, id := r.PathValue("profile"), r.PathValue("id")
	if err := s.API.CancelChallenge(r.Context(), profile, id); err != nil {
		h.apiError(w, r, s, err)
		return
	}
	h.redirectMsg(w, r, s, "/console/challenges", "Challenge of "+profile+" cancelled; it can no longer enroll a device.")
}

// ---- audit ----

func (h *Handler) audit(w http.ResponseWriter, r *http.Request, s *session) {
	events, err := s.API.ListAudit(r.Context(), 1000)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	q := r.URL.Query()
	actor, action, object := strings.ToLower(q.Get("actor")), strings.ToLower(q.Get("action")), strings.ToLower(q.Get("object"))
	var since, until time.Time
	if v := q.Get("since"); v != "" {
		since, _ = time.Parse("2006-01-02", v)
	}
	if v := q.Get("until"); v != "" {
		if t, err := time.Parse("2006-01-02", v); err == nil {
			until = t.AddDate(0, 0, 1)
		}
	}
	out := events[:0]
	for _, e := range events {
		if (actor != "" && !strings.Contains(strings.ToLower(e.Actor), actor)) ||
			(action != "" && !strings.Contains(strings.ToLower(e.Action), action)) ||
			(object != "" && !strings.Contains(strings.ToLower(e.Object), object)) ||
			(!since.IsZero() && e.Time.Before(since)) || (!until.IsZero() && !e.Time.Before(until)) {
			continue
		}
		out = append(out, e)
	}
	h.render(w, r, s, http.StatusOK, "audit", "Audit log", map[string]any{"Events": out, "Q": q, "Searched": len(events)})
}

// objectLink is the console page of an audit event's object ("" when
// it has none): a certificate, a profile, a request.
// requestURL is the console page of a request. The transactionID is the
// device's, and may hold '/', '?' or "..": escaped, so that a link or a
// form action reaches this request, not another one (or another route)
// the device chose.
func requestURL(profile, transactionID string) string {
	return "/console/requests/" + segment(profile) + "/" + segment(transactionID)
}

// segment escapes s as one path segment: "." and "..", which PathEscape
// leaves as they are and browsers resolve, become %2E and %2E%2E.
func segment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

func objectLink(e store.AuditEvent) string {
	kind, id, ok := strings.Cut(e.Object, ":")
	if !ok || id == "" {
		return ""
	}
	switch kind {
	case "certificate":
		return "/console/certificates/" + url.PathEscape(id)
	case "profile":
		return "/console/profiles/" + url.PathEscape(id)
	case "transaction":
		if p := e.Details["profile"]; p != "" {
			return requestURL(p, id)
		}
	}
	return ""
}

type pair struct{ K, V string }

// detailPairs is an audit event's details, sorted by key.
func detailPairs(d map[string]string) []pair {
	out := make([]pair, 0, len(d))
	for k, v := range d {
		out = append(out, pair{k, v})
	}
	slices.SortFunc(out, func(a, b pair) int { return cmp.Compare(a.K, b.K) })
	return out
}
