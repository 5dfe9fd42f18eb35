package e2e

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// slowAuthority is an operator's webhook that allows every request after
// a moment and takes its time over the issued notifications (as Intune
// may). Once gate is set it holds every validation until gate is closed,
// and arrived hears of the first it holds: SIGTERM then finds an
// enrollment in flight for sure (on a busy machine the clients' key
// generation can leave none in the server at a given moment).
type slowAuthority struct {
	validate, notify time.Duration
	arrived          chan struct{}

	mu       sync.Mutex
	gate     chan struct{}
	notified map[string]bool // serial -> an issued notification arrived
}

func (a *slowAuthority) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m := hmac.New(sha256.New, []byte(webhookSecret))
	m.Write(body)
	if !hmac.Equal([]byte(r.Header.Get("X-Scepd-Signature")), []byte("sha256="+hex.EncodeToString(m.Sum(nil)))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req struct{ Event, Serial string }
	json.Unmarshal(body, &req)
	switch req.Event {
	case "validate":
		a.mu.Lock()
		gate := a.gate
		a.mu.Unlock()
		if gate != nil {
			select {
			case a.arrived <- struct{}{}:
			default:
			}
			select { // until released, or the server gives up (a failed test)
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		time.Sleep(a.validate)
		fmt.Fprint(w, `{"allow": true}`)
	case "issued":
		time.Sleep(a.notify)
		a.mu.Lock()
		a.notified[req.Serial] = true
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// TestSIGTERMUnderLoad: SIGTERM while enrollments pour in. Every
// enrollment the server answered with a certificate is stored and
// verifies, its outcome notification reached the authorising webhook
// (it is sent after the answer), the store is consistent, and the
// process exits 0 within the grace period.
func TestSIGTERMUnderLoad(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { sigtermUnderLoad(t, backend) })
	}
}

func sigtermUnderLoad(t *testing.T, backend string) {
	var args []string
	if backend == "postgres" {
		args = []string{"--database", pgtest.Schema(t)}
	}
	auth := &slowAuthority{validate: 150 * time.Millisecond, notify: time.Second, notified: map[string]bool{}, arrived: make(chan struct{}, 1)}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	if err := os.WriteFile(cfg, []byte(`
cas:
  - id: root
    create: {subject: "CN=Shutdown Root,O=E2E"}
profiles:
  - id: hooked
    ca: root
    challenge:
      mode: webhook
      webhook: {url: "`+serve(t, auth)+`", secret_env: E2E_SHUTDOWN_WEBHOOK_SECRET, notify: true}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	const grace = 20 * time.Second
	// The grace period by environment: an older scepd without the flag
	// starts too, and this test shows what it loses.
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: append(args, "--config", cfg),
		Env: []string{"E2E_SHUTDOWN_WEBHOOK_SECRET=" + webhookSecret, "SCEPD_SHUTDOWN_GRACE=" + grace.String()}})
	c := client.New(s.URL("hooked"))
	chain, err := c.GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	recipient, err := client.Recipient(chain)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, cert := range chain {
		if cert.IsCA {
			roots.AddCert(cert)
		}
	}

	type answer struct {
		cert *x509.Certificate
		at   time.Time
	}
	var (
		mu       sync.Mutex
		answered []answer
		wg       sync.WaitGroup
	)
	const workers = 12
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				certs, err := c.Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: fmt.Sprintf("load-%d-%d", w, i)},
					Challenge: "device-token", Cipher: cms.AES128, Digest: crypto.SHA256, Recipient: recipient})
				if err != nil {
					return // the server stopped listening (or cut us off)
				}
				mu.Lock()
				answered = append(answered, answer{certs[0], time.Now()})
				mu.Unlock()
			}
		})
	}
	// Let the load run, then SIGTERM in the middle of it.
	waitFor(t, "a first batch of enrollments", time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answered) >= 2*workers
	})
	// Hold the validations until SIGTERM is sent: one at least is then in
	// flight, and must be answered after it.
	gate := make(chan struct{})
	auth.mu.Lock()
	auth.gate = gate
	auth.mu.Unlock()
	select {
	case <-auth.arrived:
	case <-time.After(time.Minute):
		t.Fatal("no enrollment reached the webhook")
	}
	signalled := time.Now()
	s.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond) // the server stops taking new requests
	close(gate)
	state := s.Exited(grace)
	exitedAfter := time.Since(signalled)
	wg.Wait()
	if state == nil {
		t.Fatalf("scepd still runs %v after SIGTERM (grace period %v)\n%s", exitedAfter, grace, s.Log())
	}
	if state.ExitCode() != 0 {
		t.Errorf("scepd exited with %v after SIGTERM, want 0\n%s", state, s.Log())
	}

	st := s.Store()
	late := 0
	for _, a := range answered {
		if a.at.After(signalled) {
			late++
		}
		serial := a.cert.SerialNumber.Text(16)
		row, err := st.GetCertificate(context.Background(), serial)
		if err != nil || !slices.Equal(row.DER, a.cert.Raw) || row.Status != "valid" {
			t.Errorf("answered certificate %s (%s) is not stored as issued: %v", serial, a.cert.Subject.CommonName, err)
			continue
		}
		if _, err := a.cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("answered certificate %s does not verify: %v", serial, err)
		}
		auth.mu.Lock()
		notified := auth.notified[serial]
		auth.mu.Unlock()
		if !notified {
			t.Errorf("certificate %s was answered but its issued notification never reached the webhook", serial)
		}
	}
	if late == 0 {
		t.Errorf("no enrollment was answered after SIGTERM: none was in flight, the test shows nothing")
	}
	if out, err := sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), append([]string{"store", "check", "--data", s.DataDir}, args...)...); err != nil {
		t.Errorf("store check after the shutdown: %v\n%s", err, out)
	}
	t.Logf("%d enrollments answered, %d of them after SIGTERM; exit %d after %v", len(answered), late, state.ExitCode(), exitedAfter.Round(time.Millisecond))
}
