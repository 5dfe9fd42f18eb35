// Package outbound holds what every HTTP call scepd makes to a service an
// operator configured (challenge and event webhooks, Intune, an upstream's
// NDES page) shares: it follows no redirect, and a URL shown in an error
// or a log line carries no secret.
package outbound

import (
	"errors"
	"net/http"
	"net/url"
)

// CheckRedirect follows no redirect: the redirect is the answer, which a
// caller refuses as any answer but 2xx. Go would follow a 301, 302 or 303
// with a GET without the body (and a 2xx to that GET would pass for the
// answer to what was sent), and a 307 or 308 with the body, secrets and
// all, to wherever the Location points.
func CheckRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NoRedirects is the client of calls without a deadline of their own
// (their context has one). It is never changed.
var NoRedirects = &http.Client{CheckRedirect: CheckRedirect}

// Redact returns raw without its user information and query, which may
// hold a password or a key (an Azure Functions URL's code=...): what is
// left names the service for a log line or an error.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// Err returns err with the URL of the *url.Error it wraps, if any,
// redacted; Go's HTTP client puts the whole URL in its errors.
func Err(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = Redact(ue.URL)
	}
	return err
}
