package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/admin"
)

// page is what every template receives.
type page struct {
	Title string
	Nav   string
	// Actor, CSRF and the role flags are set when signed in.
	Actor      *admin.Actor
	CSRF       string
	CanOperate bool
	CanManage  bool
	Msg        string
	Data       any

	// CanRead, CanMint and CanAudit decide the menu: reading profiles,
	// certificates and requests; minting challenges; the audit trail.
	CanRead  bool
	CanMint  bool
	CanAudit bool
	// CanCAs and CanTokens: the CAs page (any role not limited to
	// profiles) and the tokens page (admins).
	CanCAs, CanTokens bool
}

var pageNames = []string{"login", "error", "dashboard", "profiles", "profile", "profile_form", "certificates", "certificate", "requests", "request", "cas", "tokens", "challenges", "audit"}

func (h *Handler) parse() error {
	funcs := template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"date":        func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"join":        strings.Join,
		"objectLink":  objectLink,
		"requestURL":  requestURL,
		"detailPairs": detailPairs,
		"until": func(t time.Time) string {
			d := time.Until(t)
			switch {
			case d < 0:
				return "expired"
			case d < 48*time.Hour:
				return fmt.Sprintf("%.0f h", d.Hours())
			default:
				return fmt.Sprintf("%.0f days", d.Hours()/24)
			}
		},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return fmt.Errorf("console: templates: %w", err)
	}
	h.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(assets, "templates/"+name+".html")
		}
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	return nil
}

// render executes a page into a buffer first, so a template error is a
// clean 500, never half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	p := page{Title: title, Nav: name, Data: data}
	if s != nil {
		if s.Flash != nil {
			p.Msg = s.Flash.Msg // only what the server set; never the URL's text
		}
		p.Actor = &s.Actor
		p.CSRF = s.CSRF
		p.CanOperate = s.Actor.Allowed(admin.ActOperate, "")
		p.CanManage = s.Actor.Allowed(admin.ActManage, "")
		p.CanRead = s.Actor.Allowed(admin.ActRead, "")
		p.CanMint = s.Actor.Allowed(admin.ActChallenge, "")
		p.CanAudit = s.Actor.ReadsAudit()
		p.CanCAs = p.CanRead && len(s.Actor.Profiles) == 0
		p.CanTokens = s.Actor.Allowed(admin.ActTokens, "") && len(s.Actor.Profiles) == 0
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		h.Log.Error("console template failed", "page", name, "error", err.Error())
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
