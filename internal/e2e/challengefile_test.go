package e2e

import (
	"crypto"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestChallengeFromFile: the zero-config challenge read from the file
// SCEPD_CHALLENGE_FILE names (a systemd credential in the Debian package),
// trailing newline removed; an unreadable file stops the server with the
// variable named, before anything is created.
func TestChallengeFromFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "challenge")
	const pw = "from-a-credential-file"
	if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE_FILE=" + file}})
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "cred-file"}, Challenge: pw, Cipher: cms.AES128, Digest: crypto.SHA256})
	if strings.Contains(s.Log(), pw) {
		t.Fatal("the challenge appears in the log")
	}

	data := filepath.Join(dir, "data2")
	out, err := sceptest.Run(t, time.Minute, []string{"SCEPD_CHALLENGE_FILE=" + filepath.Join(dir, "missing")}, "",
		sceptest.Binary(t), "serve", "--data", data, "--addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(out, "SCEPD_CHALLENGE_FILE") {
		t.Fatalf("serve with a missing challenge file: %v\n%s", err, out)
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("a data directory was created although the challenge file is missing")
	}
}
