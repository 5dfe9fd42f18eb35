package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// manCmd writes the scepd(8) manual page in roff, generated from the help
// the commands print (the usage summary and `serve -h`), so the page
// never drifts from the binary it ships with. It is not listed in the
// usage: packagers run it (scripts/package).
func manCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "Usage: scepd man > scepd.8")
		if args[0] == "-h" || args[0] == "--help" {
			return 0
		}
		return 2
	}
	var serveHelp bytes.Buffer
	serve([]string{"-h"}, io.Discard, &serveHelp) // prints the flags and returns before doing anything
	fmt.Fprint(stdout, manPage(version, usage, serveHelp.String()))
	return 0
}

func manPage(ver, usageText, serveHelp string) string {
	var b strings.Builder
	b.WriteString(`.TH SCEPD 8 "" "scepd ` + roffEscape(ver) + `" "System Administration"` + "\n")
	b.WriteString(".SH NAME\nscepd \\- SCEP (RFC 8894) certificate enrollment server and CA\n")
	b.WriteString(".SH SYNOPSIS\n.nf\n")
	_, body, _ := strings.Cut(usageText, "Usage:\n")
	body, _, _ = strings.Cut(body, "\nRun \"scepd COMMAND -h\"")
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		b.WriteString(roffLine(strings.TrimPrefix(l, "  ")) + "\n")
	}
	b.WriteString(".fi\n")
	b.WriteString(".SH DESCRIPTION\n" +
		"scepd answers SCEP enrollment requests from MDMs, routers and other clients and issues certificates " +
		"from its own CA. Started without flags it creates a CA, an RA and a default profile in its data " +
		"directory. Every command prints its own flags with \\fB\\-h\\fR.\n")
	b.WriteString(".SH SERVE OPTIONS\n")
	for _, f := range parseFlagHelp(serveHelp) {
		b.WriteString(".TP\n\\fB" + roffEscape("--"+f.name) + "\\fR")
		if f.arg != "" {
			b.WriteString(" \\fI" + roffEscape(f.arg) + "\\fR")
		}
		b.WriteString("\n" + roffLine(f.desc) + "\n")
	}
	b.WriteString(".SH ENVIRONMENT\n" +
		"Each serve option has a SCEPD_* variable named in its description. Secrets are read from the " +
		"environment, never from flags: SCEPD_CHALLENGE, SCEPD_KEY_PASSPHRASE, SCEPD_PKCS11_PIN, each also as " +
		"the file that \\fINAME\\fR_FILE names (for example a systemd credential under $CREDENTIALS_DIRECTORY). " +
		"SCEPD_TOKEN is the API token for \\fB\\-\\-server\\fR.\n")
	b.WriteString(".SH FILES\n.TP\n/etc/scepd/scepd.yaml\nthe configuration file, used when SCEPD_CONFIG names it (packaged installs: /etc/default/scepd)\n" +
		".TP\n/var/lib/scepd\nthe data directory of packaged installs: SQLite database, keys, audit key\n" +
		".TP\n/etc/scepd/challenge\nthe default profile's static challenge, passed to the service as a systemd credential\n")
	b.WriteString(".SH SEE ALSO\n\\fBsystemctl\\fR(1), \\fBsystemd.exec\\fR(5); the documentation in /usr/share/doc/scepd\n")
	return b.String()
}

type flagHelp struct{ name, arg, desc string }

// parseFlagHelp reads the flag package's PrintDefaults output: "  -name type"
// lines, each followed by tab-indented description lines.
func parseFlagHelp(s string) []flagHelp {
	var out []flagHelp
	for _, l := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(l, "  -"):
			name, arg, _ := strings.Cut(strings.TrimPrefix(l, "  -"), " ")
			// Short boolean flags put the description on the same line after a tab.
			desc := ""
			if n, d, ok := strings.Cut(name, "\t"); ok {
				name, desc = n, strings.TrimSpace(d)
			}
			out = append(out, flagHelp{name: name, arg: strings.TrimSpace(arg), desc: desc})
		case strings.HasPrefix(l, "    \t") && len(out) > 0:
			f := &out[len(out)-1]
			f.desc = strings.TrimSpace(f.desc + " " + strings.TrimSpace(l))
		}
	}
	return out
}

// roffLine escapes a text line; a leading dot or quote would be a request.
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = "\\&" + s
	}
	return s
}

func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}
