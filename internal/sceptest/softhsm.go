package sceptest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SoftHSMModule is where Debian's softhsm2 installs its PKCS#11 library.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// SoftHSM is a fresh SoftHSM2 token in a temporary directory.
type SoftHSM struct {
	Module, Label, PIN string
	// Conf is the SOFTHSM2_CONF the module must see (set it in the
	// environment of the process that loads the module).
	Conf string
}

// Env is what a scepd process needs to keep its keys in the token.
func (h SoftHSM) Env() []string {
	return []string{"SOFTHSM2_CONF=" + h.Conf, "SCEPD_PKCS11_MODULE=" + h.Module, "SCEPD_PKCS11_TOKEN=" + h.Label, "SCEPD_PKCS11_PIN=" + h.PIN}
}

// NewSoftHSM initialises a token with softhsm2-util (Debian package
// softhsm2; CI installs it, elsewhere the test is skipped without it).
func NewSoftHSM(t testing.TB) SoftHSM {
	t.Helper()
	util := RequireTool(t, "softhsm2-util", "softhsm2")
	RequireTool(t, SoftHSMModule, "softhsm2")
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	h := SoftHSM{Module: SoftHSMModule, Label: "scepd-test", PIN: "4711-0815", Conf: filepath.Join(dir, "softhsm2.conf")}
	conf := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\n"
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := Run(t, time.Minute, []string{"SOFTHSM2_CONF=" + h.Conf}, dir, util,
		"--init-token", "--free", "--label", h.Label, "--pin", h.PIN, "--so-pin", "so-"+h.PIN)
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return h
}
