package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/ossl"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestCryptoEngineDefault: a binary with the OpenSSL engine signs with it
// unless told crypto: go; one without it uses Go's. `scepd version` says
// which.
func TestCryptoEngineDefault(t *testing.T) {
	want := "go"
	if ossl.Available {
		want = "openssl"
	}
	if got := defaultEngine(); got != want {
		t.Fatalf("defaultEngine() = %q, want %q (ossl.Available %v)", got, want, ossl.Available)
	}
	if line := versionLine(); !strings.Contains(line, " crypto="+want) {
		t.Errorf("version line %q does not say crypto=%s", line, want)
	}
	dir := t.TempDir()
	ks, err := keySource(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if (ks.Engine != nil) != ossl.Available {
		t.Errorf("crypto unset: OpenSSL engine in use %v, compiled in %v", ks.Engine != nil, ossl.Available)
	}
	if ks, err = keySource(dir, "go"); err != nil || ks.Engine != nil {
		t.Errorf("crypto: go: engine set %v, %v", ks.Engine != nil, err)
	}
	if _, err := keySource(dir, "openssl"); (err == nil) != ossl.Available {
		t.Errorf("crypto: openssl with the engine compiled in %v: %v", ossl.Available, err)
	}
}

var metricsURLLine = regexp.MustCompile(`msg="serving SCEP" profile=default url=(http://[^/]+)/`)

// TestServeSaysCryptoEngine: the startup log and /metrics
// (scepd_build_info) name the engine signing with file-held keys.
func TestServeSaysCryptoEngine(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig{
		file: &config.File{}, addr: "127.0.0.1:0", store: storeFlags{dataDir: filepath.Join(dir, "data")},
		queueWait: time.Second, maxQueue: 16, challengeRate: 10, challengeBurst: 100, shutdownGrace: 5 * time.Second,
		caKeyType: "ecdsa-p256", raKeyType: "rsa-2048", challengeMode: "static", challenge: "engine-test-challenge",
	}
	logs := &sceptest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, io.Discard, log) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("runServer: %v", err)
		}
	}()
	var base string
	for base == "" {
		if m := metricsURLLine.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("runServer returned during start: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	want := defaultEngine()
	if !strings.Contains(logs.String(), "msg=\"private keys\" new_keys=files crypto_engine="+want) {
		t.Errorf("no startup line naming crypto_engine=%s:\n%s", want, logs.String())
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	info := regexp.MustCompile(`(?m)^scepd_build_info\{([^}]*)\} 1$`).FindStringSubmatch(string(body))
	if info == nil || !strings.Contains(info[1], `crypto_engine="`+want+`"`) || !strings.Contains(info[1], `go="go`) || !strings.Contains(info[1], `version="`) {
		t.Fatalf("scepd_build_info: %q; want crypto_engine=%q, go and version labels", info, want)
	}
}
