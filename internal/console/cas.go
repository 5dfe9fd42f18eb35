package console

import (
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/scepd/scepd/internal/admin"
	"github.com/scepd/scepd/internal/store"
)

// caRow is a CA as the CAs page shows it.
type caRow struct {
	admin.CAView
	// Chain is the subjects above the CA, nearest first.
	Chain []string
	// CRL is the newest published CRL (zero Number: none yet); CRLURL
	// downloads it from the SCEP listener.
	CRL    store.CRL
	CRLURL string
	// Profiles issue from it; Rollovers are the profiles moving to or
	// from it, as "profile → next at time".
	Profiles, Rollovers []string
}

func (h *Handler) cas(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	list, err := s.API.ListCAs(ctx)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	profiles, err := s.API.ListProfiles(ctx)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	base, _ := h.scepBase(r)
	var rows []caRow
	for _, c := range list {
		row := caRow{CAView: c, CRLURL: base + "/crl/" + c.ID + ".crl"}
		chain, err := s.API.CAChain(ctx, c.ID)
		if err != nil {
			h.apiError(w, r, s, err)
			return
		}
		for _, der := range chain[min(1, len(chain)):] {
			if cert, err := x509.ParseCertificate(der); err == nil {
				row.Chain = append(row.Chain, cert.Subject.String())
			}
		}
		if row.CRL, err = h.Store.LatestCRL(ctx, c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			h.apiError(w, r, s, err)
			return
		}
		for _, p := range profiles {
			ro := p.Lifecycle.Rollover
			if p.CA == c.ID {
				row.Profiles = append(row.Profiles, p.ID)
			}
			if ro.NextCA != "" && (p.CA == c.ID || ro.NextCA == c.ID) {
				state := "planned"
				if !ro.At.IsZero() && !h.Now().Before(ro.At) {
					state = "switched"
				}
				row.Rollovers = append(row.Rollovers, p.ID+": "+p.CA+" → "+ro.NextCA+" at "+ro.At.UTC().Format("2006-01-02 15:04 UTC")+" ("+state+")")
			}
		}
		rows = append(rows, row)
	}
	h.render(w, r, s, http.StatusOK, "cas", "Certificate authorities", map[string]any{"CAs": rows, "Now": h.Now()})
}

// ---- tokens ----

func (h *Handler) tokens(w http.ResponseWriter, r *http.Request, s *session) {
	h.tokensPage(w, r, s, http.StatusOK, nil)
}

// tokensPage renders the token list, with a just-created token shown
// once (never stored anywhere in clear, so a reload cannot show it).
func (h *Handler) tokensPage(w http.ResponseWriter, r *http.Request, s *session, status int, created *admin.NewTokenView) {
	list, err := s.API.ListTokens(r.Context())
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	slices.SortStableFunc(list, func(a, b admin.TokenView) int { return b.Created.Compare(a.Created) })
	data := map[string]any{"Tokens": list, "Roles": []admin.Role{admin.RoleAuditor, admin.RoleOperator, admin.RoleMDM, admin.RoleAdmin}}
	if created != nil {
		data["New"] = created
		// The secret is in this answer only: no cache may keep it.
		w.Header().Set("Cache-Control", "no-store")
	}
	h.render(w, r, s, status, "tokens", "API tokens", data)
}

func (h *Handler) tokenCreate(w http.ResponseWriter, r *http.Request, s *session) {
	req := admin.TokenRequest{Name: strings.TrimSpace(r.PostFormValue("name")), Role: admin.Role(r.PostFormValue("role"))}
	for _, p := range strings.FieldsFunc(r.PostFormValue("profiles"), func(c rune) bool { return c == ',' || c == ' ' }) {
		req.Profiles = append(req.Profiles, p)
	}
	v, err := s.API.CreateToken(r.Context(), req)
	if err != nil {
		h.apiError(w, r, s, err)
		return
	}
	h.tokensPage(w, r, s, http.StatusOK, &v)
}

func (h *Handler) tokenRevoke(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if err := s.API.RevokeToken(r.Context(), id); err != nil {
		h.apiError(w, r, s, err)
		return
	}
	h.redirectMsg(w, r, s, "/console/tokens", "Token "+id+" revoked; it no longer signs in or calls the API.")
}
