// Package sceptest runs the real scepd binary and real third-party SCEP
// clients for end-to-end tests. It is imported by tests only.
package sceptest

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/audit"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres"
	"github.com/scepd/scepd/internal/store/sqlite"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/scepd once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "scepd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "scepd")
		tags := strings.Join(slices.DeleteFunc([]string{pkcs11Tag, opensslTag}, func(t string) bool { return t == "" }), ",")
		cmd := exec.Command("go", "build", "-tags", tags, "-o", binPath, "./cmd/scepd")
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// RequireTool returns the path of an external program the test needs. In CI
// (CI=true) a missing tool fails the test: CI installs them and must not
// pass by skipping. Elsewhere the test is skipped with the package to install.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if _, statErr := os.Stat(name); statErr == nil {
		return name
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %q (./scripts/test does this when run as root)", name, debianPackage)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Server is a running scepd process.
type Server struct {
	t       testing.TB
	DataDir string
	Addr    string
	Env     []string
	// Challenge is the default profile's challenge (given or generated).
	Challenge string

	args      []string
	fixedAddr string
	generated chan string

	mu     sync.Mutex
	st     store.Store
	cmd    *exec.Cmd
	stderr *LogBuffer
	done   chan struct{}
}

// Options start a server.
type Options struct {
	// DataDir reuses a data directory; empty means a new temp dir.
	DataDir string
	// Env adds SCEPD_* variables, e.g. "SCEPD_ALLOW_DES=1".
	Env []string
	// Args adds flags to `scepd serve`.
	Args []string
	// Addr is the listen address; empty means a free loopback port.
	Addr string
}

// Start runs `scepd serve` on a free loopback port and waits for /readyz.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = filepath.Join(t.TempDir(), "data")
	}
	s := &Server{t: t, DataDir: o.DataDir, Env: o.Env, fixedAddr: o.Addr}
	for _, e := range o.Env {
		if v, ok := strings.CutPrefix(e, "SCEPD_CHALLENGE="); ok {
			s.Challenge = v
		}
	}
	s.args = o.Args
	s.launch()
	s.waitReady()
	t.Cleanup(s.Stop)
	return s
}

// StartMany starts n servers at the same moment (replicas racing through
// their first start) and waits until all are ready. They share o.DataDir
// (empty: each gets a new directory of its own) and whatever database
// o.Args name.
func StartMany(t testing.TB, n int, o Options) []*Server {
	t.Helper()
	servers := make([]*Server, n)
	for i := range servers {
		dir := o.DataDir
		if dir == "" {
			dir = filepath.Join(t.TempDir(), fmt.Sprintf("data-%d", i))
		}
		s := &Server{t: t, DataDir: dir, Env: o.Env, args: o.Args}
		s.launch()
		t.Cleanup(s.Stop)
		servers[i] = s
	}
	for _, s := range servers {
		s.waitReady()
	}
	return servers
}

// FreeAddr is a loopback address with a free port, for a server that
// must come back on the same address (Options.Addr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var challengeLine = regexp.MustCompile(`^\s{4}(\S+)\s*$`)

func (s *Server) launch() {
	t := s.t
	t.Helper()
	s.Addr = s.fixedAddr
	if s.Addr == "" {
		s.Addr = FreeAddr(t)
	}
	cmd := exec.Command(Binary(t), append([]string{"serve", "--addr", s.Addr, "--data", s.DataDir}, s.args...)...)
	cmd.Env = os.Environ()
	if opensslTag != "" {
		cmd.Env = append(cmd.Env, "SCEPD_CRYPTO=openssl") // s.Env, after it, may say otherwise
	}
	cmd.Env = append(cmd.Env, s.Env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stderr = &LogBuffer{}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.done = make(chan struct{})
	s.mu.Unlock()
	s.generated = make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := challengeLine.FindStringSubmatch(sc.Text()); m != nil {
				s.generated <- m[1]
			}
		}
	}()
	go func() { cmd.Wait(); close(s.done) }()
}

func (s *Server) waitReady() {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.BaseURL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-s.done:
			t.Fatalf("scepd exited during start:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("scepd did not become healthy:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Everything logged during start precedes this line in the pipe.
	s.LogContains("serving SCEP")
	select {
	case c := <-s.generated:
		s.Challenge = c
	case <-time.After(200 * time.Millisecond):
	}
}

// PID is the server process's ID.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// Kill ends the server with SIGKILL: no shutdown, no flush.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	cmd.Process.Kill()
	<-done
}

// BaseURL is http://ADDR.
func (s *Server) BaseURL() string { return "http://" + s.Addr }

// URL is the SCEP URL of a profile.
func (s *Server) URL(profile string) string {
	return s.BaseURL() + "/scep/" + profile + "/pkiclient.exe"
}

// Log returns what the server logged so far.
func (s *Server) Log() string { return s.stderr.String() }

// LogContains waits up to 5 s for the server's log to contain sub: the log
// arrives through a pipe, a moment after the response the client saw.
func (s *Server) LogContains(sub string) bool { return s.LogCount(sub, 1) }

// LogCount waits up to 5 s for sub to appear at least n times in the log.
func (s *Server) LogCount(sub string, n int) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if strings.Count(s.Log(), sub) >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the server with SIGTERM (a graceful shutdown).
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Signal sends sig to the server process.
func (s *Server) Signal(sig os.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	cmd.Process.Signal(sig)
}

// Exited waits up to d for the server process to end and returns how it
// ended, or nil if it still runs.
func (s *Server) Exited(d time.Duration) *os.ProcessState {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	select {
	case <-done:
		return cmd.ProcessState
	case <-time.After(d):
		return nil
	}
}

// Restart stops the server and starts it again on the same data directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.launch()
	s.waitReady()
}

// Store opens the server's database (SQLite in WAL mode allows it while
// the server runs) so tests can check what was and was not stored.
func (s *Server) Store() store.Store {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		return s.st
	}
	var st interface {
		store.Store
		SetAuditKey([]byte)
	}
	var err error
	if db := s.database(); db != "" {
		st, err = postgres.Open(context.Background(), db, postgres.Options{MaxConns: 2})
	} else {
		st, err = sqlite.Open(context.Background(), filepath.Join(s.DataDir, sqlite.FileName))
	}
	if err != nil {
		s.t.Fatal(err)
	}
	// With the server's audit key, as the server and the CLI open it:
	// sealed in the database, else the file.
	pass := []byte(s.env("SCEPD_KEY_PASSPHRASE"))
	key, err := audit.LoadSealedKey(context.Background(), st, pass)
	if s.env("SCEPD_AUDIT_KEY_FILE") != "" || errors.Is(err, store.ErrNotFound) {
		key, err = audit.LoadKey(s.DataDir, s.env("SCEPD_AUDIT_KEY_FILE"), pass)
	}
	switch {
	case err == nil:
		st.SetAuditKey(key.Chain())
	case !errors.Is(err, fs.ErrNotExist):
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { st.Close() })
	s.st = st
	return st
}

// env returns a variable of the server's environment.
func (s *Server) env(name string) string {
	v := os.Getenv(name)
	for _, e := range s.Env {
		if after, ok := strings.CutPrefix(e, name+"="); ok {
			v = after
		}
	}
	return v
}

// Database is the --database the server was started with ("" for SQLite).
func (s *Server) Database() string { return s.database() }

func (s *Server) database() string {
	for i, a := range s.args {
		if a == "--database" && i+1 < len(s.args) {
			return s.args[i+1]
		}
	}
	return ""
}

// Certificates lists every stored certificate.
func (s *Server) Certificates() []store.Certificate {
	s.t.Helper()
	certs, err := s.Store().ListCertificates(context.Background(), store.CertificateFilter{Limit: 100000})
	if err != nil {
		s.t.Fatal(err)
	}
	return certs
}

// CACertPEM writes the default CA certificate (from GetCACert's chain,
// the self-signed one) to a file and returns its path.
func (s *Server) CACertPEM(t testing.TB, certs []*x509.Certificate) string {
	t.Helper()
	for _, c := range certs {
		if c.IsCA {
			p := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatal("no CA certificate in GetCACert")
	return ""
}

// LogBuffer collects what goroutines write at once (a server's stderr, a
// slog handler's output) for a test to read.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Run runs a command with a timeout and returns its combined output.
func Run(t testing.TB, timeout time.Duration, env []string, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var _ io.Writer = (*LogBuffer)(nil)

// HTTPGet fetches a URL and returns the body of a 200 answer.
func HTTPGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	return b, nil
}
