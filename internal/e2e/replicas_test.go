package e2e

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
)

// load enrolls n times with concurrency c, spreading requests over the
// servers, and returns the certificates the clients were given.
type load struct {
	servers []*sceptest.Server
	keys    []*rsa.PrivateKey
	ra      *x509.Certificate
	prefix  string
	next    atomic.Int64
	// succeeded counts enrollments whose certificate a client received.
	succeeded atomic.Int64
}

func newLoad(t *testing.T, servers []*sceptest.Server, prefix string) *load {
	certs := getCACert(t, servers[0])
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}
	l := &load{servers: servers, ra: ra, prefix: prefix}
	for range 8 {
		l.keys = append(l.keys, newKey(t))
	}
	return l
}

// one enrollment; the error is what the client saw.
func (l *load) one(ctx context.Context, password string) (*x509.Certificate, error) {
	i := l.next.Add(1)
	s := l.servers[int(i)%len(l.servers)]
	certs, err := client.New(s.URL("default")).Enroll(ctx, client.Enrollment{
		Key: l.keys[int(i)%len(l.keys)], Subject: pkix.Name{CommonName: fmt.Sprintf("%s-%d", l.prefix, i)}, Challenge: password,
		Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: fmt.Sprintf("%s-%d", l.prefix, i), Recipient: l.ra, GET: i%3 == 0,
	})
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// run enrolls until n are done or ctx ends, with c workers, and returns
// the issued certificates and the failures.
func (l *load) run(ctx context.Context, n, c int, password string) ([]*x509.Certificate, []error) {
	var mu sync.Mutex
	var issued []*x509.Certificate
	var failed []error
	var started atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && (n <= 0 || started.Add(1) <= int64(n)) {
				cert, err := l.one(ctx, password)
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						failed = append(failed, err)
					}
				} else {
					issued = append(issued, cert)
					l.succeeded.Add(1)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return issued, failed
}

// checkStored asserts every certificate a client was given is stored once,
// chains to the CA, and the store passes its integrity check.
func checkStored(t *testing.T, s *sceptest.Server, issued []*x509.Certificate) {
	t.Helper()
	ctx := context.Background()
	st := s.Store()
	ca := getCACert(t, s)
	roots := x509.NewCertPool()
	roots.AddCert(ca[len(ca)-1])
	seen := map[string]bool{}
	for _, c := range issued {
		serial := c.SerialNumber.Text(16)
		if seen[serial] {
			t.Fatalf("serial %s issued twice", serial)
		}
		seen[serial] = true
		row, err := st.GetCertificate(ctx, serial)
		if err != nil {
			t.Fatalf("certificate %s was reported issued but is not stored: %v", serial, err)
		}
		if string(row.DER) != string(c.Raw) {
			t.Fatalf("certificate %s stored differs from the one sent", serial)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("certificate %s does not verify: %v", serial, err)
		}
	}
	r, err := st.CheckIntegrity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("integrity problems: %v", r.Problems)
	}
}

// TestReplicasSharePostgres runs three scepd processes on one PostgreSQL
// schema and one key directory: started together (racing through
// provisioning), 300 enrollments spread over them, then 20 concurrent
// redemptions of one dynamic challenge across the replicas.
func TestReplicasSharePostgres(t *testing.T) {
	db := pgtest.Schema(t)
	dataDir := filepath.Join(t.TempDir(), "shared")
	opts := sceptest.Options{DataDir: dataDir, Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--database", db}}
	replicas := sceptest.StartMany(t, 3, opts)
	creators := 0
	for _, r := range replicas {
		creators += strings.Count(r.Log(), "created root CA")
	}
	if creators != 1 {
		t.Fatalf("%d replicas created the root CA, want exactly 1", creators)
	}
	for _, pattern := range []string{"ca/default-*.key", "profiles/default/ra-*.key"} {
		if files, _ := filepath.Glob(filepath.Join(dataDir, pattern)); len(files) != 1 {
			t.Errorf("%s: %d key files left, want 1", pattern, len(files))
		}
	}

	l := newLoad(t, replicas, "replica")
	issued, failed := l.run(context.Background(), 300, 8, challenge)
	if len(failed) > 0 {
		t.Fatalf("%d of 300 enrollments failed, first: %v", len(failed), failed[0])
	}
	if len(issued) != 300 {
		t.Fatalf("%d certificates issued, want 300", len(issued))
	}
	checkStored(t, replicas[0], issued)
	if n := len(replicas[0].Certificates()); n != 300 {
		t.Fatalf("%d certificates stored, want 300", n)
	}
	for i, r := range replicas {
		if !r.LogCount("certificate issued", 50) {
			t.Errorf("replica %d issued only %d certificates: the load was not spread", i, strings.Count(r.Log(), "certificate issued"))
		}
	}

	// Switch the default profile to one-time challenges: restart every
	// replica with --challenge-mode dynamic.
	for _, r := range replicas {
		r.Stop()
	}
	opts.Args = append(opts.Args, "--challenge-mode", "dynamic")
	replicas = sceptest.StartMany(t, 3, opts)
	out, err := sceptest.Run(t, 30*time.Second, nil, "", sceptest.Binary(t), "challenge", "create", "--profile", "default", "--data", dataDir, "--database", db)
	if err != nil {
		t.Fatalf("scepd challenge create: %v\n%s", err, out)
	}
	once := strings.TrimSpace(out)
	l = newLoad(t, replicas, "race")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []*x509.Certificate
	refused := 0
	start := make(chan struct{})
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := l.one(context.Background(), once)
			mu.Lock()
			defer mu.Unlock()
			var f *client.Failure
			switch {
			case err == nil:
				winners = append(winners, c)
			case errors.As(err, &f) && f.FailInfo == scep.BadRequest:
				refused++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 || refused != 19 {
		t.Fatalf("one challenge, 20 attempts over 3 replicas: %d certificates and %d refusals; want 1 and 19", len(winners), refused)
	}
	checkStored(t, replicas[0], winners)
	if n := len(replicas[0].Certificates()); n != 301 {
		t.Fatalf("%d certificates stored, want 301", n)
	}
}

// crashTest kills the server with SIGKILL while enrollments run, then
// checks that every enrollment a client saw succeed is stored and sound,
// and that the server restarts and serves.
func crashTest(t *testing.T, s *sceptest.Server) {
	l := newLoad(t, []*sceptest.Server{s}, "crash")
	ctx, cancel := context.WithCancel(context.Background())
	var issued []*x509.Certificate
	done := make(chan struct{})
	go func() {
		issued, _ = l.run(ctx, 0, 4, challenge)
		close(done)
	}()
	// Wait for what the clients saw, not for what the server stored: a row
	// can be committed before its answer reaches the client.
	deadline := time.Now().Add(60 * time.Second)
	for l.succeeded.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.Kill()
	time.Sleep(200 * time.Millisecond) // let in-flight client calls see the reset
	cancel()
	<-done
	if len(issued) < 10 {
		t.Fatalf("only %d enrollments before the kill", len(issued))
	}
	s.Restart()
	checkStored(t, s, issued)
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "after-crash"}, Cipher: cms.AES256, Digest: crypto.SHA256})
	r, err := s.Store().CheckIntegrity(context.Background())
	if err != nil || len(r.Problems) > 0 || r.Certificates != r.Transactions {
		t.Fatalf("after restart: %+v %v", r, err)
	}
	args := []string{"store", "check", "--data", s.DataDir}
	if db := s.Database(); db != "" {
		args = append(args, "--database", db)
	}
	out, err := sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), args...)
	if err != nil || !strings.Contains(out, "consistent; the audit chain is intact") {
		t.Fatalf("scepd store check: %v\n%s", err, out)
	}
}

func TestCrashSafetySQLite(t *testing.T) {
	crashTest(t, startServer(t))
}

func TestCrashSafetyPostgres(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge}, Args: []string{"--database", pgtest.Schema(t)}})
	crashTest(t, s)
}

func tlsConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}
