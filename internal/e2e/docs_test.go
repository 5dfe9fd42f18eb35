package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/sceptest"
)

// docBlock is a fenced block of a Markdown file that a marker comment
// (the line before the fence) says to exercise:
//
//	<!-- test -->          a ```sh block: run it with bash against a test server
//	<!-- test: config -->  a ```yaml block: a config file for scepd config validate
//	<!-- test: server-config -->
//	                       the same, and the config of the page's test server
//	                       (without one, the server runs zero-config)
//	<!-- test: config NAME --> (or server-config NAME): also written to NAME in
//	                       the directory the page's commands start in
type docBlock struct {
	file   string
	line   int
	marker string // "run", "config" or "server-config"
	name   string // the file name a config block is written to, if any
	body   string
}

var markerRE = regexp.MustCompile(`^<!--\s*test(?::\s*(config|server-config)(?:\s+([\w.-]+))?)?\s*-->$`)

func docBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []docBlock
	sc := bufio.NewScanner(f)
	n, marker, name := 0, "", ""
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if m := markerRE.FindStringSubmatch(line); m != nil {
			marker, name = "run", m[2]
			if m[1] != "" {
				marker = m[1]
			}
			continue
		}
		if marker != "" && strings.HasPrefix(line, "```") {
			lang := strings.TrimPrefix(line, "```")
			if (marker == "run") != (lang == "sh") || (marker != "run") != (lang == "yaml") {
				t.Fatalf("%s:%d: marker %q before a ```%s block", file, n, marker, lang)
			}
			b := docBlock{file: file, line: n, marker: marker, name: name}
			var body strings.Builder
			for sc.Scan() {
				n++
				if strings.TrimSpace(sc.Text()) == "```" {
					break
				}
				body.WriteString(sc.Text() + "\n")
			}
			b.body = body.String()
			blocks = append(blocks, b)
		}
		if line != "" {
			marker = ""
		}
	}
	return blocks
}

// docFiles are the pages whose commands and configs are exercised.
func docFiles(t *testing.T) []string {
	root := filepath.Join("..", "..")
	files := []string{filepath.Join(root, "README.md")}
	for _, pattern := range []string{"docs/*.md", "docs/guides/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

// docTools are the programs the pages' commands call, with their Debian
// packages.
var docTools = map[string]string{
	"scepclient": "scep", "getcert": "certmonger", "openssl": "openssl",
	"curl": "curl", "sqlite3": "sqlite3", "iconv": "libc-bin", "python3": "python3",
}

var envKeyRE = regexp.MustCompile(`(?m)^\s*(?:-\s+)?[a-z_]*_env:\s*([A-Z][A-Z0-9_]*)`)

// TestDocs runs every command block the README and docs/ mark, against a
// scepd started for the page (the real binary, on a free port, in a temp
// directory), and validates every marked config with `scepd config
// validate`. Commands name http://localhost:8080, which becomes the test
// server; $CHALLENGE holds its static challenge, SCEPD_DATA its data
// directory, CERTDIR a temp directory for keys and certificates; getcert
// reaches a private certmonger daemon; "sudo " is dropped.
func TestDocs(t *testing.T) {
	bin := sceptest.Binary(t)
	total := 0
	for _, file := range docFiles(t) {
		blocks := docBlocks(t, file)
		if len(blocks) == 0 {
			continue
		}
		total += len(blocks)
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel() // each page has its own server, directory and certmonger
			runDocFile(t, bin, blocks)
		})
	}
	if total < 10 {
		t.Fatalf("only %d marked blocks in the docs: the markers are gone", total)
	}
}

func runDocFile(t *testing.T, bin string, blocks []docBlock) {
	work := t.TempDir()
	env := []string{"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")}
	var config string
	var secrets []string
	for i, b := range blocks {
		if b.marker == "run" {
			continue
		}
		path := filepath.Join(work, fmt.Sprintf("config-%d.yaml", i))
		if err := os.WriteFile(path, []byte(b.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if b.name != "" {
			if err := os.WriteFile(filepath.Join(work, b.name), []byte(b.body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, err := sceptest.Run(t, 30*time.Second, nil, work, bin, "config", "validate", path)
		if err != nil {
			t.Errorf("%s:%d: scepd config validate: %v\n%s", b.file, b.line, err, out)
		}
		if b.marker == "server-config" && config == "" {
			config = path
			for _, m := range envKeyRE.FindAllStringSubmatch(b.body, -1) {
				secrets = append(secrets, m[1]+"=doc-test-secret-"+strings.ToLower(m[1]))
			}
		}
	}
	var runs []docBlock
	for _, b := range blocks {
		if b.marker == "run" {
			runs = append(runs, b)
		}
	}
	if len(runs) == 0 {
		return
	}
	challenge := "doc-test-challenge"
	o := sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge, "SCEPD_ALLOW_DES=1"}}
	if config != "" {
		o.Args = []string{"--config", config}
		o.Env = secrets
		if len(secrets) > 0 {
			_, challenge, _ = strings.Cut(secrets[0], "=")
		}
	}
	s := sceptest.Start(t, o)
	certdir := filepath.Join(work, "certs")
	env = append(env, "CHALLENGE="+challenge, "SCEPD_DATA="+s.DataDir, "CERTDIR="+certdir)
	env = append(env, secrets...)
	for _, b := range runs {
		if strings.Contains(b.body, "getcert ") {
			cm := sceptest.StartCertmonger(t)
			env = append(env, cm.Env()...)
			break
		}
	}
	// The blocks run in one shell, as the reader runs them one after the
	// other: a cd or a variable carries over to the next block.
	var script strings.Builder
	for _, b := range runs {
		for tool, pkg := range docTools {
			if regexp.MustCompile(`(^|[\s|($])` + regexp.QuoteMeta(tool) + `\s`).MatchString(b.body) {
				sceptest.RequireTool(t, tool, pkg)
			}
		}
		fmt.Fprintf(&script, "echo '>>> %s:%d'\n%s\n", filepath.Base(b.file), b.line, b.body)
	}
	text := strings.ReplaceAll(script.String(), "localhost:8080", s.Addr)
	text = regexp.MustCompile(`\bsudo `).ReplaceAllString(text, "")
	out, err := sceptest.Run(t, 3*time.Minute, env, work, "bash", "-euo", "pipefail", "-c", text)
	if err != nil {
		t.Fatalf("%s: %v\n%s\n--- server log:\n%s", runs[0].file, err, out, s.Log())
	}
	// Nothing a page runs leaves keys in the repository.
	if m, _ := filepath.Glob(filepath.Join("..", "..", "*.key")); len(m) > 0 {
		t.Errorf("key files in the repository root: %v", m)
	}
}

var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// githubSlug is the anchor GitHub gives a heading.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ' || r == '-':
			b.WriteRune('-')
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func headingSlugs(t *testing.T, file string) map[string]bool {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	slugs := map[string]bool{}
	inFence := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "```") {
			inFence = !inFence
		}
		if !inFence && strings.HasPrefix(l, "#") {
			slugs[githubSlug(strings.TrimLeft(l, "#"))] = true
		}
	}
	return slugs
}

// Every relative link of the README and docs/ names a file that exists and,
// with #anchor, a heading in it.
func TestDocsLinks(t *testing.T) {
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linkRE.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(link, "#")
			target := file
			if path != "" {
				target = filepath.Join(filepath.Dir(file), path)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %q: %v", file, link, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !headingSlugs(t, target)[anchor] {
				t.Errorf("%s: link %q: no heading #%s in %s", file, link, anchor, target)
			}
		}
	}
}

// Every metric scepd exports is named in docs/operations.md.
func TestDocsNameEveryMetric(t *testing.T) {
	ops, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("..", "metrics", "*.go"))
	re := regexp.MustCompile(`"(scepd_[a-z0-9_]+)"`)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			n++
			if !strings.Contains(string(ops), "`"+m[1]) {
				t.Errorf("metric %s is not named in docs/operations.md", m[1])
			}
		}
	}
	if n < 10 {
		t.Fatalf("found only %d metric names in internal/metrics", n)
	}
}
