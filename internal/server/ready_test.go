package server_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/server"
)

// TestReadyzWhileWritesFail: a database that answers (its ping succeeds)
// but refuses writes, here because it is full (SQLite's max_page_count,
// as a full disk answers), makes /readyz 503 and say why, until a write
// succeeds again; /healthz stays 200.
func TestReadyzWhileWritesFail(t *testing.T) {
	st, ks := openStore(t)
	// One connection: the one whose max_page_count the test sets.
	st.DB().SetMaxOpenConns(1)
	hs := newServerWith(t, st, ks, ca.ECDSAP256, func(o *server.Options) { o.Ready = st.Ready })
	ctx := context.Background()
	c := client.New(hs.URL + "/scep/default/pkiclient.exe")
	certs, err := c.GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	n := 0
	enrollOne := func() error {
		n++
		_, err := c.Enroll(ctx, client.Enrollment{Key: key, Subject: pkix.Name{CommonName: fmt.Sprintf("dev-%d", n)}, Challenge: challenge,
			Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: fmt.Sprintf("tx-%d", n), Recipient: ra})
		return err
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if err := enrollOne(); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before: %d %q", code, body)
	}

	var pages int
	if err := st.DB().QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	if err := enrollOne(); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("enrolling in a full database: %v, want a 503", err)
	}
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("the full database does not answer a ping: %v", err)
	}
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "database: writes failing since ") {
		t.Fatalf("/readyz while writes fail: %d %q, want 503 saying writes are failing", code, body)
	}
	if strings.Contains(body, "scepd.db") || strings.Contains(body, "full") {
		t.Errorf("/readyz shows the driver's error to anyone: %q", body)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while writes fail: %d %q, want 200 (liveness)", code, body)
	}

	if _, err := st.DB().ExecContext(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if err := enrollOne(); err != nil {
		t.Fatalf("enrolling once the database has room: %v", err)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after a write succeeded: %d %q, want 200", code, body)
	}
}
