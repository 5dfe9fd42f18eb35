package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// storeCmd runs `scepd store check`: every certificate has its transaction
// and vice versa, used challenges name a stored certificate, the audit hash
// chain is intact.
func storeCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage: scepd store check [--data DIR | --database URL]")
		return 2
	}
	f := newAdminFlags("store check", stderr)
	if _, err := f.parse(args[1:]); err != nil {
		return 2
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
