package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	chal "github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
)

// TestLoadDeferMissingSecrets: a profile whose delegated challenge's
// secret is not in the environment fails Load (the server must not start
// without it), unless DeferMissingSecrets: then it loads, and its validator
// names the missing variable when a request needs it.
func TestLoadDeferMissingSecrets(t *testing.T) {
	ctx := context.Background()
	st, ks := openStore(t)
	now := time.Now()
	row, err := provision.CreateCA(ctx, st, ks, config.CA{ID: "root", Create: &config.CACreate{Subject: "CN=Root"}}, provision.Inline(), now)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := x509.ParseCertificate(row.CertDER); err != nil || ca.PublicKeyAlgorithm(c.PublicKey) != "RSA-2048" {
		t.Fatalf("a CA created without a key type: %v %v, want RSA-2048", err, c)
	}
	for _, p := range []config.Profile{
		{ID: "hook", CA: "root", Challenge: config.Challenge{Mode: "webhook", Webhook: &config.Webhook{URL: "http://127.0.0.1:1", SecretEnv: "HOOK_KEY"}}},
		{ID: "tenant", CA: "root", Challenge: config.Challenge{Mode: "intune", Intune: &config.Intune{Tenant: "t", ClientID: "c", ClientSecretEnv: "INTUNE_SECRET"}}},
	} {
		if _, _, err := provision.UpsertProfile(ctx, st, ks, p, store.SourceAPI, provision.Inline(), now); err != nil {
			t.Fatal(err)
		}
	}
	unset := func(string) string { return "" }
	if _, err := server.Load(ctx, st, ks, server.Overrides{Getenv: unset}); err == nil || !strings.Contains(err.Error(), "HOOK_KEY") && !strings.Contains(err.Error(), "INTUNE_SECRET") {
		t.Fatalf("Load without the secrets: %v, want an error naming the variable", err)
	}
	serving, err := server.Load(ctx, st, ks, server.Overrides{Getenv: unset, DeferMissingSecrets: true})
	if err != nil || len(serving.Profiles) != 2 {
		t.Fatalf("Load with DeferMissingSecrets: %v", err)
	}
	want := map[string]string{"hook": "HOOK_KEY", "tenant": "INTUNE_SECRET"}
	for _, p := range serving.Profiles {
		_, err := p.Enroll().Challenge.Validate(ctx, chal.Request{ProfileID: p.ID(), Password: "x"})
		if err == nil || !strings.Contains(err.Error(), want[p.ID()]) {
			t.Errorf("profile %s: Validate: %v, want an error naming %s", p.ID(), err, want[p.ID()])
		}
	}
}

// serveProvisioned creates cas and profiles in a new store, as the API
// writes them, and serves them (enrollments included) until the test ends.
func serveProvisioned(t *testing.T, cas []config.CA, profiles []config.Profile) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	st, ks := openStore(t)
	now := time.Now()
	for _, c := range cas {
		if _, err := provision.CreateCA(ctx, st, ks, c, provision.Inline(), now); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range profiles {
		if _, _, err := provision.UpsertProfile(ctx, st, ks, p, store.SourceAPI, provision.Inline(), now); err != nil {
			t.Fatal(err)
		}
	}
	loaded, err := server.Load(ctx, st, ks, server.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv, err := server.New(server.Options{Profiles: loaded.Profiles, CAs: loaded.CAs, Enroller: enroll.New(st, time.Now, log), Logger: log, MaxConcurrent: 4})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs
}

// TestGetCACertShapes: GetCACert carries the RA and the CA chain whatever
// include_ca_cert says (clients authenticate the CA there), except that a
// profile in CA mode without include_ca_cert answers with its CA alone,
// one DER certificate (Apple's client reads a PKCS#7 as naming RAs besides
// the CA).
func TestGetCACertShapes(t *testing.T) {
	no := false
	hs := serveProvisioned(t, []config.CA{
		{ID: "root", Create: &config.CACreate{Subject: "CN=Root", KeyType: "ecdsa-p256"}},
		{ID: "sub", Create: &config.CACreate{Parent: "root", Subject: "CN=Sub", AllowCAMode: true}},
	}, []config.Profile{
		{ID: "ra-with", CA: "sub", Challenge: config.Challenge{Mode: "dynamic"}},
		{ID: "ra-without", CA: "sub", IncludeCACert: &no, Challenge: config.Challenge{Mode: "dynamic"}},
		{ID: "ca-with", CA: "sub", CAMode: true, Challenge: config.Challenge{Mode: "dynamic"}},
		{ID: "ca-without", CA: "sub", CAMode: true, IncludeCACert: &no, Challenge: config.Challenge{Mode: "dynamic"}},
	})
	for _, tt := range []struct {
		profile, contentType string
		subjects             []string
	}{
		{"ra-with", "application/x-x509-ca-ra-cert", []string{"RA", "CN=Sub", "CN=Root"}},
		{"ra-without", "application/x-x509-ca-ra-cert", []string{"RA", "CN=Sub", "CN=Root"}},
		{"ca-with", "application/x-x509-ca-ra-cert", []string{"CN=Sub", "CN=Root"}},
		{"ca-without", "application/x-x509-ca-cert", []string{"CN=Sub"}},
	} {
		resp, err := http.Get(hs.URL + "/scep/" + tt.profile + "/pkiclient.exe?operation=GetCACert")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != tt.contentType {
			t.Errorf("%s: Content-Type %q, want %q", tt.profile, ct, tt.contentType)
			continue
		}
		var certs []*x509.Certificate
		if tt.contentType == "application/x-x509-ca-cert" {
			c, err := x509.ParseCertificate(body)
			if err != nil {
				t.Fatalf("%s: %v", tt.profile, err)
			}
			certs = []*x509.Certificate{c}
		} else {
			ders, err := scep.DegenerateCertificates(body)
			if err != nil {
				t.Fatalf("%s: %v", tt.profile, err)
			}
			for _, der := range ders {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatalf("%s: %v", tt.profile, err)
				}
				certs = append(certs, c)
			}
		}
		var got []string
		for _, c := range certs {
			s := c.Subject.String()
			if strings.Contains(s, "RA") && !c.IsCA {
				s = "RA"
			}
			got = append(got, s)
		}
		if strings.Join(got, "|") != strings.Join(tt.subjects, "|") {
			t.Errorf("%s: GetCACert %v, want %v", tt.profile, got, tt.subjects)
		}
	}
}

// TestContentTypes: every SCEP answer carries the content type RFC 8894
// §4 gives it: GetCACaps text/plain, GetNextCACert
// application/x-x509-next-ca-cert (a PKCS#7 signed by the current RA), and
// PKIOperation application/x-pki-message, by POST and by GET, for a
// SUCCESS as for a FAILURE. (GetCACert's two types: TestGetCACertShapes.)
func TestContentTypes(t *testing.T) {
	ctx := context.Background()
	hs := serveProvisioned(t, []config.CA{
		{ID: "root", Create: &config.CACreate{Subject: "CN=Root", KeyType: "ecdsa-p256"}},
		{ID: "next", Create: &config.CACreate{Subject: "CN=Next Root", KeyType: "ecdsa-p256"}},
	}, []config.Profile{{ID: "roll", CA: "root", Challenge: config.Challenge{Mode: "static", Password: challenge},
		Rollover: config.Rollover{NextCA: "next", At: time.Now().Add(30 * 24 * time.Hour)}}})
	base := hs.URL + "/scep/roll/pkiclient.exe"
	certs, err := client.New(base).GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}

	// do answers a request with its Content-Type and body, failing t
	// unless it is 200.
	do := func(method, query string, body []byte) (string, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, base+"?"+query, rd)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: HTTP %d %s", method, query, resp.StatusCode, b)
		}
		return resp.Header.Get("Content-Type"), b
	}

	if ct, _ := do(http.MethodGet, "operation=GetCACaps", nil); ct != "text/plain" {
		t.Errorf("GetCACaps: Content-Type %q, want text/plain", ct)
	}
	ct, body := do(http.MethodGet, "operation=GetNextCACert", nil)
	if ct != "application/x-x509-next-ca-cert" {
		t.Errorf("GetNextCACert: Content-Type %q, want application/x-x509-next-ca-cert", ct)
	}
	if sd, err := cms.ParseSignedData(body); err != nil || len(sd.Signers) != 1 {
		t.Errorf("GetNextCACert: %v; want a PKCS#7 signed by the RA", err)
	} else if _, _, err := sd.Verify(cms.FromX509(ra)); err != nil {
		t.Errorf("GetNextCACert is not signed by the current RA: %v", err)
	}

	for i, tc := range []struct {
		name     string
		get      bool
		password string
		want     scep.PKIStatus
	}{
		{"POST SUCCESS", false, challenge, scep.StatusSuccess},
		{"GET SUCCESS", true, challenge, scep.StatusSuccess},
		{"POST FAILURE", false, "wrong", scep.StatusFailure},
		{"GET FAILURE", true, "wrong", scep.StatusFailure},
	} {
		key, _ := rsa.GenerateKey(rand.Reader, 2048)
		self, _ := client.SelfSigned(key, pkix.Name{CommonName: "dev"})
		csr, err := scep.NewCSR(key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}}, tc.password)
		if err != nil {
			t.Fatal(err)
		}
		msg, _, err := scep.Builder{Cert: self, Key: key}.NewRequest(scep.Request{Type: scep.PKCSReq, TransactionID: fmt.Sprint("tx-ct-", i),
			Body: csr, Recipient: ra, Cipher: cms.AES128, Digest: crypto.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		var ct string
		if tc.get {
			ct, body = do(http.MethodGet, "operation=PKIOperation&message="+url.QueryEscape(base64.StdEncoding.EncodeToString(msg)), nil)
		} else {
			ct, body = do(http.MethodPost, "operation=PKIOperation", msg)
		}
		if ct != "application/x-pki-message" {
			t.Errorf("%s: Content-Type %q, want application/x-pki-message", tc.name, ct)
		}
		rep, err := scep.Parse(body, cms.FromX509(ra))
		if err != nil || rep.Type != scep.CertRep || rep.Status != tc.want {
			t.Errorf("%s: %v, want a CertRep %s", tc.name, err, tc.want)
		}
	}
}

// recordingOCSP answers every OCSP request and keeps the last one.
type recordingOCSP struct{ got []byte }

func (o *recordingOCSP) CRL(context.Context, string) (store.CRL, error) { return store.CRL{}, nil }
func (o *recordingOCSP) OCSP(_ context.Context, _ string, req []byte) (revocation.OCSPResponse, error) {
	o.got = req
	return revocation.OCSPResponse{DER: []byte{0x30, 0}}, nil
}

// TestOCSPGETWithDoubleSlash: an OCSP GET request is base64 in the path,
// where "/" belongs to the encoding; a client that does not escape it may
// send "//", and the responder gets the request as sent (not a redirect
// to a path the HTTP router cleaned).
func TestOCSPGETWithDoubleSlash(t *testing.T) {
	ocspRev := &recordingOCSP{}
	srv, err := server.New(server.Options{Revocation: ocspRev})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	var req []byte
	for {
		req = make([]byte, 60)
		rand.Read(req)
		if strings.Contains(base64.StdEncoding.EncodeToString(req), "//") {
			break
		}
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/ocsp/"} {
		resp, err := hc.Get(hs.URL + path + base64.StdEncoding.EncodeToString(req))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(ocspRev.got, req) {
			t.Fatalf("GET %s<base64 with //>: HTTP %d, the responder got %x; want 200 and %x", path, resp.StatusCode, ocspRev.got, req)
		}
	}
}

// TestLoadWarnsOfUnfitCA: a CA stored before import refused certificates
// whose key usage lacks cRLSign still loads, and the log says why relying
// parties refuse its CRLs.
func TestLoadWarnsOfUnfitCA(t *testing.T) {
	ctx := context.Background()
	st, ks := openStore(t)
	now := time.Now()
	row, err := provision.CreateCA(ctx, st, ks, config.CA{ID: "root", Create: &config.CACreate{Subject: "CN=Root", KeyType: "ecdsa-p256"}}, provision.Inline(), now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := provision.LoadCA(row, ks)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Old Root"}, NotBefore: now, NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, c.Signer.Public(), c.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateCA(ctx, store.CA{ID: "old", CertDER: der, KeyRef: row.KeyRef, Created: now}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	loaded, err := server.Load(ctx, st, ks, server.Overrides{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil || loaded.CAs["old"] == nil {
		t.Fatalf("Load: %v", err)
	}
	if !strings.Contains(logs.String(), `msg="CA certificate unfit" ca=old problem="the CA certificate's key usage lacks cRLSign`) || strings.Contains(logs.String(), "ca=root") {
		t.Fatalf("log:\n%s\nwant a warning for the old CA only", logs.String())
	}
}
