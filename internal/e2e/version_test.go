package e2e

import (
	"go/version"
	"os/exec"
	"strings"
	"testing"

	"github.com/scepd/scepd/internal/sceptest"
)

// minGo is the oldest toolchain whose standard library has the security
// fixes scepd relies on (net/http, crypto/tls, crypto/x509, html/template).
const minGo = "go1.27.3"

// TestVersion: the binary the tests (and the README's commands) build says
// which Go built it, and that Go is the patched one.
func TestVersion(t *testing.T) {
	out, err := exec.Command(sceptest.Binary(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("scepd version: %v\n%s", err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 3 || fields[0] != "scepd" {
		t.Fatalf("scepd version printed %q; want \"scepd VERSION GOVERSION OS/ARCH\"", out)
	}
	gover := fields[2]
	if !version.IsValid(gover) {
		t.Fatalf("scepd version: %q is not a Go version (output %q)", gover, out)
	}
	if !strings.Contains(string(out), " crypto=go") && !strings.Contains(string(out), " crypto=openssl") {
		t.Fatalf("scepd version printed %q; want it to name the signing engine (crypto=go or crypto=openssl)", out)
	}
	if version.Compare(gover, minGo) < 0 {
		t.Fatalf("scepd was built with %s; it needs %s or later (export GOTOOLCHAIN=%s)", gover, minGo, minGo)
	}
}
