package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/server"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

const challenge = "in-process-challenge"

// openStore opens a SQLite store in a new directory, closed when the test
// ends, and a key source in the same directory.
func openStore(t testing.TB) (*sqlite.Store, keys.Source) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, keys.Source{Dir: dir}
}

// newServer wires the real packages (SQLite, provisioning, enrollment)
// behind httptest, for tests that need the race detector on the server.
func newServer(t testing.TB, caKey ca.KeyType) (*httptest.Server, store.Store) {
	t.Helper()
	st, ks := openStore(t)
	return newServerOn(t, st, ks, caKey), st
}

// newServerOn serves the zero-config default profile from st, with keys
// from ks.
func newServerOn(t testing.TB, st store.Store, ks keys.Source, caKey ca.KeyType) *httptest.Server {
	t.Helper()
	return newServerWith(t, st, ks, caKey, func(*server.Options) {})
}

// newServerWith is newServerOn with the options changed by opt.
func newServerWith(t testing.TB, st store.Store, ks keys.Source, caKey ca.KeyType, opt func(*server.Options)) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := provision.EnsureDefault(ctx, st, ks, provision.Options{CAKeyType: caKey, RAKeyType: ca.RSA2048, Challenge: challenge, Now: time.Now, Log: log}); err != nil {
		t.Fatal(err)
	}
	profiles, err := server.Load(ctx, st, ks, server.Overrides{AllowDES: map[string]bool{"default": true}})
	if err != nil {
		t.Fatal(err)
	}
	o := server.Options{Profiles: profiles.Profiles, CAs: profiles.CAs, DefaultProfile: "default", Enroller: enroll.New(st, time.Now, log), Logger: log, MaxConcurrent: 100}
	opt(&o)
	srv, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs
}

// TestConcurrentEnrollmentsMixedCiphers runs enrollments with every cipher
// at once: each reply must come back in its own request's cipher (the
// client checks), and the race detector must stay quiet.
func TestConcurrentEnrollmentsMixedCiphers(t *testing.T) {
	hs, st := newServer(t, ca.ECDSAP256)
	c := client.New(hs.URL + "/scep/default/pkiclient.exe")
	certs, err := c.GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}
	ciphers := []cms.Cipher{cms.DES, cms.TripleDES, cms.AES128, cms.AES192, cms.AES256}
	digests := []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Enroll(context.Background(), client.Enrollment{
				Key: key, Subject: pkix.Name{CommonName: fmt.Sprintf("dev-%d", i)}, Challenge: challenge,
				Cipher: ciphers[i%len(ciphers)], Digest: digests[i%len(digests)], GET: i%2 == 0,
				TransactionID: fmt.Sprintf("tx-%d", i), Recipient: ra,
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	stored, err := st.ListCertificates(context.Background(), store.CertificateFilter{})
	if err != nil || len(stored) != n {
		t.Fatalf("%d certificates stored, want %d (%v)", len(stored), n, err)
	}
	seen := map[string]bool{}
	for _, c := range stored {
		if seen[c.Serial] {
			t.Fatalf("duplicate serial %s", c.Serial)
		}
		seen[c.Serial] = true
	}
}

// abortingEnroller aborts the request it is handed (http.ErrAbortHandler:
// net/http closes the connection and logs nothing).
type abortingEnroller struct{ server.Enroller }

func (abortingEnroller) PKCSReq(context.Context, *enroll.Profile, enroll.Request) (enroll.Result, error) {
	panic(http.ErrAbortHandler)
}

// Expect announces nothing (the embedded Enroller is nil: the panic is
// PKCSReq's, not a nil one's here).
func (abortingEnroller) Expect(ctx context.Context, _ *enroll.Profile) (context.Context, func()) {
	return ctx, func() {}
}

// TestObserveAfterPanic: a PKIOperation that panics once its message is
// parsed is observed with that message's type, not as "unknown".
func TestObserveAfterPanic(t *testing.T) {
	ctx := context.Background()
	st, ks := openStore(t)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if _, err := provision.EnsureDefault(ctx, st, ks, provision.Options{CAKeyType: ca.ECDSAP256, RAKeyType: ca.RSA2048, Challenge: challenge, Now: time.Now, Log: log}); err != nil {
		t.Fatal(err)
	}
	profiles, err := server.Load(ctx, st, ks, server.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	observed := make(chan string, 4)
	srv, err := server.New(server.Options{Profiles: profiles.Profiles, CAs: profiles.CAs, DefaultProfile: "default", Enroller: abortingEnroller{}, Logger: log,
		Observe: func(profile, messageType, outcome string, _ time.Duration) {
			observed <- profile + " " + messageType + " " + outcome
		}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := client.New(hs.URL + "/scep/default/pkiclient.exe")
	certs, err := c.GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := client.Recipient(certs)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enroll(ctx, client.Enrollment{Key: key, Subject: pkix.Name{CommonName: "dev"}, Challenge: challenge,
		Cipher: cms.AES128, Digest: crypto.SHA256, TransactionID: "tx-panic", Recipient: ra}); err == nil {
		t.Fatal("the aborted enrollment succeeded")
	}
	if got := <-observed; got != "default PKCSReq http-400" {
		t.Fatalf("observed %q, want the message type parsed before the panic", got)
	}
	if strings.Contains(logged.String(), "panicked") {
		t.Errorf("a panic other than PKCSReq's http.ErrAbortHandler:\n%s", logged.String())
	}
}

func TestDecodeGETMessage(t *testing.T) {
	msg := []byte{0xfb, 0xff, 0xfe, 0x3e, 0x3f, 0x00, 0x01} // base64 has '+' and '/'
	std := base64.StdEncoding.EncodeToString(msg)
	for _, tt := range []struct {
		name, query string
		ok          bool
	}{
		{"raw + and / (Apple)", "operation=PKIOperation&message=" + std, true},
		{"percent-encoded", "operation=PKIOperation&message=%2B%2F%2F%2BPj8AAQ%3D%3D", true},
		{"message first", "message=" + std + "&operation=PKIOperation", true},
		{"+ turned into space", "operation=PKIOperation&message=" + string(bytes.ReplaceAll([]byte(std), []byte("+"), []byte("%20"))), true},
		{"wrapped lines", "operation=PKIOperation&message=" + std[:4] + "%0A" + std[4:], true},
		{"unpadded", "operation=PKIOperation&message=" + base64.RawStdEncoding.EncodeToString(msg), true},
		{"url-safe alphabet", "operation=PKIOperation&message=" + base64.URLEncoding.EncodeToString(msg), true},
		{"no message", "operation=PKIOperation", false},
		{"empty message", "operation=PKIOperation&message=", false},
		{"not base64", "operation=PKIOperation&message=***", false},
		{"bad escape", "operation=PKIOperation&message=%zz", false},
	} {
		got, err := server.DecodeGETMessage(tt.query)
		if tt.ok != (err == nil) || (tt.ok && !bytes.Equal(got, msg)) {
			t.Errorf("%s: DecodeGETMessage(%q) = % x, %v", tt.name, tt.query, got, err)
		}
	}
}

func FuzzDecodeGETMessage(f *testing.F) {
	f.Add("operation=PKIOperation&message=MIIB+/==")
	f.Add("message=%2B%2F&x=y")
	f.Fuzz(func(t *testing.T, q string) { server.DecodeGETMessage(q) })
}

// BenchmarkEnrollment measures a whole enrollment through the handler:
// client-side crypto included, so compare runs, not absolutes.
func BenchmarkEnrollment(b *testing.B) {
	for _, kt := range []ca.KeyType{ca.ECDSAP256, ca.RSA2048} {
		b.Run(string(kt), func(b *testing.B) {
			hs, _ := newServer(b, kt)
			c := client.New(hs.URL + "/scep/default/pkiclient.exe")
			certs, _ := c.GetCACert(context.Background())
			ra, _ := client.Recipient(certs)
			key, _ := rsa.GenerateKey(rand.Reader, 2048)
			i := 0
			for b.Loop() {
				i++
				if _, err := c.Enroll(context.Background(), client.Enrollment{Key: key, Subject: pkix.Name{CommonName: "bench"}, Challenge: challenge,
					Cipher: cms.AES256, Digest: crypto.SHA256, TransactionID: fmt.Sprint(i), Recipient: ra}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
