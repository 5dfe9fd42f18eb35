package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/events"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestEventsCarryProfileAndReasonNames: two profiles, a webhook sink
// limited to one of them and one for all. Certificates of both are
// revoked by an operator (CLI) and by renewal's revoke_old. The limited
// sink receives only its profile's revocations; every event names its
// profile; revocation reasons are RFC 5280 names whichever path revoked.
// The profile's 720h validity with the default notices (720h, 168h)
// raises no certificate.expiring at issuance.
func TestEventsCarryProfileAndReasonNames(t *testing.T) {
	onlyA := &hookReceiver{t: t}
	all := &hookReceiver{t: t}
	cfg := filepath.Join(t.TempDir(), "scepd.yaml")
	os.WriteFile(cfg, []byte(`
cas:
  - id: root
    create: {subject: "CN=Events Profile Root", key_type: ecdsa-p256}
profiles:
  - id: fleet-a
    ca: root
    challenge: {password_env: E2E_CHALLENGE}
    policy: {validity: 720h}
    renewal: {revoke_old: true}
  - id: fleet-b
    ca: root
    challenge: {password_env: E2E_CHALLENGE}
    renewal: {revoke_old: true}
events:
  expiry_scan: 1s
  sinks:
    - name: fleet-a-only
      type: webhook
      url: "`+serve(t, onlyA)+`"
      secret_env: E2E_EVENT_SECRET
      profiles: [fleet-a]
    - name: all
      type: webhook
      url: "`+serve(t, all)+`"
      secret_env: E2E_EVENT_SECRET
`), 0o600)
	s := sceptest.Start(t, sceptest.Options{Args: []string{"--config", cfg},
		Env: []string{"E2E_CHALLENGE=" + challenge, "E2E_EVENT_SECRET=" + eventSecret}})

	want := map[string]string{} // serial -> profile of the revoked ones
	for _, p := range []string{"fleet-a", "fleet-b"} {
		byOperator := enrollIn(t, s, p, p+"-lost")
		if out, err := cli(t, s, nil, "cert", "revoke", byOperator.cert.SerialNumber.Text(16), "--reason", "keyCompromise", "--data", s.DataDir); err != nil ||
			!strings.Contains(out, "keyCompromise") {
			t.Fatalf("cert revoke: %v\n%s", err, out)
		}
		renewed := enrollIn(t, s, p, p+"-renewed")
		if _, err := renew(s, p, renewed, newKey(t), renewed.cert.Subject, true); err != nil {
			t.Fatalf("renewal in %s: %v", p, err)
		}
		want[byOperator.cert.SerialNumber.Text(16)] = p + " keyCompromise"
		want[renewed.cert.SerialNumber.Text(16)] = p + " superseded"
	}
	waitFor(t, "four certificate.revoked events", 30*time.Second, func() bool { return len(all.of(events.CertificateRevoked)) == 4 })
	// Several expiry scans run after the last issuance.
	time.Sleep(3 * time.Second)

	for _, e := range all.of(events.CertificateRevoked) {
		if got := e.Profile + " " + e.Details["reason"]; got != want[e.Serial] {
			t.Errorf("revocation of %s: profile and reason %q, want %q", e.Serial, got, want[e.Serial])
		}
		if !slices.Contains(ca.ReasonNames(), e.Details["reason"]) {
			t.Errorf("revocation of %s: reason %q is not an RFC 5280 name", e.Serial, e.Details["reason"])
		}
	}
	all.mu.Lock()
	for _, e := range all.accepted {
		if e.Profile == "" {
			t.Errorf("%s event %s carries no profile", e.Type, e.ID)
		}
	}
	all.mu.Unlock()
	if got := onlyA.of(events.CertificateRevoked); len(got) != 2 {
		t.Errorf("the fleet-a sink received %d revocations, want fleet-a's 2: %+v", len(got), got)
	}
	onlyA.mu.Lock()
	for _, e := range onlyA.accepted {
		if e.Profile != "fleet-a" {
			t.Errorf("the fleet-a sink received a %s event of profile %q", e.Type, e.Profile)
		}
	}
	onlyA.mu.Unlock()
	if got := all.of(events.CertificateExpiring); len(got) != 0 {
		t.Errorf("certificate.expiring right after issuance: %+v", got)
	}
}
