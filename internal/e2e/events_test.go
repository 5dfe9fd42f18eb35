package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	scepchallenge "github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/events"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

const (
	eventSecret   = "event-hook-secret-e2e"
	eventPassword = "event-hook-password-e2e" // the sink's HTTP Basic password
)

// hookReceiver is an operator's event endpoint: it checks each body's
// signature, refuses the first failFirst deliveries with 503, and keeps
// what it accepted.
type hookReceiver struct {
	t         *testing.T
	failFirst int32
	// basic: the sink sends HTTP Basic (eventsConfig's username and
	// password_env).
	basic    bool
	calls    atomic.Int32
	mu       sync.Mutex
	accepted []events.Event
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get(scepchallenge.SignatureHeader) != scepchallenge.Sign([]byte(eventSecret), body) {
		h.t.Errorf("event with a bad signature: %s", body)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if user, pass, _ := r.BasicAuth(); h.basic && (user != "scepd" || pass != eventPassword) {
		h.t.Errorf("event without the sink's HTTP Basic credentials: %q %q", user, pass)
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	if h.calls.Add(1) <= h.failFirst {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID == "" || r.Header.Get(events.IdempotencyKeyHeader) != e.ID {
		h.t.Errorf("event body %s (%v), idempotency key %q", body, err, r.Header.Get(events.IdempotencyKeyHeader))
	}
	h.mu.Lock()
	h.accepted = append(h.accepted, e)
	h.mu.Unlock()
}

// of returns the accepted events of a type.
func (h *hookReceiver) of(typ string) []events.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []events.Event
	for _, e := range h.accepted {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventsConfig: a profile whose certificates live two hours, with an
// expiry notice two seconds short of that (so a fresh certificate is due
// two seconds after issuance; a threshold as long as the validity never
// is), a webhook sink and a log sink for expiry notices only.
func eventsConfig(t *testing.T, hookURL, database string) string {
	cfg := filepath.Join(t.TempDir(), "scepd.yaml")
	db := ""
	if database != "" {
		db = "database: " + database
	}
	os.WriteFile(cfg, []byte(db+`
cas:
  - id: root
    create: {subject: "CN=Events Root", key_type: ecdsa-p256}
profiles:
  - id: devices
    ca: root
    allow_des: true
    challenge: {password_env: E2E_STATIC}
    policy: {validity: 2h}
    expiry_notices: [119m58s, 720h]
events:
  expiry_scan: 1s
  sinks:
    - name: hook
      type: webhook
      url: "`+hookURL+`"
      secret_env: E2E_EVENT_SECRET
      username: scepd
      password_env: E2E_EVENT_PASSWORD
      timeout: 2s
    - name: expiry-log
      type: log
      events: [certificate.expiring]
`), 0o600)
	return cfg
}

// TestEventsWebhook: a real scepclient enrollment, an operator's
// revocation, and a run of wrong challenges reach a webhook that refuses
// the first deliveries: every event arrives, signed, once, in order.
func TestEventsWebhook(t *testing.T) {
	bin := sceptest.RequireTool(t, "scepclient", "scep")
	rcv := &hookReceiver{t: t, failFirst: 2, basic: true}
	hook := serve(t, rcv)
	dir := t.TempDir()
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(dir, "data"), Args: []string{"--config", eventsConfig(t, hook, "")},
		Env: []string{"E2E_STATIC=" + challenge, "E2E_EVENT_SECRET=" + eventSecret, "E2E_EVENT_PASSWORD=" + eventPassword}})

	certs, err := client.New(s.URL("devices")).GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}
	fp := sha256.Sum256(ra.Raw)
	if out, err := sceptest.Run(t, time.Minute, nil, dir, bin, "-server-url", s.URL("devices"), "-private-key", filepath.Join(dir, "key.pem"),
		"-challenge", challenge, "-cn", "events-device", "-ca-fingerprint", hex.EncodeToString(fp[:])); err != nil {
		t.Fatalf("scepclient: %v\n%s", err, out)
	}
	stored := s.Certificates()
	if len(stored) != 1 {
		t.Fatalf("%d certificates stored, want 1", len(stored))
	}
	serial := stored[0].Serial

	waitFor(t, "certificate.issued and certificate.expiring", 30*time.Second, func() bool {
		return len(rcv.of(events.CertificateIssued)) == 1 && len(rcv.of(events.CertificateExpiring)) == 1
	})
	issued := rcv.of(events.CertificateIssued)[0]
	if issued.Serial != serial || issued.Profile != "devices" || !strings.Contains(issued.Subject, "CN=events-device") {
		t.Errorf("issued event %+v does not describe certificate %s", issued, serial)
	}
	exp := rcv.of(events.CertificateExpiring)[0]
	if exp.Serial != serial || exp.Details["threshold"] != "1h59m58s" || exp.Details["not_after"] == "" {
		t.Errorf("expiring event %+v", exp)
	}
	// The 30-day threshold is longer than the certificate's life: no notice.
	if !s.LogContains("type=certificate.expiring") {
		t.Error("the log sink did not write the expiry notice")
	}

	if out, err := cli(t, s, nil, "cert", "revoke", serial, "--reason", "keyCompromise", "--data", s.DataDir); err != nil {
		t.Fatalf("scepd cert revoke: %v\n%s", err, out)
	}
	waitFor(t, "certificate.revoked", 30*time.Second, func() bool { return len(rcv.of(events.CertificateRevoked)) == 1 })
	if r := rcv.of(events.CertificateRevoked)[0]; r.Serial != serial || r.Profile != "devices" || r.Details["reason"] != "keyCompromise" {
		t.Errorf("revoked event %+v", r)
	}

	// Ten wrong challenges from one address: ten failures, one lockout.
	for i := range 10 {
		if _, err := enrollWith(s, "devices", fmt.Sprintf("guess-%d", i), "wrong-challenge"); err == nil {
			t.Fatal("a wrong challenge was accepted")
		}
	}
	waitFor(t, "enrollment.repeated_failures", 30*time.Second, func() bool {
		return len(rcv.of(events.RepeatedFailures)) == 1 && len(rcv.of(events.EnrollmentFailed)) == 10
	})
	if lo := rcv.of(events.RepeatedFailures)[0]; lo.Profile != "devices" || lo.Details["client_ip"] == "" || lo.Details["failures"] != "10" {
		t.Errorf("lockout event %+v", lo)
	}

	// Once each, in audit order, despite the refused first deliveries.
	rcv.mu.Lock()
	seen := map[string]bool{}
	last := 0
	for _, e := range rcv.accepted {
		if seen[e.ID] {
			t.Errorf("event %s delivered twice", e.ID)
		}
		seen[e.ID] = true
		seq, _ := strconv.Atoi(strings.Split(e.ID, "-")[1])
		if seq <= last {
			t.Errorf("event %s out of order", e.ID)
		}
		last = seq
	}
	n := len(rcv.accepted)
	rcv.mu.Unlock()
	if calls := rcv.calls.Load(); int(calls) != n+2 {
		t.Errorf("%d calls for %d events; want the 2 refused ones retried", calls, n)
	}
	checkMetrics(t, s,
		`scepd_events_total{outcome="delivered",sink="hook",type="certificate.issued"} 1`,
		`scepd_events_total{outcome="retry",sink="hook",type="certificate.issued"} 2`,
		`scepd_events_total{outcome="delivered",sink="expiry-log",type="certificate.expiring"} 1`,
	)
	if strings.Contains(s.Log(), eventSecret) || strings.Contains(s.Log(), "wrong-challenge") {
		t.Error("a secret appears in the log")
	}
}

// TestEventsReplicasOnce: two replicas on PostgreSQL share the sink and
// both scan for expiring certificates; each event reaches the webhook
// exactly once.
func TestEventsReplicasOnce(t *testing.T) {
	db := pgtest.Schema(t)
	rcv := &hookReceiver{t: t, basic: true}
	hook := serve(t, rcv)
	opts := sceptest.Options{DataDir: filepath.Join(t.TempDir(), "shared"), Args: []string{"--config", eventsConfig(t, hook, db)},
		Env: []string{"E2E_STATIC=" + challenge, "E2E_EVENT_SECRET=" + eventSecret, "E2E_EVENT_PASSWORD=" + eventPassword}}
	replicas := sceptest.StartMany(t, 2, opts)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := enrollWith(replicas[i%2], "devices", fmt.Sprintf("replica-device-%d", i), challenge); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitFor(t, "20 issued and 20 expiring events", 60*time.Second, func() bool {
		return len(rcv.of(events.CertificateIssued)) >= 20 && len(rcv.of(events.CertificateExpiring)) >= 20
	})
	time.Sleep(3 * time.Second) // room for a duplicate to show up
	serials := map[string]int{}
	for _, typ := range []string{events.CertificateIssued, events.CertificateExpiring} {
		got := rcv.of(typ)
		if len(got) != 20 {
			t.Errorf("%d %s events, want 20", len(got), typ)
		}
		for _, e := range got {
			serials[e.Serial]++
		}
	}
	for serial, n := range serials {
		if n != 2 {
			t.Errorf("certificate %s: %d events, want issued + expiring", serial, n)
		}
	}
	if len(serials) != 20 {
		t.Errorf("events for %d certificates, want 20", len(serials))
	}
	// Both replicas scanned; the database let one of them raise each notice.
	re := regexp.MustCompile(`expiry notices raised.*count=(\d+)`)
	total := 0
	for _, r := range replicas {
		for _, m := range re.FindAllStringSubmatch(r.Log(), -1) {
			n, _ := strconv.Atoi(m[1])
			total += n
		}
	}
	if total != 20 {
		t.Errorf("replicas report %d notices raised, want 20", total)
	}
}
