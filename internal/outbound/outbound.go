// Package outbound holds what scepd's HTTP calls that carry a secret
// share (challenge and event webhooks, Intune, an upstream's NDES page;
// the admin CLI's calls to the API): they follow no redirect, and a URL
// shown in an error or a log line carries no secret.
package outbound

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
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

// Redact returns the scheme and host of raw, which name the service for a
// log line or an error; its user information, path and query may hold a
// password or a key (an Azure Functions URL's code=..., a Slack or Teams
// hook's path) and are left out, marked as such.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a URL, not shown)"
	}
	out := u.Scheme + "://"
	if u.User != nil {
		out += "redacted@"
	}
	out += u.Host
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

// Redirected returns nil unless resp is a redirect, which scepd's calls do
// not follow (see CheckRedirect); then an error naming where it points (its
// path, which the operator needs to fix the URL, without user information
// or query).
func Redirected(resp *http.Response) error {
	if resp.StatusCode/100 != 3 {
		return nil
	}
	to := "(no Location)"
	if u, err := resp.Location(); err == nil {
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		to = u.String()
	}
	return fmt.Errorf("answered %s, a redirect to %s: configure the URL it names", resp.Status, to)
}

// IsLoopback reports whether host (a name or an address, no port) is this
// machine: localhost, or a loopback address.
func IsLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() || strings.EqualFold(host, "localhost")
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
