package sceptest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Scepserver is micromdm's scepserver (Debian package scep) started for a
// test: an upstream CA for RA mode.
type Scepserver struct {
	URL    string
	CACert *x509.Certificate
	// Depot is its CA folder; its serial file counts what it issued.
	Depot string
	// LogPath is where its output goes.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// StartScepserver initialises a CA (RSA 2048) in a fresh depot and serves
// it on a free loopback port; it ends with the test. args go to
// scepserver (such as -challenge).
func StartScepserver(t testing.TB, args ...string) *Scepserver {
	t.Helper()
	bin := RequireTool(t, "scepserver", "scep")
	dir := t.TempDir()
	s := &Scepserver{Depot: filepath.Join(dir, "depot"), LogPath: filepath.Join(dir, "scepserver.log"), done: make(chan struct{})}
	if out, err := exec.Command(bin, "ca", "-init", "-keySize", "2048", "-depot", s.Depot).CombinedOutput(); err != nil {
		t.Fatalf("scepserver ca -init: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(s.Depot, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("scepserver: ca.pem holds no PEM block")
	}
	if s.CACert, err = x509.ParseCertificate(blk.Bytes); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	log, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, append([]string{"-depot", s.Depot, "-port", fmt.Sprint(port)}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		log.Close()
		close(s.done)
	}()
	t.Cleanup(s.Stop)
	s.URL = fmt.Sprintf("http://127.0.0.1:%d/scep", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.URL + "?operation=GetCACaps")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("scepserver did not start: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Stop ends scepserver and waits for it.
func (s *Scepserver) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
}

// Log is scepserver's output so far.
func (s *Scepserver) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Serial is the content of the depot's serial file: the next serial it
// will issue (it changes with every certificate).
func (s *Scepserver) Serial() string {
	b, _ := os.ReadFile(filepath.Join(s.Depot, "serial"))
	return string(b)
}
