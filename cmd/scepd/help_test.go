package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// clearSCEPDEnv unsets every SCEPD_* variable for the test: flag defaults
// read them, and the help must not depend on the caller's environment.
func clearSCEPDEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "SCEPD_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

// Every command and subcommand answers -h (and --help, and "scepd help
// ...") with its help on stdout and exit status 0.
func TestHelpExitsZeroEverywhere(t *testing.T) {
	clearSCEPDEnv(t)
	paths := [][]string{{}}
	for _, c := range commands() {
		paths = append(paths, []string{c.name})
		for _, s := range c.subs {
			paths = append(paths, []string{c.name, s})
		}
	}
	for _, p := range paths {
		for _, h := range []string{"-h", "--help"} {
			var out, errb bytes.Buffer
			args := append(slices.Clone(p), h)
			if rc := run(args, &out, &errb); rc != 0 {
				t.Errorf("scepd %s: exit %d, want 0 (stderr %q)", strings.Join(args, " "), rc, errb.String())
			}
			if !strings.Contains(out.String(), "Usage") {
				t.Errorf("scepd %s: no usage on stdout: %q", strings.Join(args, " "), out.String())
			}
		}
		var out bytes.Buffer
		if rc := run(append([]string{"help"}, p...), &out, &out); rc != 0 || !strings.Contains(out.String(), "Usage") {
			t.Errorf("scepd help %s: exit %d, %q", strings.Join(p, " "), rc, out.String())
		}
	}
}

func TestGroupHelpListsSubcommands(t *testing.T) {
	clearSCEPDEnv(t)
	for _, c := range commands() {
		if len(c.subs) == 0 {
			continue
		}
		var out bytes.Buffer
		run([]string{c.name, "-h"}, &out, &out)
		for _, s := range c.subs {
			if !strings.Contains(out.String(), "scepd "+c.name+" "+s) {
				t.Errorf("scepd %s -h does not list %s:\n%s", c.name, s, out.String())
			}
		}
	}
	var out bytes.Buffer
	run([]string{"client", "enroll", "-h"}, &out, &out)
	if !strings.Contains(out.String(), "-challenge") || !strings.Contains(out.String(), "scepd client enroll") {
		t.Errorf("scepd client enroll -h lacks its usage or flags:\n%s", out.String())
	}
}

// Every SCEPD_* variable the program reads is named in the CLI help, and
// those that only the environment carries for the server in serve -h.
func TestHelpNamesEveryEnvironmentVariable(t *testing.T) {
	clearSCEPDEnv(t)
	ref := cliReference()
	var serveHelp bytes.Buffer
	run([]string{"serve", "-h"}, &serveHelp, &serveHelp)
	for _, name := range []string{"SCEPD_CHALLENGE,", "SCEPD_CHALLENGE_FILE", "SCEPD_KEY_STORE", "SCEPD_ALLOW_DES", "SCEPD_KEY_PASSPHRASE", "SCEPD_KEY_PASSPHRASE_FILE",
		"SCEPD_AUDIT_KEY_FILE", "SCEPD_PKCS11_MODULE", "SCEPD_PKCS11_TOKEN", "SCEPD_PKCS11_PIN", "SCEPD_PKCS11_PIN_FILE"} {
		if !strings.Contains(serveHelp.String(), name) {
			t.Errorf("scepd serve -h does not name %s", name)
		}
	}
	re := regexp.MustCompile(`"(SCEPD_[A-Z0-9_]*[A-Z0-9])`)
	seen := map[string]bool{}
	for _, dir := range []string{".", "../../internal"} {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && slices.Contains([]string{"e2e", "sceptest", "bench", "pgtest", "storetest"}, d.Name()) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				seen[m[1]] = true
			}
			return nil
		})
	}
	if len(seen) < 20 {
		t.Fatalf("found only %d SCEPD_ variables in the source: %v", len(seen), seen)
	}
	for name := range seen {
		if name == "SCEPD_SECRET" {
			name = "SCEPD_SECRET_*"
		}
		if !strings.Contains(ref, name) {
			t.Errorf("%s is read by the program but named in no command's help", name)
		}
	}
}

// TestCLIReference fails when docs/reference/cli.md is not the commands'
// help: regenerate it with go run ./cmd/scepd help reference >
// docs/reference/cli.md (in an environment without SCEPD_* variables).
func TestCLIReference(t *testing.T) {
	clearSCEPDEnv(t)
	have, err := os.ReadFile("../../docs/reference/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	want := cliReference()
	if string(have) != want {
		hl, wl := strings.Split(string(have), "\n"), strings.Split(want, "\n")
		for i := range max(len(hl), len(wl)) {
			var h, w string
			if i < len(hl) {
				h = hl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if h != w {
				t.Fatalf("docs/reference/cli.md disagrees with the help at line %d:\n have: %s\n want: %s\nregenerate: go run ./cmd/scepd help reference > docs/reference/cli.md", i+1, h, w)
			}
		}
	}
}

// Every subcommand a group prints is one commands() names, so the help
// and the reference list it in a fixed place (groups print from a map).
func TestCommandsNameEverySubcommand(t *testing.T) {
	clearSCEPDEnv(t)
	for _, c := range commands() {
		if len(c.subs) == 0 {
			continue
		}
		var out bytes.Buffer
		dispatch([]string{c.name}, &out, &out)
		for _, l := range strings.Split(out.String(), "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == "scepd" && f[1] == c.name && !strings.HasPrefix(f[2], "-") && !slices.Contains(c.subs, f[2]) {
				t.Errorf("scepd %s prints the subcommand %q, which commands() in help.go does not name", c.name, f[2])
			}
		}
	}
}
