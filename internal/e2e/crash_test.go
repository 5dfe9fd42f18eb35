package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestCrashDuringRevocations: SIGKILL while revocations publish CRLs; after
// a restart the store is consistent, every revocation the API confirmed is
// on the next CRL, and CRL numbers keep growing.
func TestCrashDuringRevocations(t *testing.T) {
	s := startServer(t)
	var serials []string
	for i := range 25 {
		c := enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: fmt.Sprint("crl-", i)}, Cipher: cms.AES128, Digest: crypto.SHA256})
		serials = append(serials, c.SerialNumber.Text(16))
	}
	tok, err := cli(t, s, nil, "token", "create", "--role", "operator", "--data", s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	before, err := x509.ParseRevocationList(httpGet(t, s.BaseURL()+"/crl/default.crl"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var confirmed []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, serial := range serials {
			// Not api(): a connection cut by the kill is expected here, not
			// a test failure.
			req, _ := http.NewRequest("POST", s.BaseURL()+"/api/v1/certificates/"+serial+"/revoke", strings.NewReader(`{"reason": "keyCompromise"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // the server died
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return
			}
			mu.Lock()
			confirmed = append(confirmed, serial)
			mu.Unlock()
		}
	}()
	time.Sleep(150 * time.Millisecond)
	s.Kill()
	<-done
	s.Restart()
	out, err := sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), "store", "check", "--data", s.DataDir)
	if err != nil {
		t.Fatalf("store check after the crash: %v\n%s", err, out)
	}
	after, err := x509.ParseRevocationList(httpGet(t, s.BaseURL()+"/crl/default.crl"))
	if err != nil {
		t.Fatal(err)
	}
	// The CRL served may predate the crash; publish one now via a revocation
	// of one more certificate and check every confirmed revocation is on it.
	extra := enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "crl-extra"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	if code, _ := api(t, s, tok, "POST", "/api/v1/certificates/"+extra.SerialNumber.Text(16)+"/revoke", map[string]string{}); code != 200 {
		t.Fatal("revoke after restart")
	}
	latest, err := x509.ParseRevocationList(httpGet(t, s.BaseURL()+"/crl/default.crl"))
	if err != nil {
		t.Fatal(err)
	}
	onCRL := map[string]bool{}
	for _, e := range latest.RevokedCertificateEntries {
		onCRL[e.SerialNumber.Text(16)] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for _, serial := range confirmed {
		if !onCRL[serial] {
			t.Errorf("revocation of %s was confirmed but is not on the CRL", serial)
		}
	}
	if !(before.Number.Cmp(after.Number) <= 0 && after.Number.Cmp(latest.Number) < 0) {
		t.Errorf("CRL numbers %v, %v, %v do not grow", before.Number, after.Number, latest.Number)
	}
	t.Logf("%d revocations confirmed before SIGKILL; CRL numbers %v -> %v -> %v", len(confirmed), before.Number, after.Number, latest.Number)
}

// TestCrashDuringFirstStart: SIGKILL at many points of a first start
// (migrations, CA and profile creation); the next start completes and
// serves with a consistent store.
func TestCrashDuringFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for i := range 8 {
		cmd := exec.Command(sceptest.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", dir)
		cmd.Env = append(os.Environ(), "SCEPD_CHALLENGE="+challenge)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(5+i*15) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	s := sceptest.Start(t, sceptest.Options{DataDir: dir, Env: []string{"SCEPD_CHALLENGE=" + challenge}})
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "after-crashes"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	if out, err := sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), "store", "check", "--data", dir); err != nil {
		t.Fatalf("store check: %v\n%s", err, out)
	}
	// Key files of interrupted first starts may remain unused; exactly one
	// of each is referenced.
	cas, _ := filepath.Glob(filepath.Join(dir, "ca", "default-*.key"))
	if len(cas) == 0 {
		t.Fatal("no CA key")
	}
}

// TestDiskFull: with the data directory on a full filesystem, enrollments
// are refused (503 or FAILURE), never answered SUCCESS without being
// stored; with space back, the server enrolls again by itself.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestDiskFull needs root to mount a small tmpfs")
		}
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	s := sceptest.Start(t, sceptest.Options{DataDir: filepath.Join(mnt, "data"), Env: []string{"SCEPD_CHALLENGE=" + challenge}})
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "before-full"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	filler := filepath.Join(mnt, "filler")
	f, _ := os.Create(filler)
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC: the filesystem is full
		}
	}
	f.Close()
	var issued []*x509.Certificate
	refused := 0
	for i := range 30 {
		certs, err := client.New(s.URL("default")).Enroll(context.Background(), client.Enrollment{Key: newKey(t),
			Subject: pkix.Name{CommonName: fmt.Sprint("while-full-", i)}, Challenge: challenge, Cipher: cms.AES128, Digest: crypto.SHA256})
		if err != nil {
			if !strings.Contains(err.Error(), "HTTP 503") && !strings.Contains(err.Error(), "SCEP FAILURE") && !strings.Contains(err.Error(), "HTTP 500") {
				t.Fatalf("unexpected failure with a full disk: %v", err)
			}
			refused++
			continue
		}
		issued = append(issued, certs[0])
	}
	if refused == 0 {
		t.Fatal("every enrollment succeeded on a full filesystem")
	}
	os.Remove(filler)
	checkStored(t, s, issued)
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "after-full"}, Cipher: cms.AES128, Digest: crypto.SHA256})
	t.Logf("with the disk full: %d issued (space freed by SQLite pages), %d refused", len(issued), refused)
}
