package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/sqlite"
)

var scepURLLine = regexp.MustCompile(`msg="serving SCEP" profile=hooked url=(\S+)`)

// TestServeLeavesNoGoroutine runs the serve loop in-process on a profile
// whose operator's webhook authorises requests and is told, slowly, of
// each certificate issued. It enrolls while the loop's context is
// cancelled (what SIGTERM does) and checks that runServer returns cleanly
// after each shutdown step, every answered enrollment is stored and was
// notified, and no goroutine it started outlives it.
func TestServeLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var (
		hookMu   sync.Mutex
		notified = map[string]bool{}
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req challenge.WebhookRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.Event == "validate" {
			fmt.Fprint(w, `{"allow": true}`)
			return
		}
		time.Sleep(4 * time.Second) // longer than goleak retries
		hookMu.Lock()
		notified[req.Serial] = req.Event == "issued"
		hookMu.Unlock()
	}))
	defer hook.Close()
	// What runs from here on is runServer's, or the test's enrollments.
	before := goleak.IgnoreCurrent()
	t.Setenv("LIFECYCLE_HOOK_SECRET", "lifecycle-hook-secret")
	dir := t.TempDir()
	path := filepath.Join(dir, "scepd.yaml")
	if err := os.WriteFile(path, []byte(`
cas:
  - id: root
    create: {subject: "CN=Lifecycle Root"}
profiles:
  - id: hooked
    ca: root
    challenge:
      mode: webhook
      webhook: {url: "`+hook.URL+`", secret_env: LIFECYCLE_HOOK_SECRET, notify: true}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := serveConfig{
		file: file, configured: true,
		addr:      "127.0.0.1:0",
		store:     storeFlags{dataDir: filepath.Join(dir, "data")},
		queueWait: 10 * time.Second, maxQueue: 1024, challengeRate: 10, challengeBurst: 100,
		shutdownGrace: 20 * time.Second,
	}
	logs := &sceptest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, io.Discard, log) }()

	var url string
	for deadline := time.Now().Add(30 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if m := scepURLLine.FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("runServer returned during start: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SCEP URL logged:\n%s", logs.String())
		}
	}
	c := client.New(url)
	certs, err := c.GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	recipient, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}

	// Enrollments keep coming until the server stops answering; the
	// context is cancelled in the middle of them.
	var (
		mu       sync.Mutex
		answered []*x509.Certificate
		wg       sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key, _ := rsa.GenerateKey(rand.Reader, 2048)
				got, err := c.Enroll(context.Background(), client.Enrollment{Key: key, Subject: pkix.Name{CommonName: fmt.Sprintf("leak-%d-%d", w, i)},
					Challenge: "device-token", Cipher: cms.AES128, Digest: crypto.SHA256, Recipient: recipient})
				if err != nil {
					return
				}
				mu.Lock()
				answered = append(answered, got[0])
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runServer: %v\n%s", err, logs.String())
		}
	case <-time.After(cfg.shutdownGrace + forceWait):
		t.Fatalf("runServer did not return within the grace period\n%s", logs.String())
	}
	wg.Wait()
	c.HTTP.CloseIdleConnections()
	goleak.VerifyNone(t, before)

	// Each step of the shutdown ran, in order.
	var at []int
	for _, step := range []string{"waiting for requests in flight", "requests drained", "background loops stopped", "what=\"outcome notifications\"", "what=store", "shutdown complete"} {
		i := strings.Index(logs.String(), step)
		if i < 0 {
			t.Fatalf("no %q in the log:\n%s", step, logs.String())
		}
		at = append(at, i)
	}
	if !slices.IsSorted(at) {
		t.Errorf("shutdown steps out of order:\n%s", logs.String())
	}

	if len(answered) == 0 {
		t.Fatal("no enrollment was answered before the shutdown")
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(cfg.store.dataDir, "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, cert := range answered {
		row, err := st.GetCertificate(context.Background(), cert.SerialNumber.Text(16))
		if err != nil || !slices.Equal(row.DER, cert.Raw) {
			t.Errorf("answered certificate %s not stored: %v", cert.Subject.CommonName, err)
		}
		hookMu.Lock()
		if !notified[cert.SerialNumber.Text(16)] {
			t.Errorf("answered certificate %s: no issued notification", cert.Subject.CommonName)
		}
		hookMu.Unlock()
	}
	t.Logf("%d enrollments answered before the shutdown", len(answered))
}

// TestShutdownOrder: requests in flight finish, then the loops stop, then
// the drains run, then the closers, last registered first.
func TestShutdownOrder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var (
		mu    sync.Mutex
		steps []string
	)
	note := func(s string) {
		mu.Lock()
		steps = append(steps, s)
		mu.Unlock()
	}
	own := newOwner(context.Background(), 10*time.Second, slog.New(slog.DiscardHandler))
	own.closeLast("store", func() error { note("store closed"); return nil })
	own.closeLast("token", func() error { note("token closed"); return nil })
	own.drain("notifications", func(context.Context) error { note("notifications drained"); return nil })
	own.goLoop("loop", func(ctx context.Context) { <-ctx.Done(); note("loop stopped") })
	entered := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	own.serve(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(300 * time.Millisecond)
		note("request answered")
	})}, ln, "", "")
	reqDone := make(chan error, 1)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String())
		if err == nil {
			resp.Body.Close()
		}
		reqDone <- err
	}()
	<-entered
	if err := own.shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := <-reqDone; err != nil {
		t.Fatalf("the request in flight was not answered: %v", err)
	}
	want := []string{"request answered", "loop stopped", "notifications drained", "token closed", "store closed"}
	if !slices.Equal(steps, want) {
		t.Fatalf("shutdown steps %q, want %q", steps, want)
	}
}

// TestShutdownGraceCutsOff: a request still running when the grace period
// ends has its context cancelled; shutdown waits for it to return, closes
// the store and reports the cut.
func TestShutdownGraceCutsOff(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const grace = 300 * time.Millisecond
	own := newOwner(context.Background(), grace, slog.New(slog.DiscardHandler))
	closed := false
	own.closeLast("store", func() error { closed = true; return nil })
	entered, returned := make(chan struct{}), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	own.serve(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // a store call honouring its context
		close(returned)
	})}, ln, "", "")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		if resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String()); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	start := time.Now()
	err = own.shutdown()
	if err == nil || !strings.Contains(err.Error(), "grace period") {
		t.Fatalf("shutdown: %v, want the grace period reported", err)
	}
	if d := time.Since(start); d > grace+forceWait {
		t.Fatalf("shutdown took %v", d)
	}
	select {
	case <-returned:
	default:
		t.Fatal("shutdown returned before the cut-off request did")
	}
	if !closed {
		t.Fatal("the store was not closed although nothing ran any more")
	}
	<-reqDone
	if again := own.shutdown(); again != err {
		t.Fatal("a second shutdown call gives another result")
	}
}

// TestShutdownLeavesStoreOpenUnderStuckWork: a request that ignores its
// cancelled context outlives even the forced wait; shutdown then returns
// an error without closing the store under it.
func TestShutdownLeavesStoreOpenUnderStuckWork(t *testing.T) {
	own := newOwner(context.Background(), 100*time.Millisecond, slog.New(slog.DiscardHandler))
	own.force = 100 * time.Millisecond
	closed := false
	own.closeLast("store", func() error { closed = true; return nil })
	entered, release := make(chan struct{}), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	own.serve(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release // deaf to its context
	})}, ln, "", "")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		if resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String()); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	err = own.shutdown()
	close(release)
	<-reqDone
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("shutdown: %v, want the stuck request reported", err)
	}
	if closed {
		t.Fatal("the store was closed under a request still running")
	}
}
