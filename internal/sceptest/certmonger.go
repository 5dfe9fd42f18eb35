package sceptest

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Certmonger is a private certmonger daemon: its own listening socket, its
// own state directories, no D-Bus system bus.
type Certmonger struct {
	t   testing.TB
	dir string
	env []string
}

// StartCertmonger starts `certmonger -L -P SOCKET -n` with every state
// directory in a temp dir and stops it when the test ends.
func StartCertmonger(t testing.TB) *Certmonger {
	t.Helper()
	bin := RequireTool(t, "certmonger", "certmonger")
	RequireTool(t, "getcert", "certmonger")
	// Unix socket paths are limited to ~100 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "cm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cm := &Certmonger{t: t, dir: dir}
	for _, d := range []string{"requests", "cas", "local", "tmp", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "sock")
	cm.env = []string{
		"CERTMONGER_REQUESTS_DIR=" + filepath.Join(dir, "requests"),
		"CERTMONGER_CAS_DIR=" + filepath.Join(dir, "cas"),
		"CERTMONGER_LOCAL_CA_DIR=" + filepath.Join(dir, "local"),
		"CERTMONGER_TMPDIR=" + filepath.Join(dir, "tmp"),
		"CERTMONGER_CONFIG_DIR=" + filepath.Join(dir, "config"),
		"CERTMONGER_SYSTEM_LOCK_FILE=" + filepath.Join(dir, "lock"),
		"CERTMONGER_PVT_ADDRESS=unix:path=" + sock,
	}
	cmd := exec.Command(bin, "-L", "-P", sock, "-n")
	cmd.Env = append(os.Environ(), cm.env...)
	log := &LogBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("certmonger log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if out, err := cm.Getcert("list-cas"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("certmonger did not start: %v\n%s\n%s", err, out, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cm
}

// Getcert runs getcert against this daemon.
func (c *Certmonger) Getcert(args ...string) (string, error) {
	out, err := Run(c.t, 2*time.Minute, c.env, c.dir, "getcert", args...)
	return strings.TrimSpace(out), err
}

// AddCA registers a SCEP CA with this daemon (`getcert add-scep-ca`):
// nickname, the SCEP URL, and the root certificate it is to trust.
func (c *Certmonger) AddCA(t testing.TB, nickname, url string, root *x509.Certificate) {
	t.Helper()
	rootPEM := filepath.Join(c.dir, nickname+"-ca.pem")
	if err := os.WriteFile(rootPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Getcert("add-scep-ca", "-c", nickname, "-u", url, "-N", rootPEM); err != nil {
		t.Fatalf("getcert add-scep-ca: %v\n%s", err, out)
	}
}

// KeyAndCertPaths returns fresh paths for a key (an RSA key made with
// openssl) and the certificate certmonger will write.
func (c *Certmonger) KeyAndCertPaths(t testing.TB, name string) (key, cert string) {
	t.Helper()
	key = filepath.Join(c.dir, name+".key")
	cert = filepath.Join(c.dir, name+".pem")
	if out, err := Run(t, 30*time.Second, nil, "", "openssl", "genrsa", "-out", key, "2048"); err != nil {
		t.Fatalf("openssl genrsa: %v\n%s", err, out)
	}
	return key, cert
}

// Env is what getcert needs in its environment to reach this daemon.
func (c *Certmonger) Env() []string { return append([]string(nil), c.env...) }
