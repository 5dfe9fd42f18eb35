package reference

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestConfigReference fails when docs/reference/config.md is not what the
// schema generates: a key added, renamed or re-documented without
// regenerating the page (go run ./internal/config/cmd/docgen >
// docs/reference/config.md), or a key without a doc comment.
func TestConfigReference(t *testing.T) {
	want, err := Markdown("../../..")
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../../../docs/reference/config.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		hl, wl := strings.Split(string(have), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(hl) || i < len(wl); i++ {
			var h, w string
			if i < len(hl) {
				h = hl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if h != w {
				t.Fatalf("docs/reference/config.md disagrees with the schema at line %d:\n have: %s\n want: %s\nregenerate: go run ./internal/config/cmd/docgen > docs/reference/config.md", i+1, h, w)
			}
		}
	}
	for _, key := range []string{"listen.addr", "profiles[].challenge.ndes.username", "profiles[].policy.ext_key_usage", "events.sinks[].give_up_after"} {
		if !bytes.Contains(have, []byte("| `"+key+"` |")) {
			t.Errorf("the reference lacks %s", key)
		}
	}
}

// An undocumented field is refused: the walk over a schema type reports it.
func TestUndocumentedKeyFails(t *testing.T) {
	src := `package x

type Schema struct {
	// Documented has a comment.
	Documented string ` + "`yaml:\"documented\"`" + `
	Forgotten  int    ` + "`yaml:\"forgotten\"`" + `
}
`
	dir := t.TempDir()
	file := filepath.Join(dir, "x.go")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	type Schema struct {
		Documented string `yaml:"documented"`
		Forgotten  int    `yaml:"forgotten"`
	}
	typ := reflect.TypeOf(Schema{})
	docs := map[string]string{}
	if err := fieldDocs(file, typ.PkgPath(), docs); err != nil {
		t.Fatal(err)
	}
	var keys []Key
	var missing []string
	walk(typ, "", docs, nil, &keys, &missing)
	if len(keys) != 2 || keys[0].Doc != "`documented` has a comment." {
		t.Fatalf("keys %+v", keys)
	}
	if len(missing) != 1 || missing[0] != "forgotten" {
		t.Fatalf("missing = %v, want [forgotten]", missing)
	}
}
