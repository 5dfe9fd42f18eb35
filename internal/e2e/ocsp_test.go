package e2e

import (
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/scepd/scepd/internal/sceptest"
)

// TestOCSPFromAIA: with public_url set, an issued certificate names the
// OCSP responder in its AIA next to caIssuers; openssl asks that URL and
// the bare /ocsp the README names (the responder finds the CA from the
// request) and hears good, then revoked after an operator revoked it.
func TestOCSPFromAIA(t *testing.T) {
	openssl := sceptest.RequireTool(t, "openssl", "openssl")
	s := startLifecycle(t)
	certs := caCerts(t, s, "renew")
	root := certs[len(certs)-1]
	c := enrollIn(t, s, "renew", "ocsp-device")
	if len(c.cert.IssuingCertificateURL) != 1 || c.cert.IssuingCertificateURL[0] != s.BaseURL()+"/ca/root.crt" {
		t.Fatalf("AIA caIssuers %v", c.cert.IssuingCertificateURL)
	}
	if len(c.cert.OCSPServer) != 1 || c.cert.OCSPServer[0] != s.BaseURL()+"/ocsp/root" {
		t.Fatalf("AIA OCSP %v, want %s/ocsp/root", c.cert.OCSPServer, s.BaseURL())
	}
	dir := t.TempDir()
	rootPEM, certPEM := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "c.pem")
	os.WriteFile(rootPEM, pemOf(root.Raw), 0o644)
	os.WriteFile(certPEM, pemOf(c.cert.Raw), 0o644)
	ask := func(u, want string) {
		t.Helper()
		out, err := sceptest.Run(t, time.Minute, nil, "", openssl, "ocsp", "-issuer", rootPEM, "-cert", certPEM, "-url", u, "-CAfile", rootPEM)
		if err != nil || !strings.Contains(out, certPEM+": "+want) || !strings.Contains(out, "Response verify OK") {
			t.Fatalf("openssl ocsp -url %s: want %s: %v\n%s", u, want, err, out)
		}
	}
	for _, u := range []string{c.cert.OCSPServer[0], s.BaseURL() + "/ocsp"} {
		ask(u, "good")
	}
	if out, err := cli(t, s, nil, "cert", "revoke", c.cert.SerialNumber.Text(16), "--reason", "keyCompromise", "--data", s.DataDir); err != nil {
		t.Fatalf("cert revoke: %v\n%s", err, out)
	}
	for _, u := range []string{c.cert.OCSPServer[0], s.BaseURL() + "/ocsp"} {
		ask(u, "revoked")
	}

	// GET (RFC 6960 §A.1): the request base64 in the path, URL-escaped
	// or not ('/' of the base64 then splits the path), per CA and bare.
	req, err := ocsp.CreateRequest(c.cert, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(req)
	for _, path := range []string{"/ocsp/root/" + url.PathEscape(b64), "/ocsp/" + url.PathEscape(b64), "/ocsp/" + b64} {
		raw, err := sceptest.HTTPGet(s.BaseURL() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp, err := ocsp.ParseResponseForCert(raw, c.cert, root)
		if err != nil || resp.Status != ocsp.Revoked || resp.RevocationReason != ocsp.KeyCompromise {
			t.Fatalf("GET %s: %+v, %v; want revoked (keyCompromise)", path, resp, err)
		}
	}
}
