// Package reference writes docs/reference/config.md from the config schema:
// every key of config.File (found by reflection, so none is missed), its
// type, its default and description (from the field's doc comment in the
// Go source) and an example (from scepd.example.yaml). A field without a
// doc comment is an error: a key cannot be added without documentation.
package reference

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
)

// Key is one documented configuration key.
type Key struct {
	Path    string // e.g. profiles[].challenge.mode
	Type    string
	Default string
	Example string
	Doc     string
}

// sources are the Go files (relative to the module root) that declare the
// schema's types, by package path.
var sources = map[string][]string{
	"github.com/scepd/scepd/internal/config": {"internal/config/config.go"},
	"github.com/scepd/scepd/internal/ca":     {"internal/ca/policyconfig.go"},
}

// Keys walks the schema and returns every key in file order. root is the
// module root (it reads the Go sources and scepd.example.yaml there).
func Keys(root string) ([]Key, error) {
	docs := map[string]string{} // "pkg.Type.Field" -> doc
	for pkg, files := range sources {
		for _, f := range files {
			if err := fieldDocs(filepath.Join(root, f), pkg, docs); err != nil {
				return nil, err
			}
		}
	}
	examples, err := exampleValues(filepath.Join(root, "scepd.example.yaml"))
	if err != nil {
		return nil, err
	}
	var keys []Key
	var missing []string
	walk(reflect.TypeOf(config.File{}), "", docs, examples, &keys, &missing)
	if len(missing) > 0 {
		return nil, fmt.Errorf("config keys without a doc comment (document them in the Go source): %s", strings.Join(missing, ", "))
	}
	return keys, nil
}

var (
	durationType = reflect.TypeOf(ca.Duration(0))
	timeType     = reflect.TypeOf(time.Time{})
)

func walk(t reflect.Type, prefix string, docs, examples map[string]string, keys *[]Key, missing *[]string) {
	names := keyNames(t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		inline := strings.Contains(f.Tag.Get("yaml"), ",inline")
		if inline {
			walk(f.Type, prefix, docs, examples, keys, missing)
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		doc := docs[t.PkgPath()+"."+t.Name()+"."+f.Name]
		if doc == "" {
			*missing = append(*missing, path)
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		k := Key{Path: path, Type: typeName(ft), Doc: oneLine(keysForGoNames(doc, f.Name, names)), Default: defaultOf(keysForGoNames(doc, f.Name, names)), Example: examples[path]}
		*keys = append(*keys, k)
		switch {
		case ft.Kind() == reflect.Struct && ft != timeType:
			walk(ft, path, docs, examples, keys, missing)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			walk(ft.Elem(), path+"[]", docs, examples, keys, missing)
		}
	}
}

// keyNames maps the Go names of a struct's fields (and of inlined
// structs' fields) to their YAML keys.
func keyNames(t reflect.Type) map[string]string {
	out := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if strings.Contains(tag, ",inline") {
			for k, v := range keyNames(f.Type) {
				out[k] = v
			}
			continue
		}
		if name != "" && name != "-" {
			out[f.Name] = name
		}
	}
	return out
}

var goNameRE = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*\b`)

// keysForGoNames writes the YAML keys where a doc comment names Go fields:
// the field itself at the start ("PublicURL is ..."), and sibling fields
// with compound names (PasswordEnv, AdminTLSKey) anywhere. Short names
// that are also words (CA, ID) are left alone elsewhere.
func keysForGoNames(doc, field string, names map[string]string) string {
	if rest, ok := strings.CutPrefix(doc, field); ok && (rest == "" || !isIdentByte(rest[0])) {
		doc = "`" + names[field] + "`" + rest
	}
	return goNameRE.ReplaceAllStringFunc(doc, func(w string) string {
		key, ok := names[w]
		if !ok || !compound(w) {
			return w
		}
		return "`" + key + "`"
	})
}

func isIdentByte(b byte) bool {
	return b == '_' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

// compound reports whether a Go name joins words (an upper-case letter
// after a lower-case one): PasswordEnv, AdminTLSKey, not CA or Subject.
func compound(w string) bool {
	for i := 1; i < len(w); i++ {
		if w[i] >= 'A' && w[i] <= 'Z' && w[i-1] >= 'a' && w[i-1] <= 'z' {
			return true
		}
	}
	return false
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == timeType:
		return "time (RFC 3339)"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Float64, reflect.Float32:
		return "number"
	case reflect.Struct:
		return "object"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "list of objects"
		}
		return "list of " + typeName(t.Elem())
	}
	return t.Kind().String()
}

// fieldDocs records the doc (or line) comment of every struct field in a
// Go file. A field without its own comment that directly follows a
// commented field in a group ("AdminTLSCert and AdminTLSKey ...") shares
// that comment only when the comment names it.
func fieldDocs(file, pkg string, out map[string]string) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		prev := ""
		for _, fld := range st.Fields.List {
			doc := strings.TrimSpace(fld.Doc.Text() + " " + fld.Comment.Text())
			for _, name := range fld.Names {
				d := doc
				if d == "" && prev != "" && strings.Contains(prev, name.Name) {
					d = prev
				}
				out[pkg+"."+ts.Name.Name+"."+name.Name] = d
			}
			if doc != "" {
				prev = doc
			}
		}
		return false
	})
	return nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// defaultRE finds the default a doc comment states, in the forms the
// schema's comments use, first match wins.
var defaultRE = []*regexp.Regexp{
	regexp.MustCompile(`(?s)\bDefault(?:s)?\b:?\s+(.*?)(?:[.;](?:\s|$)|$)`),
	regexp.MustCompile(`([\w".-]+)\s+\((?:[^)]*, )?default\b`),
	regexp.MustCompile(`(?s)[:;] default\s+(.*?)(?:[.;(](?:\s|$)|$)`),
	regexp.MustCompile(`(?s)\b0 means (.*?)(?:[.;](?:\s|$)|$)`),
	regexp.MustCompile(`(?s)\bempty means (.*?)(?:[.;](?:\s|$)|$)`),
	regexp.MustCompile(`(none) by default`),
}

func defaultOf(doc string) string {
	for _, re := range defaultRE {
		if m := re.FindStringSubmatch(doc); m != nil {
			return oneLine(m[1])
		}
	}
	return ""
}

// exampleValues maps each key path of scepd.example.yaml to its first
// scalar or flow value.
func exampleValues(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("reference: %s: %w", file, err)
	}
	out := map[string]string{}
	var visit func(n *yaml.Node, path string)
	visit = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				visit(c, path)
			}
		case yaml.MappingNode:
			if n.Style&yaml.FlowStyle != 0 && path != "" {
				record(out, path, n)
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				visit(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			if len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode {
				record(out, path, n)
				return
			}
			for _, c := range n.Content {
				visit(c, path+"[]")
			}
		case yaml.ScalarNode:
			record(out, path, n)
		}
	}
	visit(&doc, "")
	return out, nil
}

func record(out map[string]string, path string, n *yaml.Node) {
	if _, ok := out[path]; ok {
		return
	}
	c := *n
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	if c.Kind != yaml.ScalarNode {
		c.Style = yaml.FlowStyle
		c.Content = append([]*yaml.Node(nil), n.Content...)
		for i, e := range c.Content {
			ec := *e
			ec.HeadComment, ec.LineComment, ec.FootComment = "", "", ""
			c.Content[i] = &ec
		}
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return
	}
	out[path] = strings.TrimSpace(string(b))
}

// Markdown renders the reference page.
func Markdown(root string) ([]byte, error) {
	keys, err := Keys(root)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

<!-- Generated by ` + "`go run ./internal/config/cmd/docgen > docs/reference/config.md`" + ` from the
schema in internal/config (and the policy in internal/ca): do not edit by hand.
TestConfigReference fails when this page and the schema disagree. -->

Every key of the YAML file that ` + "`scepd serve --config FILE`" + ` reads, in file order.
All keys are optional unless the description says *Required*; unknown keys are
errors. ` + "`[]`" + ` in a path is a list item (` + "`profiles[].challenge.mode`" + ` is the
` + "`mode`" + ` of a profile's ` + "`challenge`" + `). Durations are Go durations (` + "`90m`" + `,
` + "`8760h`" + `). The example column comes from [scepd.example.yaml](../../scepd.example.yaml),
the annotated reference file. Check a file with ` + "`scepd config validate FILE`" + `.

Flags and ` + "`SCEPD_*`" + ` variables (see [cli.md](cli.md), ` + "`scepd serve -h`" + `) override
` + "`listen.*`" + `, ` + "`data_dir`" + ` and ` + "`database`" + `.

| key | type | default | example | description |
|---|---|---|---|---|
`)
	for _, k := range keys {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Path, k.Type, cell(k.Default), code(k.Example), k.Doc)
	}
	return b.Bytes(), nil
}

func cell(s string) string {
	if s == "" {
		return ""
	}
	return oneLine(s)
}

func code(s string) string {
	if s == "" {
		return ""
	}
	s = strings.ReplaceAll(oneLine(s), "`", "'")
	return "`" + s + "`"
}
