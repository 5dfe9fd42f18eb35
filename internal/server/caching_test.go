package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
)

// TestRevocationCaching: a signed OCSP answer to GET and a CRL carry the
// caching headers of RFC 5019 §6.2: Last-Modified (thisUpdate), Expires
// (nextUpdate), Cache-Control with max-age until nextUpdate, an ETag. An
// answer to POST, an OCSP error response (malformed, unauthorized) and an
// HTTP error are for no cache.
func TestRevocationCaching(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	now := time.Now()
	key, _ := ca.GenerateKey(ca.ECDSAP256)
	root, err := ca.NewRoot(key, pkix.Name{CommonName: "Root"}, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateCA(ctx, store.CA{ID: "root", CertDER: root.Cert.Raw, KeyRef: "file:k", Created: now}); err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ca.GenerateKey(ca.ECDSAP256)
	other, err := ca.NewRoot(otherKey, pkix.Name{CommonName: "Someone Else"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	cas := map[string]*ca.CA{"root": root}
	log := slog.New(slog.DiscardHandler)
	rev := &revocation.Service{Store: st, CAs: func() map[string]*ca.CA { return cas }, Now: time.Now, Log: log}
	srv, err := server.New(server.Options{CAs: cas, Revocation: rev, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	ocspReq := func(issuer *x509.Certificate) []byte {
		req, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: big.NewInt(1)}, issuer, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	req := ocspReq(root.Cert)
	b64 := func(b []byte) string { return url.PathEscape(base64.StdEncoding.EncodeToString(b)) }
	do := func(method, path string, body []byte) (*http.Response, []byte) {
		t.Helper()
		hr, err := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, got
	}
	cached := func(what string, resp *http.Response, thisUpdate, nextUpdate time.Time) {
		t.Helper()
		h := resp.Header
		if resp.StatusCode != http.StatusOK || h.Get("Last-Modified") != thisUpdate.UTC().Format(http.TimeFormat) || h.Get("Expires") != nextUpdate.UTC().Format(http.TimeFormat) {
			t.Errorf("%s: HTTP %d, Last-Modified %q, Expires %q; want 200, thisUpdate %v, nextUpdate %v",
				what, resp.StatusCode, h.Get("Last-Modified"), h.Get("Expires"), thisUpdate, nextUpdate)
		}
		cc := h.Get("Cache-Control")
		ageText, ok := strings.CutSuffix(strings.TrimPrefix(cc, "max-age="), ", public, no-transform, must-revalidate")
		age, err := strconv.Atoi(ageText)
		if left := time.Until(nextUpdate); !ok || err != nil || time.Duration(age)*time.Second > left+time.Second || time.Duration(age)*time.Second < left-time.Minute {
			t.Errorf("%s: Cache-Control %q, want max-age=<seconds until nextUpdate (%v)>, public, no-transform, must-revalidate", what, cc, left)
		}
		if etag := strings.TrimPrefix(h.Get("ETag"), "W/"); len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
			t.Errorf("%s: ETag %q, want a quoted tag", what, h.Get("ETag"))
		}
	}
	notCached := func(what string, resp *http.Response, status int) {
		t.Helper()
		h := resp.Header
		if resp.StatusCode != status || h.Get("Cache-Control") != "no-store" || h.Get("Expires") != "" || h.Get("ETag") != "" {
			t.Errorf("%s: HTTP %d, Cache-Control %q, Expires %q, ETag %q; want %d, no-store, no Expires, no ETag",
				what, resp.StatusCode, h.Get("Cache-Control"), h.Get("Expires"), h.Get("ETag"), status)
		}
	}

	for _, path := range []string{"/ocsp/root/" + b64(req), "/ocsp/" + b64(req)} {
		resp, body := do(http.MethodGet, path, nil)
		parsed, err := ocsp.ParseResponse(body, root.Cert)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		cached("OCSP GET "+path, resp, parsed.ThisUpdate, parsed.NextUpdate)
	}
	resp, body := do(http.MethodPost, "/ocsp/root", req)
	if _, err := ocsp.ParseResponse(body, root.Cert); err != nil {
		t.Fatalf("POST: %v", err)
	}
	notCached("OCSP POST", resp, http.StatusOK)
	resp, body = do(http.MethodGet, "/ocsp/"+b64(ocspReq(other.Cert)), nil)
	if !bytes.Equal(body, ocsp.UnauthorizedErrorResponse) {
		t.Fatalf("GET for a foreign CA: %x, want unauthorized", body)
	}
	notCached("OCSP unauthorized", resp, http.StatusOK)
	resp, body = do(http.MethodGet, "/ocsp/"+b64([]byte("not a request")), nil)
	if !bytes.Equal(body, ocsp.MalformedRequestErrorResponse) {
		t.Fatalf("GET of no request: %x, want malformedRequest", body)
	}
	notCached("OCSP malformed", resp, http.StatusOK)
	resp, _ = do(http.MethodGet, "/ocsp/!!!", nil)
	notCached("OCSP GET of no base64", resp, http.StatusBadRequest)
	resp, _ = do(http.MethodPost, "/ocsp/nosuch", req)
	notCached("OCSP POST for no CA", resp, http.StatusNotFound)

	etags := map[string]bool{}
	for _, ext := range []string{"crl", "pem"} {
		resp, body := do(http.MethodGet, "/crl/root."+ext, nil)
		if ext == "pem" {
			block, _ := pem.Decode(body)
			if block == nil {
				t.Fatalf("GET /crl/root.pem: %q", body)
			}
			body = block.Bytes
		}
		crl, err := x509.ParseRevocationList(body)
		if err != nil {
			t.Fatalf("GET /crl/root.%s: %v", ext, err)
		}
		cached("CRL ."+ext, resp, crl.ThisUpdate, crl.NextUpdate)
		etags[resp.Header.Get("ETag")] = true
	}
	if len(etags) != 2 {
		t.Errorf("the DER and the PEM CRL have ETags %v, want two (one per representation)", etags)
	}
	resp, _ = do(http.MethodGet, "/crl/nosuch.crl", nil)
	notCached("CRL of no CA", resp, http.StatusNotFound)

	// Conditional GETs: the ETag a client holds is answered 304 without
	// the body while it is current, the new CRL once one is signed.
	// If-Modified-Since is not answered: CRLs signed within one second
	// share their Last-Modified.
	conditional := func(path, header, value string) (*http.Response, []byte) {
		t.Helper()
		hr, _ := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		hr.Header.Set(header, value)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp, got
	}
	resp, body = do(http.MethodGet, "/crl/root.crl", nil)
	etag, lastModified := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp, got := conditional("/crl/root.crl", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || len(got) != 0 || resp.Header.Get("ETag") != etag {
		t.Errorf("CRL If-None-Match %s: HTTP %d, %d bytes, ETag %q; want 304, no body, the same ETag", etag, resp.StatusCode, len(got), resp.Header.Get("ETag"))
	}
	if resp, got := conditional("/crl/root.crl", "If-Modified-Since", lastModified); resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("CRL If-Modified-Since %s: HTTP %d, %d bytes; want 200 and the CRL", lastModified, resp.StatusCode, len(got))
	}
	if _, err := rev.Refresh(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	resp, got := conditional("/crl/root.crl", "If-None-Match", etag)
	crl, err := x509.ParseRevocationList(got)
	if resp.StatusCode != http.StatusOK || err != nil || resp.Header.Get("ETag") == etag || bytes.Equal(got, body) {
		t.Errorf("CRL If-None-Match %s after a new CRL: HTTP %d, ETag %q, parse error %v; want 200, a new ETag and the new CRL", etag, resp.StatusCode, resp.Header.Get("ETag"), err)
	} else {
		cached("new CRL", resp, crl.ThisUpdate, crl.NextUpdate)
	}
	path := "/ocsp/root/" + b64(req)
	resp, _ = do(http.MethodGet, path, nil)
	if resp, got := conditional(path, "If-None-Match", resp.Header.Get("ETag")); resp.StatusCode != http.StatusNotModified || len(got) != 0 {
		t.Errorf("OCSP If-None-Match: HTTP %d, %d bytes; want 304, no body", resp.StatusCode, len(got))
	}
	resp, got = conditional(path, "If-None-Match", `"something else"`)
	if _, err := ocsp.ParseResponse(got, root.Cert); resp.StatusCode != http.StatusOK || err != nil {
		t.Errorf("OCSP If-None-Match of another tag: HTTP %d, %v; want 200 and an answer", resp.StatusCode, err)
	}
}
