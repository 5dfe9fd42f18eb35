// Command scepd is a SCEP (RFC 8894) certificate enrollment server and CA.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"
)

const usage = `scepd: SCEP (RFC 8894) certificate enrollment server and CA

Usage:
  scepd serve  [flags]          run the server (no flags needed: ./scepd-data, SQLite, a new CA)
  scepd client getcaps|getca|enroll [flags]
                                a SCEP client for testing and operations
  scepd ca list|show|export|create-root|create-intermediate|import
  scepd profile list|show|apply
  scepd profile mobileconfig --profile P [--mint | --challenge-env VAR] [--url BASE] [--sign-cert C --sign-key K] [--out FILE]
                                an Apple configuration profile (SCEP payload and the CA) for a profile
  scepd cert list|show|export|revoke
  scepd request list|approve|reject
  scepd token create|list|revoke
  scepd challenge create|rotate --profile P
  scepd entity register|list --profile P
  scepd policy test --profile P CSR.pem
                                operator commands: on the data directory/database, or with
                                --server URL (and SCEPD_TOKEN) through a running server's API
  scepd config validate FILE    check a config file and explain every error
  scepd bench -url URL -challenge PW [-n N] [-c C] [-pid PID] [-o json]
                                load-test any SCEP server, verifying every answer
  scepd inspect [--key KEY] FILE   explain a SCEP message, certificate or CSR (DER, PEM, base64)
  scepd store check             check the store's integrity (certificates, transactions, audit chain)
  scepd store migrate           apply the schema migrations (serve does at start; other commands refuse
                                a database behind this scepd)
  scepd keys migrate --to database|files
                                move the CA, RA and audit keys scepd created between files and the
                                database (sealed under SCEPD_KEY_PASSPHRASE); see README, replicas
  scepd audit verify [--checkpoint FILE]
                                verify the keyed audit chain (names the first tampered event; with a
                                checkpoint, also events cut from the end)
  scepd audit checkpoint [--out FILE]
                                sign a checkpoint of the audit log (keep a copy off this host)
  scepd audit export            export the audit log as JSON lines
  scepd audit pubkey | check-checkpoint --public-key PEM FILE
                                the audit key's public key; check a checkpoint's signature with it alone
  scepd version
  scepd help [COMMAND [SUBCOMMAND]]   the same as -h

Run "scepd COMMAND -h" for a command's subcommands and flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if args[0] == "help" && len(args) == 2 && args[1] == "reference" {
		fmt.Fprint(stdout, cliReference())
		return 0
	}
	if args[0] == "help" || wantsHelp(args) {
		return help(args, stdout)
	}
	return dispatch(args, stdout, stderr)
}

// dispatch runs the command args name.
func dispatch(args []string, stdout, stderr io.Writer) int {
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "client":
		return clientCmd(args[1:], stdout, stderr)
	case "challenge":
		return challengeCmd(args[1:], stdout, stderr)
	case "ca":
		return caCmd(args[1:], stdout, stderr)
	case "profile":
		return profileCmd(args[1:], stdout, stderr)
	case "cert":
		return certCmd(args[1:], stdout, stderr)
	case "token":
		return tokenCmd(args[1:], stdout, stderr)
	case "entity":
		return entityCmd(args[1:], stdout, stderr)
	case "request":
		return requestCmd(args[1:], stdout, stderr)
	case "policy":
		return policyCmd(args[1:], stdout, stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "inspect":
		return inspectCmd(args[1:], stdout, stderr)
	case "audit":
		return auditCmd(args[1:], stdout, stderr)
	case "store":
		return storeCmd(args[1:], stdout, stderr)
	case "keys":
		return keysCmd(args[1:], stdout, stderr)
	case "bench":
		return benchCmd(args[1:], stdout, stderr)
	case "man":
		return manCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	fmt.Fprintf(stderr, "scepd: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// versionLine says what this binary is: its version, the Go toolchain that
// built it (the standard library's security fixes come with it) and the
// build tags that select optional engines (pkcs11, openssl), and the
// engine that signs with file-held keys by default (crypto=openssl when
// compiled in, else crypto=go; the crypto setting can choose go).
func versionLine() string {
	line := fmt.Sprintf("scepd %s %s %s/%s crypto=%s", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, defaultEngine())
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" && s.Value != "" {
				line += " tags=" + s.Value
			}
		}
	}
	return line
}

// envDefault returns the SCEPD_* environment value for a flag default.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// envFloat returns a numeric SCEPD_* environment value for a flag default.
func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

// envInt returns an integer SCEPD_* environment value for a flag default.
func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// envDuration returns a duration SCEPD_* environment value for a flag default.
func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}
