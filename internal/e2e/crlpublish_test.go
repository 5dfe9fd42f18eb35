package e2e

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// crlChecker asks openssl whether a certificate is revoked according to
// the CRL a server serves right now, fetched over HTTP (/crl/{ca}.crl)
// and through SCEP GetCRL.
type crlChecker struct {
	openssl string
	dir     string
	root    *x509.Certificate
	rootPEM string
	// holder is a valid certificate of the CA, the GetCRL requester.
	holder identity
	ra     *x509.Certificate
}

func newCRLChecker(t *testing.T, root, ra *x509.Certificate, holder identity) *crlChecker {
	dir := t.TempDir()
	rootPEM := filepath.Join(dir, "root.pem")
	os.WriteFile(rootPEM, pemOf(root.Raw), 0o644)
	return &crlChecker{openssl: sceptest.RequireTool(t, "openssl", "openssl"), dir: dir, root: root, rootPEM: rootPEM, holder: holder, ra: ra}
}

// revoked runs `openssl verify -crl_check` of cert against crlDER; it
// fails the test unless openssl says valid or revoked.
func (c *crlChecker) verify(t *testing.T, what string, crlDER []byte, cert *x509.Certificate) bool {
	t.Helper()
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil || crl.CheckSignatureFrom(c.root) != nil {
		t.Fatalf("%s: CRL does not parse or verify: %v", what, err)
	}
	crlPEM := filepath.Join(c.dir, "crl.pem")
	os.WriteFile(crlPEM, pemTyped("X509 CRL", crlDER), 0o644)
	certPEM := filepath.Join(c.dir, "cert.pem")
	os.WriteFile(certPEM, pemOf(cert.Raw), 0o644)
	out, err := sceptest.Run(t, time.Minute, nil, "", c.openssl, "verify", "-crl_check", "-CAfile", c.rootPEM, "-CRLfile", crlPEM, certPEM)
	switch {
	case err == nil && strings.Contains(out, ": OK"):
		return false
	case err != nil && strings.Contains(out, "certificate revoked"):
		return true
	}
	t.Fatalf("%s: openssl verify -crl_check: %v\n%s", what, err, out)
	return false
}

// check fails the test unless both the HTTP CRL of base and the GetCRL
// answer of scepURL say cert is revoked (or not, as want says).
func (c *crlChecker) check(t *testing.T, base, scepURL string, cert *x509.Certificate, want bool) {
	t.Helper()
	der := httpGet(t, base+"/crl/root.crl")
	if got := c.verify(t, "HTTP CRL", der, cert); got != want {
		t.Errorf("CRL from %s/crl/root.crl: certificate %s revoked = %v, want %v", base, cert.SerialNumber.Text(16), got, want)
	}
	crl, err := client.New(scepURL).GetCRL(context.Background(), client.Requester{Cert: c.holder.cert, Key: c.holder.key}, c.holder.cert, c.ra)
	if err != nil {
		t.Fatalf("GetCRL: %v", err)
	}
	if got := c.verify(t, "SCEP GetCRL", crl.Raw, cert); got != want {
		t.Errorf("CRL by GetCRL at %s: certificate %s revoked = %v, want %v", scepURL, cert.SerialNumber.Text(16), got, want)
	}
}

func pemTyped(typ string, der []byte) []byte {
	b := pemOf(der)
	return []byte(strings.ReplaceAll(string(b), "CERTIFICATE", typ))
}

// TestEveryRevocationPublishesCRL: whichever way a certificate is
// revoked (renewal's revoke_old, the REST API, the CLI on the data
// directory, the web console, revocation by subject), the CRL served over
// HTTP and by SCEP GetCRL right after lists it. Before each revocation the
// current CRL is fetched, so a fresh CRL exists that must not be served
// any more.
func TestEveryRevocationPublishesCRL(t *testing.T) {
	s := startLifecycle(t)
	certs := caCerts(t, s, "renew")
	ra, _ := client.Recipient(certs)
	holder := enrollIn(t, s, "renew", "crl-holder")
	chk := newCRLChecker(t, certs[len(certs)-1], ra, holder)
	token, err := cli(t, s, nil, "token", "create", "--role", "admin", "--name", "crl-test", "--data", s.DataDir)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, token)
	}
	token = strings.TrimSpace(token)

	for _, tt := range []struct {
		name   string
		revoke func(t *testing.T, victims ...identity)
		n      int // certificates revoked at once
	}{
		{"renewal revoke_old", func(t *testing.T, v ...identity) {
			if _, err := renew(s, "renew", v[0], newKey(t), v[0].cert.Subject, true); err != nil {
				t.Fatalf("renewal: %v", err)
			}
		}, 1},
		{"REST API", func(t *testing.T, v ...identity) {
			code, body := api(t, s, token, "POST", "/api/v1/certificates/"+v[0].cert.SerialNumber.Text(16)+"/revoke", map[string]string{"reason": "keyCompromise"})
			if code != 200 || body["revocation_reason"] != "keyCompromise" {
				t.Fatalf("API revoke: HTTP %d %v; want the reason by its RFC 5280 name", code, body)
			}
		}, 1},
		{"CLI on the data directory", func(t *testing.T, v ...identity) {
			if out, err := cli(t, s, nil, "cert", "revoke", v[0].cert.SerialNumber.Text(16), "--reason", "keyCompromise", "--data", s.DataDir); err != nil {
				t.Fatalf("cert revoke: %v\n%s", err, out)
			}
		}, 1},
		{"console", func(t *testing.T, v ...identity) {
			consoleRevoke(t, s.BaseURL(), token, v[0].cert.SerialNumber.Text(16), "keyCompromise")
		}, 1},
		{"by subject", func(t *testing.T, v ...identity) {
			if out, err := cli(t, s, nil, "cert", "revoke", "--subject", v[0].cert.Subject.String(), "--reason", "cessationOfOperation", "--data", s.DataDir); err != nil {
				t.Fatalf("cert revoke --subject: %v\n%s", err, out)
			}
		}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cn := "crl-" + strings.ReplaceAll(tt.name, " ", "-")
			var victims []identity
			for range tt.n {
				victims = append(victims, enrollIn(t, s, "renew", cn))
			}
			for _, v := range victims {
				chk.check(t, s.BaseURL(), s.URL("renew"), v.cert, false)
			}
			tt.revoke(t, victims...)
			for _, v := range victims {
				chk.check(t, s.BaseURL(), s.URL("renew"), v.cert, true)
			}
			chk.check(t, s.BaseURL(), s.URL("renew"), holder.cert, false)
		})
	}
}

// consoleRevoke signs in to the web console with a token and revokes a
// certificate through its form, as a browser would (same origin, CSRF
// token from the page).
func consoleRevoke(t *testing.T, base, token, serial, reason string) {
	t.Helper()
	c := consoleSignIn(t, base, token)
	_, page := c.get("/console/certificates/" + serial)
	if code, _ := c.post("/console/certificates/"+serial+"/revoke", url.Values{"reason": {reason}, "confirm": {"yes"}, "csrf": {c.field(page, "csrf")}}); code != 200 ||
		!strings.HasSuffix(c.last.URL.Path, "/console/certificates/"+serial) {
		t.Fatalf("console revoke: HTTP %d at %s", code, c.last.URL)
	}
	if _, page := c.get("/console/certificates/" + serial); !strings.Contains(page, "reason "+reason) {
		t.Fatalf("the console's certificate page does not name the reason %s:\n%s", reason, page)
	}
}

// TestRevocationReachesEveryReplica: replicas sharing PostgreSQL serve
// a CRL listing a certificate revoked through another replica (by
// renewal's revoke_old and by the REST API) on their next request.
func TestRevocationReachesEveryReplica(t *testing.T) {
	db := pgtest.Schema(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	os.WriteFile(cfg, []byte(strings.Replace(lifecycleConfig, "public_url: PUBLIC\n", "", 1)), 0o600)
	replicas := sceptest.StartMany(t, 2, sceptest.Options{DataDir: filepath.Join(dir, "data"), Env: []string{"E2E_CHALLENGE=" + challenge},
		Args: []string{"--config", cfg, "--database", db}})
	a, b := replicas[0], replicas[1]
	certs := caCerts(t, a, "renew")
	ra, _ := client.Recipient(certs)
	holder := enrollIn(t, a, "renew", "replica-crl-holder")
	chk := newCRLChecker(t, certs[len(certs)-1], ra, holder)
	token, err := cli(t, a, nil, "token", "create", "--role", "admin", "--name", "replica-crl", "--data", a.DataDir, "--database", db)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, token)
	}
	token = strings.TrimSpace(token)

	old := enrollIn(t, a, "renew", "replica-renewed")
	viaAPI := enrollIn(t, b, "renew", "replica-api")
	for _, r := range replicas {
		chk.check(t, r.BaseURL(), r.URL("renew"), old.cert, false)
		chk.check(t, r.BaseURL(), r.URL("renew"), viaAPI.cert, false)
	}
	if _, err := renew(a, "renew", old, newKey(t), pkix.Name{CommonName: "replica-renewed"}, true); err != nil {
		t.Fatalf("renewal on replica a: %v", err)
	}
	chk.check(t, b.BaseURL(), b.URL("renew"), old.cert, true)
	chk.check(t, a.BaseURL(), a.URL("renew"), old.cert, true)
	if code, body := api(t, b, token, "POST", "/api/v1/certificates/"+viaAPI.cert.SerialNumber.Text(16)+"/revoke", map[string]string{"reason": "keyCompromise"}); code != 200 {
		t.Fatalf("API revoke on replica b: HTTP %d %v", code, body)
	}
	chk.check(t, a.BaseURL(), a.URL("renew"), viaAPI.cert, true)
	chk.check(t, b.BaseURL(), b.URL("renew"), viaAPI.cert, true)
}
