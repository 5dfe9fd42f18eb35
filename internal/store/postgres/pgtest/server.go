package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Server is a private PostgreSQL server for one test: its own cluster
// (initdb) in a temporary directory, its own port on 127.0.0.1 and its
// Unix socket in that directory, so a test may stop and restart it
// without disturbing anyone else's server. Trust authentication.
type Server struct {
	bin    string // directory of initdb, pg_ctl, postgres
	dir    string
	port   int
	asUser string // run the binaries as this user (initdb refuses root); "" as ourselves
}

// StartServer initialises and starts a private server, stopped and removed
// when the test ends. Without PostgreSQL's server binaries (initdb) the
// test is skipped; in CI (CI set) it fails.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := serverBinaries()
	if bin == "" {
		msg := "PostgreSQL's initdb is not installed (Debian package postgresql): this test starts a private server"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skip("running as root and there is no postgres user to run initdb as (initdb refuses root)")
		}
		s.asUser = "postgres"
	}
	// Not t.TempDir(): its parents are private to root, and the server
	// runs as the postgres user.
	dir, err := os.MkdirTemp("", "scepd-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if s.asUser != "" {
		if out, err := exec.Command("chown", s.asUser+":", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v\n%s", dir, err, out)
		}
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.port = freePort(t)
	if out, err := s.ctl("start"); err != nil {
		t.Fatalf("starting the private PostgreSQL: %v\n%s\n%s", err, out, s.serverLog())
	}
	t.Cleanup(func() { s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop") })
	return s
}

// URL is the connection URL of the server's postgres database.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Restart stops the server (fast shutdown: sessions are cut) and starts it
// again on the same port, waiting until it accepts connections.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if out, err := s.ctl("restart", "-m", "fast"); err != nil {
		t.Fatalf("restarting the private PostgreSQL: %v\n%s\n%s", err, out, s.serverLog())
	}
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) ctl(action string, extra ...string) ([]byte, error) {
	args := append([]string{"-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", s.port, s.dir),
		action}, extra...)
	return s.run("pg_ctl", args...)
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

func (s *Server) serverLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(b)
}

// serverBinaries finds the directory holding initdb and pg_ctl: Debian
// keeps them in /usr/lib/postgresql/VERSION/bin (the newest is taken),
// other systems on PATH.
func serverBinaries() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p)
		}
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
