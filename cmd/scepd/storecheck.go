package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/scepd/scepd/internal/outbound"
	"github.com/scepd/scepd/internal/store/sqlite"
)

const storeUsage = `Usage:
  scepd store check [--data DIR | --database URL]
  scepd store migrate [--data DIR | --database URL]
                                apply the schema migrations this scepd has and the database lacks
                                (scepd serve does at start; back up first, there is no downgrade)`

// storeCmd runs `scepd store check`: every certificate has its transaction
// and vice versa, used challenges name a stored certificate, the audit hash
// chain is intact; or `scepd store migrate` (storeMigrate).
func storeCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" && args[0] != "migrate" {
		fmt.Fprintln(stderr, storeUsage)
		return 2
	}
	f := newAdminFlags("store "+args[0], stderr)
	if _, err := f.parse(args[1:]); err != nil {
		return 2
	}
	if args[0] == "migrate" {
		return storeMigrate(f, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sf, err := f.store()
	if err != nil {
		fmt.Fprintln(stderr, "scepd store check:", err)
		return 1
	}
	sf.readAudit = true
	st, err := openStore(ctx, sf)
	if err != nil {
		fmt.Fprintln(stderr, "scepd store check:", err)
		return 1
	}
	defer st.Close()
	r, err := st.CheckIntegrity(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "scepd store check:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d certificates, %d transactions, %d audit events\n", r.Certificates, r.Transactions, r.AuditEvents)
	if len(r.Problems) == 0 {
		fmt.Fprintln(stdout, "consistent; the audit chain is intact")
		return 0
	}
	for _, p := range r.Problems {
		fmt.Fprintln(stdout, "PROBLEM:", p)
	}
	return 1
}

// storeMigrate applies the migrations the database lacks, as scepd serve
// does at start: for operators who upgrade the schema before they roll the
// replicas (on PostgreSQL under the same advisory lock). Other commands
// refuse a database behind this scepd, and every command one ahead of it.
func storeMigrate(f *adminFlags, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	sf, err := f.store()
	if err != nil {
		fmt.Fprintln(stderr, "scepd store migrate:", err)
		return 1
	}
	if *f.server != "" {
		fmt.Fprintln(stderr, "scepd store migrate: it works on the database itself (--data or --database), not through --server")
		return 2
	}
	// Only an existing scepd database: a mistyped --data (or none, run in
	// the wrong directory) would otherwise get a new one, "migrated".
	target := outbound.Redact(sf.database)
	if !isPostgres(sf.database) {
		target = filepath.Join(sf.dataDir, sqlite.FileName)
		if _, err := os.Stat(target); err != nil {
			fmt.Fprintf(stderr, "scepd store migrate: no scepd database at %s: name it with --data or --database\n", target)
			return 1
		}
	}
	fmt.Fprintln(stdout, "database:", target)
	sf.migrate = true
	st, err := openRaw(ctx, sf)
	if err != nil {
		fmt.Fprintln(stderr, "scepd store migrate:", err)
		return 1
	}
	defer st.Close()
	for _, m := range st.Migrated() {
		fmt.Fprintln(stdout, "applied", m)
	}
	if len(st.Migrated()) == 0 {
		fmt.Fprintln(stdout, "nothing to apply: the database has every migration of this scepd")
	}
	return 0
}
