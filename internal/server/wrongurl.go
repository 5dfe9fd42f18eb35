package server

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// A device given a wrong URL hears only a 404 (Windows shows 0x80190194),
// so every 404 of the SCEP and NDES surface is a warning in the log: the
// operator learns there which URL was asked for and what the right ones
// look like.

const (
	// warnWindow and warnBurst bound those warnings: a path is logged at
	// most once per window, and at most warnBurst paths per window, so a
	// scanner walking thousands of paths costs a few lines a minute and
	// the throttle a few KB. What is not logged is counted in the next line.
	warnWindow = time.Minute
	warnBurst  = 20

	ndesHint = "NDES admin pages are /scep/<profile>/mscep_admin/ (and /certsrv/mscep_admin/ for the default profile), " +
		"for a profile with challenge mode dynamic and challenge.ndes set"
	jamfHint   = "the Jamf webhook is POST /scep/<profile>/jamf-challenge, for a profile with challenge mode dynamic and challenge.jamf: true"
	nextCAHint = "GetNextCACert answers only while a CA rollover is scheduled for the profile (GetCACaps then lists GetNextCACert)"
	maxLogged  = 256
)

// urlWarnings throttles the warnings about wrong URLs; its zero value is
// ready.
type urlWarnings struct {
	mu         sync.Mutex
	start      time.Time           // of the current window
	paths      map[string]struct{} // logged in it, at most warnBurst
	suppressed int                 // not logged since the last line
}

// allow reports whether a warning about path may be logged at now, and how
// many were suppressed since the last one logged.
func (u *urlWarnings) allow(path string, now time.Time) (bool, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.paths == nil {
		u.paths = make(map[string]struct{}, warnBurst)
	}
	if now.Sub(u.start) >= warnWindow {
		u.start = now
		clear(u.paths)
	}
	if _, seen := u.paths[path]; seen || len(u.paths) >= warnBurst {
		u.suppressed++
		return false, 0
	}
	u.paths[path] = struct{}{}
	n := u.suppressed
	u.suppressed = 0
	return true, n
}

// wrongURL logs a 404 of the SCEP and NDES surface with what the right
// URLs look like (hint). Of the query it logs the operation only: other
// values carry PKIOperation messages and, from a misconfigured client,
// secrets.
func (s *Server) wrongURL(r *http.Request, msg, hint string, attrs ...slog.Attr) {
	path := truncate(r.URL.Path, maxLogged)
	ok, suppressed := s.urlWarn.allow(path, time.Now())
	if !ok {
		return
	}
	all := []slog.Attr{slog.String("method", r.Method), slog.String("path", path)}
	if op := r.URL.Query().Get("operation"); op != "" {
		all = append(all, slog.String("operation", truncate(op, 64)))
	}
	all = append(all, slog.String("remote", r.RemoteAddr))
	all = append(all, attrs...)
	all = append(all, slog.String("hint", hint), slog.String("profiles", truncate(s.profileIDs(), maxLogged)))
	if suppressed > 0 {
		all = append(all, slog.Int("suppressed", suppressed))
	}
	s.log.LogAttrs(r.Context(), slog.LevelWarn, msg, all...)
}

// scepHint says what SCEP URLs look like on this server.
func (s *Server) scepHint() string {
	h := "SCEP URLs are /scep/<profile>/pkiclient.exe (or /scep/<profile>)"
	if d := s.opts.DefaultProfile; d != "" {
		h += "; /cgi-bin/pkiclient.exe and /certsrv/mscep/mscep.dll serve the default profile " + d
	}
	return h
}

// profileIDs lists the served profiles, for a warning about a wrong URL.
func (s *Server) profileIDs() string {
	byID := s.set.Load().byID
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// logUnrouted serves mux and logs the requests it has no route for and
// answers 404. Such a request is told apart before it is served (no
// pattern matches), so the requests it serves are untouched; one whose
// path another method would match is a 405, not a wrong URL.
func (s *Server) logUnrouted(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		if sw.status == http.StatusNotFound {
			s.wrongURL(r, "request for an unknown URL", s.scepHint()+"; "+ndesHint)
		}
	})
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}
