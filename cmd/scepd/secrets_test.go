package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestDatabaseURLSources: the database URL (which may hold a password)
// comes from --database, then SCEPD_DATABASE or the file
// SCEPD_DATABASE_FILE names, then the config file, for serve and for the
// commands on the store alike. Unusable URLs name which one was taken.
func TestDatabaseURLSources(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dbFile := filepath.Join(dir, "database")
	if err := os.WriteFile(dbFile, []byte("bogus://from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "scepd.yaml")
	if err := os.WriteFile(cfg, []byte("database: postgres://scepd@127.0.0.1:1/from-config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCEPD_CONFIG", "")
	t.Setenv("SCEPD_DATABASE_FILE", dbFile)
	for _, c := range []struct {
		name, env string
		args      []string
		want      string // in stderr; "": exit 0
	}{
		{"store check, file", "", []string{"store", "check", "--data", data}, `"bogus://from-file"`},
		{"store check, env over file", "bogus://from-env", []string{"store", "check", "--data", data}, `"bogus://from-env"`},
		{"store check, flag over env", "bogus://from-env", []string{"store", "check", "--data", data, "--database", "sqlite"}, ""},
		{"audit verify, file", "", []string{"audit", "verify", "--data", data}, `"bogus://from-file"`},
		{"serve, file over config", "", []string{"serve", "--config", cfg, "--data", data}, `bogus://from-file`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SCEPD_DATABASE", c.env)
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if c.want == "" {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errb.String())
				}
				return
			}
			if code != 1 || !strings.Contains(errb.String(), c.want) {
				t.Fatalf("exit %d, stderr %q; want 1 naming %s", code, errb.String(), c.want)
			}
		})
	}
	t.Setenv("SCEPD_DATABASE", "")
	t.Setenv("SCEPD_DATABASE_FILE", filepath.Join(dir, "missing"))
	var out, errb bytes.Buffer
	if code := run([]string{"store", "check", "--data", data}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "SCEPD_DATABASE_FILE") {
		t.Fatalf("a missing SCEPD_DATABASE_FILE: exit %d, %q", code, errb.String())
	}
}

// TestConfigFileWithPasswordReadable: serve warns, naming the file and
// the fix, when its config file holds the database password and others
// may read it, and starts all the same (here: fails to reach the
// database); a private file, or one without a password, is no warning.
func TestConfigFileWithPasswordReadable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SCEPD_CONFIG", "")
	t.Setenv("SCEPD_DATABASE", "")
	t.Setenv("SCEPD_DATABASE_FILE", "")
	for _, c := range []struct {
		name, database string
		mode           os.FileMode
		warn           bool
	}{
		{"password, 0644", "postgres://scepd:secret@127.0.0.1:1/scepd", 0o644, true},
		{"password parameter, 0604", "postgres://scepd@127.0.0.1:1/scepd?password=secret", 0o604, true},
		{"password, 0600", "postgres://scepd:secret@127.0.0.1:1/scepd", 0o600, false},
		{"password, 0640 with scepd's group", "postgres://scepd:secret@127.0.0.1:1/scepd", 0o640, false},
		{"no password, 0644", "postgres://scepd@127.0.0.1:1/scepd", 0o644, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			if err := os.WriteFile(cfg, []byte("database: "+c.database+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(cfg, c.mode); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			if code := run([]string{"serve", "--config", cfg, "--data", filepath.Join(dir, "data")}, &out, &errb); code != 1 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			warned := strings.Contains(errb.String(), "level=WARN") && strings.Contains(errb.String(), "file="+cfg) &&
				strings.Contains(errb.String(), "SCEPD_DATABASE_FILE")
			if warned != c.warn || strings.Contains(errb.String(), "secret") {
				t.Fatalf("warned %v, want %v: %s", warned, c.warn, errb.String())
			}
		})
	}
}

// TestServerPlainHTTP: the operator commands send the API token over
// plain HTTP only to this host, or with --insecure-http; refused, they
// send nothing.
func TestServerPlainHTTP(t *testing.T) {
	var tokens atomic.Int32
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer the-token" {
			tokens.Add(1)
		}
		w.Write([]byte("[]"))
	}))
	ln, err := net.Listen("tcp", ":0") // every interface
	if err != nil {
		t.Fatal(err)
	}
	api.Listener.Close()
	api.Listener = ln
	api.Start()
	defer api.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	t.Setenv("SCEPD_TOKEN", "the-token")
	t.Setenv("SCEPD_SERVER", "")
	list := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"ca", "list"}, args...), &out, &errb)
		return code, errb.String()
	}
	for _, host := range []string{"127.0.0.1", "127.1.2.3", "localhost", "LocalHost"} {
		if code, stderr := list("--server", "http://"+net.JoinHostPort(host, port)); code != 0 {
			t.Errorf("http://%s: exit %d, %s", host, code, stderr)
		}
	}
	var other string // an address of this host, not loopback
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			other = n.IP.String()
			break
		}
	}
	if other == "" {
		t.Skip("no network interface but loopback")
	}
	before := tokens.Load()
	url := "http://" + net.JoinHostPort(other, port)
	if code, stderr := list("--server", url); code != 1 || !strings.Contains(stderr, "--insecure-http") || tokens.Load() != before {
		t.Fatalf("%s: exit %d, %q, token sent %v; want it refused, naming --insecure-http", url, code, stderr, tokens.Load() != before)
	}
	if code, stderr := list("--server", url, "--insecure-http"); code != 0 || tokens.Load() != before+1 {
		t.Fatalf("%s with --insecure-http: exit %d, %s", url, code, stderr)
	}
}

// TestSecretOutputFiles: the files the CLI writes secrets to (a
// mobileconfig's challenge, a client's new key) are 0600 also where an
// older file others could read was, and a symlink planted at the path is
// replaced, not followed.
func TestSecretOutputFiles(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	t.Setenv("SCEPD_DATABASE", "")
	t.Setenv("SCEPD_DATABASE_FILE", "")
	t.Setenv("SCEPD_AUDIT_KEY_FILE", "")
	t.Setenv("SCEPD_KEY_PASSPHRASE", "")
	t.Setenv("SCEPD_SERVER", "")
	t.Setenv("SCEPD_PUBLIC_URL", "")
	ctx := context.Background()
	st, err := openStore(ctx, storeFlags{dataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provision.EnsureDefault(ctx, st, keys.Source{Dir: data}, provision.Options{CAKeyType: ca.ECDSAP256, RAKeyType: ca.RSA2048,
		Challenge: "the static challenge", Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	private := func(path, want string) {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want a regular file, mode 0600", path, fi.Mode(), err)
		}
		if b, _ := os.ReadFile(path); !strings.Contains(string(b), want) {
			t.Fatalf("%s lacks %q", path, want)
		}
	}
	t.Setenv("TEST_CHALLENGE", "the static challenge")
	victim := filepath.Join(dir, "victim")
	mobileconfig := func(out string) string {
		t.Helper()
		var o, e bytes.Buffer
		if code := run([]string{"profile", "mobileconfig", "--profile", "default", "--challenge-env", "TEST_CHALLENGE",
			"--url", "https://pki.example.com", "--data", data, "--out", out}, &o, &e); code != 0 {
			return e.String()
		}
		return ""
	}
	// refused: a symlink at the path is neither followed nor replaced.
	refused := func(link, msg string) {
		t.Helper()
		if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != os.ModeSymlink || !strings.Contains(msg, "is not a regular file") {
			t.Fatalf("%s: %v %v, error %q; want the symlink left and a refusal", link, fi, err, msg)
		}
		if _, err := os.Lstat(victim); err == nil {
			t.Fatal("a symlink's target was written")
		}
	}

	old := filepath.Join(dir, "old.mobileconfig")
	if err := os.WriteFile(old, []byte("an older profile"), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := mobileconfig(old); msg != "" {
		t.Fatal(msg)
	}
	private(old, "the static challenge")

	link := filepath.Join(dir, "link.mobileconfig")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	refused(link, mobileconfig(link))

	key := filepath.Join(dir, "client.key")
	if err := os.Symlink(victim, key); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	// The key is written before the request, which fails: nothing listens.
	run([]string{"client", "enroll", "-url", "http://127.0.0.1:1/scep/default/pkiclient.exe", "-challenge", "x", "-cn", "c", "-key", key}, &o, &e)
	refused(key, e.String())
	fresh := filepath.Join(dir, "fresh.key")
	run([]string{"client", "enroll", "-url", "http://127.0.0.1:1/scep/default/pkiclient.exe", "-challenge", "x", "-cn", "c", "-key", fresh}, &o, &e)
	private(fresh, "PRIVATE KEY")
}

// TestSecretFilesPrivate: a *_FILE variable naming a file other users
// may read is refused, naming the variable; a file its group may read is
// not (a systemd credential shows 0440).
func TestSecretFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pass := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(pass, []byte("the key passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCEPD_DATABASE", "")
	t.Setenv("SCEPD_DATABASE_FILE", "")
	t.Setenv("SCEPD_AUDIT_KEY_FILE", "")
	t.Setenv("SCEPD_KEY_PASSPHRASE", "")
	t.Setenv("SCEPD_KEY_PASSPHRASE_FILE", pass)
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o644, false}, {0o440, true}, {0o600, true}} {
		if err := os.Chmod(pass, c.mode); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := run([]string{"store", "check", "--data", data}, &out, &errb)
		if c.ok && code != 0 || !c.ok && (code != 1 || !strings.Contains(errb.String(), "SCEPD_KEY_PASSPHRASE_FILE") || !strings.Contains(errb.String(), "other users")) {
			t.Fatalf("mode %v: exit %d, %s", c.mode, code, errb.String())
		}
	}
}

// TestInspectKeyPassphraseFile: inspect decrypts an encrypted --key with
// the passphrase from SCEPD_KEY_PASSPHRASE_FILE, as serve does.
func TestInspectKeyPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (keys.Source{Dir: dir, Passphrase: []byte("the key passphrase")}).SaveFile("recipient.key", key); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "recipient"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(dir, "recipient.pem")
	pass := filepath.Join(dir, "passphrase")
	if os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644) != nil ||
		os.WriteFile(pass, []byte("the key passphrase\n"), 0o600) != nil {
		t.Fatal("writing the files")
	}
	t.Setenv("SCEPD_KEY_PASSPHRASE", "")
	t.Setenv("SCEPD_KEY_PASSPHRASE_FILE", pass)
	var out, errb bytes.Buffer
	if code := run([]string{"inspect", "--key", filepath.Join(dir, "recipient.key"), cert}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// TestClientChallengeFromEnv: client enroll without -challenge sends the
// one SCEPD_CLIENT_CHALLENGE_FILE names (or SCEPD_CLIENT_CHALLENGE holds),
// never the server's own SCEPD_CHALLENGE (a shell inside a scepd container
// has it).
func TestClientChallengeFromEnv(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig{
		addr: "127.0.0.1:0", store: storeFlags{dataDir: filepath.Join(dir, "data")},
		caKeyType: ca.ECDSAP256, raKeyType: ca.RSA2048, challengeMode: "static", challenge: "the static challenge",
		queueWait: 10 * time.Second, maxQueue: 16, challengeRate: 10, challengeBurst: 100, shutdownGrace: 5 * time.Second,
	}
	logs := &sceptest.LogBuffer{}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, io.Discard, slog.New(slog.NewTextHandler(logs, nil))) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("runServer: %v", err)
		}
	}()
	served := regexp.MustCompile(`msg="serving SCEP" profile=default url=(\S+)`)
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if m := served.FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SCEP URL logged:\n%s", logs.String())
		}
	}
	file := filepath.Join(dir, "challenge")
	if err := os.WriteFile(file, []byte("the static challenge\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	t.Setenv("SCEPD_CHALLENGE", "the static challenge")
	if code := run([]string{"client", "enroll", "-url", url, "-cn", "server-env", "-key", filepath.Join(dir, "server-env.key")}, &out, &errb); code != 1 {
		t.Fatalf("the server's SCEPD_CHALLENGE was sent: exit %d", code)
	}
	t.Setenv("SCEPD_CLIENT_CHALLENGE", "")
	t.Setenv("SCEPD_CLIENT_CHALLENGE_FILE", file)
	if code := run([]string{"client", "enroll", "-url", url, "-cn", "device", "-key", filepath.Join(dir, "device.key")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	t.Setenv("SCEPD_CLIENT_CHALLENGE", "not the challenge")
	if code := run([]string{"client", "enroll", "-url", url, "-cn", "other", "-key", filepath.Join(dir, "other.key")}, &out, &errb); code != 1 {
		t.Fatalf("SCEPD_CLIENT_CHALLENGE wins over the file: exit %d", code)
	}
}
