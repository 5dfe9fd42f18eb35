package e2e

import (
	"crypto"
	"crypto/x509/pkix"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestAuditVerify: `scepd audit verify` detects a row edited or deleted
// directly in the database and names it; export writes JSON lines.
func TestAuditVerify(t *testing.T) {
	s := startServer(t)
	for i := range 3 {
		enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "audit-" + string(rune('a'+i))}, Cipher: cms.AES128, Digest: crypto.SHA256})
	}
	s.Stop()
	verify := func() (string, error) {
		return sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), "audit", "verify", "--data", s.DataDir)
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("untouched chain: %v\n%s", err, out)
	}
	out, err := sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), "audit", "export", "--data", s.DataDir)
	if err != nil || strings.Count(out, "\n") < 5 || !strings.Contains(out, `"action":"enroll"`) {
		t.Fatalf("export: %v\n%s", err, out)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.DataDir, "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_events SET actor = 'someone else' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil || !strings.Contains(out, "audit event 3 was altered") {
		t.Fatalf("an edited row: %v\n%s", err, out)
	}
	if _, err := db.Exec(`UPDATE audit_events SET actor = (SELECT actor FROM audit_events WHERE seq = 4) WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	db.Exec(`DELETE FROM audit_events WHERE seq = 3`)
	if out, err := verify(); err == nil || !strings.Contains(out, "TAMPERED") {
		t.Fatalf("a deleted row: %v\n%s", err, out)
	}
}

// checkMetrics fetches /metrics and reports each wanted line it lacks; it
// returns the page.
func checkMetrics(t *testing.T, s *sceptest.Server, wants ...string) string {
	t.Helper()
	body, err := sceptest.HTTPGet(s.BaseURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range wants {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	return string(body)
}

// TestMetrics: /metrics counts what the binary did.
func TestMetrics(t *testing.T) {
	s := startServer(t)
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "metered"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	client.New(s.URL("default")).Enroll(t.Context(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "x"}, Challenge: "wrong-challenge",
		Cipher: cms.AES128, Digest: crypto.SHA256})
	body := checkMetrics(t, s,
		`scepd_pkioperations_total{message_type="PKCSReq",outcome="success",profile="default"} 1`,
		`scepd_pkioperations_total{message_type="PKCSReq",outcome="failure:badRequest",profile="default"} 1`,
		`scepd_pkioperation_duration_seconds_count{message_type="PKCSReq",profile="default"} 2`,
		`scepd_certificates{profile="default",status="valid"} 1`,
		`scepd_certificates_expiring_30d{profile="default"} 0`,
		`scepd_overloaded_total 0`,
		`scepd_build_info{crypto_engine="`,
		`process_resident_memory_bytes`,
		`scepd_store_seconds_count{op="RecordIssued"} 1`,
		`scepd_store_seconds_bucket{op="GetTransaction",le="`,
	)
	if strings.Contains(body, `scepd_store_errors_total{`) {
		t.Error("store errors counted for a healthy database (a refused challenge is not a store error)")
	}
}
