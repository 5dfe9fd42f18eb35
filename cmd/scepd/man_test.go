package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestManPageHasEveryServeFlag: the man page is generated from the help,
// so every serve flag is in it, and no line starts a roff request by accident.
func TestManPageHasEveryServeFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"man"}, &out, &errb); code != 0 {
		t.Fatalf("scepd man: exit %d: %s", code, errb.String())
	}
	page := out.String()
	var help bytes.Buffer
	serve([]string{"-h"}, &bytes.Buffer{}, &help)
	flags := parseFlagHelp(help.String())
	if len(flags) < 20 {
		t.Fatalf("parsed %d serve flags from -h, want them all:\n%s", len(flags), help.String())
	}
	for _, f := range flags {
		if f.desc == "" {
			t.Errorf("flag %s: no description parsed", f.name)
		}
		if !strings.Contains(page, ".TP\n\\fB"+roffEscape("--"+f.name)+"\\fR") {
			t.Errorf("man page lacks --%s", f.name)
		}
	}
	for i, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, ".") && !strings.HasPrefix(l, ".TH ") && !strings.HasPrefix(l, ".SH ") &&
			l != ".TP" && l != ".nf" && l != ".fi" {
			t.Errorf("line %d is an unexpected roff request: %q", i+1, l)
		}
	}
	if !strings.Contains(page, "scepd profile mobileconfig") {
		t.Error("man page synopsis lacks the usage lines")
	}
}
