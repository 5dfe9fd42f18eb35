package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/ossl"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/store/sqlite"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// floor runs the private- and public-key operations one enrollment cannot
// avoid, with the same keys: the RA decrypts the content key, the CA signs
// the certificate, the RA signs the CertRep, the request's and the CSR's
// signatures are verified, and the reply's content key is encrypted. With
// the OpenSSL engine (-tags openssl) caKey and raKey are OpenSSL's: the
// private-key operations run there, the public ones in Go, as in the
// server.
func floor(b *testing.B, caKey crypto.Signer, raKey crypto.Signer, raPub *rsa.PublicKey, devKey *rsa.PrivateKey, n int) time.Duration {
	digest := sha256.Sum256([]byte("message"))
	devSig, _ := rsa.SignPKCS1v15(rand.Reader, devKey, crypto.SHA256, digest[:])
	ek, _ := rsa.EncryptPKCS1v15(rand.Reader, raPub, make([]byte, 32))
	dec := raKey.(crypto.Decrypter)
	start := cpuTime()
	for range n {
		if _, err := dec.Decrypt(rand.Reader, ek, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil {
			b.Fatal(err)
		}
		if _, err := caKey.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
		if _, err := raKey.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
		for range 2 {
			if err := rsa.VerifyPKCS1v15(&devKey.PublicKey, crypto.SHA256, digest[:], devSig); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := rsa.EncryptPKCS1v15(rand.Reader, &devKey.PublicKey, make([]byte, 32)); err != nil {
			b.Fatal(err)
		}
	}
	return (cpuTime() - start) / time.Duration(n)
}

// BenchmarkServerVsFloor measures the server's CPU per enrollment (the
// handler alone: requests are built before the clock starts, replies are
// not decrypted) and the crypto floor in the same run, and reports both and
// their ratio. Run: go test -run '^$' -bench ServerVsFloor ./internal/server
//
// SCEPD_BENCH_CLIENTS="1 4 16" runs each case with that many clients
// sending at once (default 1); each is a sub-benchmark named c=N.
func BenchmarkServerVsFloor(b *testing.B) {
	engines := []string{"go"}
	if ossl.Available {
		engines = append(engines, "openssl") // go test -tags openssl
	}
	clients := []int{1}
	if v := os.Getenv("SCEPD_BENCH_CLIENTS"); v != "" {
		clients = clients[:0]
		for _, f := range strings.Fields(v) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				b.Fatalf("SCEPD_BENCH_CLIENTS: %q is not a client count", f)
			}
			clients = append(clients, n)
		}
	}
	for _, engine := range engines {
		for _, kt := range []ca.KeyType{ca.RSA2048, ca.ECDSAP256} {
			for _, c := range clients {
				name := engine + "/" + string(kt)
				if len(clients) > 1 || c != 1 {
					name += fmt.Sprintf("/c=%d", c)
				}
				b.Run(name, func(b *testing.B) { serverVsFloor(b, engine, kt, c) })
			}
		}
	}
}

func serverVsFloor(b *testing.B, engine string, kt ca.KeyType, clients int) {
	ks := keys.Source{Dir: b.TempDir()}
	if engine == "openssl" {
		ks.Engine = ossl.Wrap
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(ks.Dir, "scepd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// Keyed as scepd serve keys it: each append checks the chain's head.
	auditKey := make([]byte, 32)
	rand.Read(auditKey)
	st.SetAuditKey(auditKey)
	hs := newServerOn(b, st, ks, kt)
	defer hs.Close()
	run, devKey := prepareEnrollments(b, hs, engine+string(kt), b.N, clients)
	raKey, caKey := raAndCAKeys(b, hs.URL, kt)
	var ra, caSigner crypto.Signer = raKey, caKey
	if engine == "openssl" {
		if ra, err = ossl.Wrap(raKey); err != nil {
			b.Fatal(err)
		}
		if caSigner, err = ossl.Wrap(caKey); err != nil {
			b.Fatal(err)
		}
	}
	// The floor and the server take turns, in rounds, so that both see
	// the same machine: a CPU that slows down or speeds up during the run
	// (frequency, neighbours on shared cores) moves both, not their ratio.
	stop := startProfile(b)
	const rounds = 10
	var server, fl time.Duration
	floorOps := 0
	ratios := make([]float64, 0, rounds)
	for r := range rounds {
		n := max(20, b.N/rounds/2)
		var per time.Duration
		pprof.Do(context.Background(), pprof.Labels("part", "floor"), func(context.Context) {
			per = floor(b, caSigner, ra, &raKey.PublicKey, devKey, n)
		})
		fl += per * time.Duration(n)
		floorOps += n
		from, to := r*b.N/rounds, (r+1)*b.N/rounds
		cpu, _ := run(from, to)
		server += cpu
		if to > from {
			ratios = append(ratios, float64(cpu)/float64(to-from)/float64(per))
		}
	}
	stop()
	b.StopTimer()
	server /= time.Duration(b.N)
	fl /= time.Duration(floorOps)
	b.ReportMetric(float64(server.Microseconds())/1000, "server-cpu-ms/op")
	b.ReportMetric(float64(fl.Microseconds())/1000, "floor-cpu-ms/op")
	b.ReportMetric(float64(server)/float64(fl), "x-floor")
	// Each round's server against the floor measured just before it: the
	// median of those paired ratios is what a burst of a neighbour's load
	// during one half of a round moves least.
	slices.Sort(ratios)
	if k := len(ratios); k > 0 {
		b.ReportMetric((ratios[(k-1)/2]+ratios[k/2])/2, "x-floor-median")
	}
}

// enrollCPU runs n PKCSReq enrollments through hs's handler in-process and
// returns the process CPU time and wall time per enrollment, and the
// device key the requests were signed with. The requests are built, and
// one enrollment is done (it pays the static challenge's single argon2id
// check), before the clock starts: what is measured is the steady state.
func enrollCPU(b *testing.B, hs *httptest.Server, prefix string, n int) (cpu, wall time.Duration, devKey *rsa.PrivateKey) {
	return enrollCPUClients(b, hs, prefix, n, 1)
}

// enrollCPUClients is enrollCPU with the n enrollments sent by clients
// goroutines at once.
func enrollCPUClients(b *testing.B, hs *httptest.Server, prefix string, n, clients int) (cpu, wall time.Duration, devKey *rsa.PrivateKey) {
	b.Helper()
	run, devKey := prepareEnrollments(b, hs, prefix, n, clients)
	stop := startProfile(b)
	cpu, wall = run(0, n)
	stop()
	b.StopTimer()
	return cpu / time.Duration(n), wall / time.Duration(n), devKey
}

// prepareEnrollments builds n PKCSReq messages for hs (one more is
// enrolled at once, as a warm-up: it pays the static challenge's single
// argon2id check) and returns run, which sends messages [from, to) from
// clients goroutines at once and returns the process CPU time and the
// wall time they took, and the device key the requests were signed with.
// The benchmark timer starts at the first run.
func prepareEnrollments(b *testing.B, hs *httptest.Server, prefix string, n, clients int) (run func(from, to int) (cpu, wall time.Duration), devKey *rsa.PrivateKey) {
	b.Helper()
	c := client.New(hs.URL + "/scep/default/pkiclient.exe")
	certs, err := c.GetCACert(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	ra, _ := client.Recipient(certs)
	devKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	self, _ := client.SelfSigned(devKey, pkix.Name{CommonName: "bench"})
	msgs := make([][]byte, n+1)
	for i := range msgs {
		csr, _ := scep.NewCSR(devKey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: fmt.Sprint("bench-", i)}}, challenge)
		msgs[i], _, err = scep.Builder{Cert: self, Key: devKey}.NewRequest(scep.Request{Type: scep.PKCSReq,
			TransactionID: fmt.Sprintf("%s-%d-%d-%d", prefix, n, i, time.Now().UnixNano()), Body: csr, Recipient: ra, Cipher: cms.AES256, Digest: crypto.SHA256})
		if err != nil {
			b.Fatal(err)
		}
	}
	h := hs.Config.Handler
	post := func(msg []byte) bool {
		req := httptest.NewRequest(http.MethodPost, "/scep/default/pkiclient.exe?operation=PKIOperation", bytes.NewReader(msg))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Errorf("HTTP %d: %s", w.Code, w.Body) // Errorf: clients run in goroutines
			return false
		}
		return true
	}
	if !post(msgs[n]) { // warm-up: a server that fails it is not measured
		b.FailNow()
	}
	b.ResetTimer()
	return func(from, to int) (cpu, wall time.Duration) {
		startCPU, startWall := cpuTime(), time.Now()
		var wg sync.WaitGroup
		// The clients' goroutines, and those the server starts, inherit
		// the label.
		pprof.Do(context.Background(), pprof.Labels("part", "server"), func(context.Context) {
			for c := range clients {
				wg.Go(func() {
					for i := from + c; i < to && post(msgs[i]); i += clients {
					}
				})
			}
			wg.Wait()
		})
		return cpuTime() - startCPU, time.Since(startWall)
	}, devKey
}

// startProfile starts a CPU profile into SCEPD_BENCH_PROFILE, when set
// (go test's -cpuprofile also covers building the requests); the floor's
// and the server's samples carry the label part=floor or part=server
// (go tool pprof -tagfocus=part=server).
func startProfile(b *testing.B) (stop func()) {
	f := os.Getenv("SCEPD_BENCH_PROFILE")
	if f == "" {
		return func() {}
	}
	out, err := os.Create(f)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		out.Close()
	}
}

// raAndCAKeys makes keys of the same kinds as the server's (the floor only
// depends on key type and size).
func raAndCAKeys(b *testing.B, _ string, kt ca.KeyType) (*rsa.PrivateKey, crypto.Signer) {
	ra, _ := rsa.GenerateKey(rand.Reader, 2048)
	caKey, err := ca.GenerateKey(kt)
	if err != nil {
		b.Fatal(err)
	}
	return ra, caKey
}
