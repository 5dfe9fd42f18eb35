package main

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
)

// cmdNode is one node of the CLI: a command and its subcommands.
type cmdNode struct {
	name string
	subs []string
}

// commands lists every command and subcommand, in the order of the usage
// text. The help and the generated docs/reference/cli.md walk it; a test
// runs "-h" on every entry.
func commands() []cmdNode {
	return []cmdNode{
		{name: "serve"},
		{name: "client", subs: []string{"getcaps", "getca", "enroll"}},
		{name: "ca", subs: []string{"list", "show", "export", "create-root", "create-intermediate", "import"}},
		{name: "profile", subs: []string{"list", "show", "apply", "mobileconfig"}},
		{name: "cert", subs: []string{"list", "show", "export", "revoke"}},
		{name: "request", subs: []string{"list", "approve", "reject"}},
		{name: "token", subs: []string{"create", "list", "revoke"}},
		{name: "challenge", subs: []string{"create", "pending", "cancel", "rotate"}},
		{name: "entity", subs: []string{"register", "list"}},
		{name: "policy", subs: []string{"test"}},
		{name: "config", subs: []string{"validate"}},
		{name: "bench"},
		{name: "inspect"},
		{name: "store", subs: []string{"check", "migrate"}},
		{name: "audit", subs: []string{"verify", "checkpoint", "export", "pubkey", "check-checkpoint"}},
		{name: "keys", subs: []string{"migrate"}},
		{name: "version"},
	}
}

// serveEnvHelp names the settings of "scepd serve" that only the
// environment carries (secrets and key material stay out of ps).
const serveEnvHelp = `
Environment only (no flag):
  SCEPD_CHALLENGE, SCEPD_CHALLENGE_FILE
                             without --config: the default profile's static challenge (8+ characters),
                             applied when the profile is created and when the value changes (a challenge
                             rotated since stays); default: generated and printed once at the first start
  SCEPD_ALLOW_DES=1          without --config: accept single-DES requests on the default profile (legacy devices)
  SCEPD_ALLOW_NEWER_SCHEMA=1 open a database a newer scepd migrated (going back without restoring a backup,
                             when that version's upgrading notes say this one runs on its schema); every command
  SCEPD_KEY_PASSPHRASE, SCEPD_KEY_PASSPHRASE_FILE
                             encrypt the key files scepd writes (the audit key too) and decrypt them at start;
                             with PostgreSQL, seal new keys in the database instead (stateless replicas)
  SCEPD_KEY_STORE            where new keys go: database (sealed; needs the passphrase) or files;
                             default: the database with PostgreSQL and a passphrase, else files
  SCEPD_AUDIT_KEY_FILE       the audit key; default: sealed in the database when keys go there, else
                             audit.key in the data directory (replicas must share it)
  SCEPD_PKCS11_MODULE, SCEPD_PKCS11_TOKEN, SCEPD_PKCS11_PIN, SCEPD_PKCS11_PIN_FILE
                             generate new CA and RA keys in a PKCS#11 token (binary built with -tags pkcs11)
  SCEPD_SECRET_*             secrets that profiles written through the API name (any *_env field:
                             webhook.secret_env, intune.client_secret_env, upstream.scep.ndes.password_env)
  GOMEMLIMIT                 the Go heap limit; wins over --memory-limit-mib
Every flag above also reads the SCEPD_* variable it names; flags win over the
environment, which wins over the config file.
`

// isHelp reports whether a command line asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help"
}

// wantsHelp reports whether any argument before "--" asks for help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if isHelp(a) {
			return true
		}
	}
	return false
}

// help writes the help of the command a command line names (its first
// words that are a command and a subcommand) to w, and returns 0: asking
// for help is never an error.
func help(args []string, w io.Writer) int {
	var path []string
	for _, a := range args {
		if !isHelp(a) && !strings.HasPrefix(a, "-") {
			path = append(path, a)
		}
	}
	if len(path) == 0 || path[0] == "help" {
		fmt.Fprint(w, usage)
		return 0
	}
	i := slices.IndexFunc(commands(), func(c cmdNode) bool { return c.name == path[0] })
	if i < 0 {
		fmt.Fprint(w, usage)
		return 0
	}
	c := commands()[i]
	if len(c.subs) > 0 && (len(path) < 2 || !slices.Contains(c.subs, path[1])) {
		fmt.Fprint(w, groupHelp(c))
		return 0
	}
	fmt.Fprint(w, leafHelp(c, path))
	return 0
}

// groupUsage is the usage text a command with subcommands prints when
// given none: a line per subcommand (in the order of commands(), whatever
// order the command printed them in), then any notes.
func groupUsage(c cmdNode) string {
	var out bytes.Buffer
	dispatch([]string{c.name}, &out, &out)
	s := strings.TrimSpace(out.String())
	s = strings.TrimSpace(strings.TrimPrefix(s, "Usage:"))
	var entries [][]string // a "scepd ..." line and its continuation lines
	var notes []string
	for _, l := range strings.Split(s, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "scepd "):
			entries = append(entries, []string{"  " + t})
		case strings.HasPrefix(l, "    ") && len(entries) > 0:
			entries[len(entries)-1] = append(entries[len(entries)-1], strings.TrimRight(l, " "))
		case t != "":
			notes = append(notes, t)
		}
	}
	order := func(e []string) int {
		f := strings.Fields(e[0])
		if len(f) < 3 {
			return -1
		}
		if i := slices.Index(c.subs, f[2]); i >= 0 {
			return i
		}
		return len(c.subs) // one commands() does not name yet: after those it does
	}
	slices.SortStableFunc(entries, func(a, b []string) int {
		if d := order(a) - order(b); d != 0 {
			return d
		}
		return strings.Compare(a[0], b[0]) // commands print from a map: no order of their own
	})
	var lines []string
	for _, e := range entries {
		lines = append(lines, e...)
	}
	lines = append(lines, notes...)
	return strings.Join(lines, "\n")
}

func groupHelp(c cmdNode) string {
	return fmt.Sprintf("Usage:\n%s\n\nSubcommands: %s\nRun \"scepd %s SUBCOMMAND -h\" for a subcommand's flags.\n",
		groupUsage(c), strings.Join(c.subs, ", "), c.name)
}

// leafHelp is a command's usage line(s) and its flags.
func leafHelp(c cmdNode, path []string) string {
	var b strings.Builder
	name := "scepd " + c.name
	if len(c.subs) > 0 {
		name += " " + path[1]
		b.WriteString("Usage:\n")
		in := false
		for _, l := range strings.Split(groupUsage(c), "\n") {
			t := strings.TrimSpace(l)
			switch {
			case t == name || strings.HasPrefix(t, name+" "):
				in = true
				b.WriteString("  " + t + "\n")
			case strings.HasPrefix(l, "    ") && in:
				b.WriteString(l + "\n")
			default:
				in = false
			}
		}
	} else {
		b.WriteString("Usage:\n  " + name + " [flags]\n")
	}
	var out bytes.Buffer
	n := 1
	if len(c.subs) > 0 {
		n = 2
	}
	dispatch(append(slices.Clone(path[:n]), "-h"), &out, &out)
	flags := out.String()
	if _, rest, ok := strings.Cut(flags, ":\n"); ok && strings.HasPrefix(flags, "Usage of ") {
		b.WriteString("\nFlags:\n" + rest)
	}
	if c.name == "serve" {
		b.WriteString(serveEnvHelp)
	}
	return b.String()
}

// cliReference renders docs/reference/cli.md: the help of every command.
func cliReference() string {
	var b strings.Builder
	b.WriteString("# CLI reference\n\n<!-- Generated by `go run ./cmd/scepd help reference > docs/reference/cli.md` from the\ncommands' own help: do not edit by hand. TestCLIReference fails when they disagree. -->\n\n")
	b.WriteString("Every command prints this help with `-h` (exit status 0).\n\n## scepd\n\n```\n" + usage + "```\n")
	for _, c := range commands() {
		var out bytes.Buffer
		help([]string{c.name}, &out)
		fmt.Fprintf(&b, "\n## scepd %s\n\n```\n%s```\n", c.name, out.String())
		for _, s := range c.subs {
			out.Reset()
			help([]string{c.name, s}, &out)
			fmt.Fprintf(&b, "\n### scepd %s %s\n\n```\n%s```\n", c.name, s, out.String())
		}
	}
	return b.String()
}
